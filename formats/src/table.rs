//! Output tables (SPEC §4) written as CSV and Parquet from the same rows.
//!
//! The engine describes each output as a [`TableSpec`] and streams its rows as [`Cell`]s; this
//! module renders them. Amounts are always printed with exactly their currency's minor digits.
//! In Parquet an amount column is UTF-8 text identical to the CSV, followed by an INT64 column
//! `<name>_minor` with the same amount in minor units, so that readers get both exactness and
//! numbers.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::encode::{push_csv_field, push_i64, push_scaled};
use crate::money::{AmountMinor, Currency};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Int,
    Amount,
}

#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// File stem: `member_positions` gives `member_positions.csv` / `.parquet`.
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnKind)],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    Text(&'a str),
    Int(i64),
    Amount(AmountMinor, Currency),
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("table {table}: row has {found} cells, the table has {expected} columns")]
    Width {
        table: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("table {table}: column {column} expects {expected:?}")]
    Kind {
        table: &'static str,
        column: &'static str,
        expected: ColumnKind,
    },
    #[error("table {table}: {message}")]
    Encode {
        table: &'static str,
        message: String,
    },
    #[error("CSV derived from Parquet: {0}")]
    Derive(String),
}

impl TableSpec {
    /// Checks one row against the spec: its width and each cell's kind.
    fn check(&self, cells: &[Cell<'_>]) -> Result<(), TableError> {
        if cells.len() != self.columns.len() {
            return Err(TableError::Width {
                table: self.name,
                found: cells.len(),
                expected: self.columns.len(),
            });
        }
        for (cell, &(column, expected)) in cells.iter().zip(self.columns) {
            let fits = matches!(
                (cell, expected),
                (Cell::Text(_), ColumnKind::Text)
                    | (Cell::Int(_), ColumnKind::Int)
                    | (Cell::Amount(..), ColumnKind::Amount)
            );
            if !fits {
                return Err(TableError::Kind {
                    table: self.name,
                    column,
                    expected,
                });
            }
        }
        Ok(())
    }
}

/// Appends an integer as the tables print it (as `Display` does), for cells the engine
/// composes itself.
pub fn push_int_text(out: &mut Vec<u8>, value: i64) {
    push_i64(out, value);
}

/// Appends an amount as the tables print it: exactly as [`Currency::format`], without
/// allocating.
pub fn push_amount_text(out: &mut Vec<u8>, amount: AmountMinor, currency: Currency) {
    push_scaled(out, amount.0, currency.minor_digits());
}

/// Writes rows as RFC 4180 CSV with a header row, `\n` line ends.
pub struct CsvTableWriter {
    spec: TableSpec,
    out: Vec<u8>,
    /// Bytes before the first row (the header, if any) and rows written, for
    /// [`CsvTableWriter::reserve_rows`].
    start: usize,
    rows: usize,
}

impl CsvTableWriter {
    pub fn new(spec: TableSpec) -> CsvTableWriter {
        let mut out = Vec::new();
        for (i, (name, _)) in spec.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_csv_field(&mut out, name);
        }
        out.push(b'\n');
        CsvTableWriter {
            spec,
            start: out.len(),
            out,
            rows: 0,
        }
    }

    /// A writer for rows that continue another writer's file: no header row, so that a large
    /// table can be rendered in parts on several threads and the parts concatenated.
    pub fn continuation(spec: TableSpec) -> CsvTableWriter {
        CsvTableWriter {
            spec,
            out: Vec::new(),
            start: 0,
            rows: 0,
        }
    }

    /// Makes room for `more` rows as long on average as those written so far (nothing before
    /// the first row), with a little to spare: a table of millions of rows then grows its
    /// buffer once, instead of doubling it a dozen times, each time copying the file so far
    /// into fresh pages.
    pub fn reserve_rows(&mut self, more: usize) {
        if self.rows == 0 {
            return;
        }
        let average = (self.out.len() - self.start).div_ceil(self.rows);
        self.out.reserve(
            more.saturating_mul(average)
                .saturating_add(more / 16 * average),
        );
    }

    /// Appends a row; a row that does not match the spec is refused and nothing is written.
    pub fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), TableError> {
        self.spec.check(cells)?;
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            match cell {
                Cell::Text(text) => push_csv_field(&mut self.out, text),
                Cell::Int(value) => push_i64(&mut self.out, *value),
                Cell::Amount(amount, currency) => {
                    push_amount_text(&mut self.out, *amount, *currency)
                }
            }
        }
        self.out.push(b'\n');
        self.rows += 1;
        Ok(())
    }

    /// The whole file's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Rows per Parquet row group of an output table.
const TABLE_ROW_GROUP_ROWS: usize = 1_000_000;
/// Rows buffered before they are encoded, so that memory does not grow with the table.
const TABLE_BATCH_ROWS: usize = 64 * 1024;

/// Builders for one spec column; an amount feeds two Parquet columns.
enum ColumnBuilder {
    Text(StringBuilder),
    Int(Int64Builder),
    Amount(StringBuilder, Int64Builder),
}

/// Writes rows as a Parquet file (zstd), buffered in row groups.
pub struct ParquetTableWriter {
    spec: TableSpec,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    pending: usize,
    writer: ArrowWriter<Vec<u8>>,
    /// An amount's text, reused from row to row.
    scratch: Vec<u8>,
}

impl ParquetTableWriter {
    pub fn new(spec: TableSpec) -> Result<ParquetTableWriter, TableError> {
        let mut fields = Vec::new();
        let mut builders = Vec::new();
        for &(name, kind) in spec.columns {
            match kind {
                ColumnKind::Text => {
                    fields.push(Field::new(name, DataType::Utf8, false));
                    builders.push(ColumnBuilder::Text(StringBuilder::new()));
                }
                ColumnKind::Int => {
                    fields.push(Field::new(name, DataType::Int64, false));
                    builders.push(ColumnBuilder::Int(Int64Builder::new()));
                }
                ColumnKind::Amount => {
                    fields.push(Field::new(name, DataType::Utf8, false));
                    fields.push(Field::new(format!("{name}_minor"), DataType::Int64, false));
                    builders.push(ColumnBuilder::Amount(
                        StringBuilder::new(),
                        Int64Builder::new(),
                    ));
                }
            }
        }
        let encode = |e: parquet::errors::ParquetError| TableError::Encode {
            table: spec.name,
            message: e.to_string(),
        };
        let schema = Arc::new(Schema::new(fields));
        // Only deterministic properties: no timestamps, the same bytes for the same rows.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(TABLE_ROW_GROUP_ROWS))
            .build();
        let writer =
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(encode)?;
        Ok(ParquetTableWriter {
            spec,
            schema,
            builders,
            pending: 0,
            writer,
            scratch: Vec::new(),
        })
    }

    /// Appends a row; a row that does not match the spec is refused and nothing is written.
    pub fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), TableError> {
        self.spec.check(cells)?;
        for (builder, cell) in self.builders.iter_mut().zip(cells) {
            match (builder, cell) {
                (ColumnBuilder::Text(b), Cell::Text(text)) => b.append_value(text),
                (ColumnBuilder::Int(b), Cell::Int(value)) => b.append_value(*value),
                (ColumnBuilder::Amount(text, minor), Cell::Amount(amount, currency)) => {
                    self.scratch.clear();
                    push_amount_text(&mut self.scratch, *amount, *currency);
                    text.append_value(ascii(&self.scratch));
                    minor.append_value(amount.0);
                }
                // `check` matched every cell to its column's kind.
                _ => {
                    return Err(TableError::Encode {
                        table: self.spec.name,
                        message: "cell and column builder disagree".to_owned(),
                    })
                }
            }
        }
        self.pending += 1;
        if self.pending == TABLE_BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TableError> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for builder in &mut self.builders {
            match builder {
                ColumnBuilder::Text(b) => columns.push(Arc::new(b.finish())),
                ColumnBuilder::Int(b) => columns.push(Arc::new(b.finish())),
                ColumnBuilder::Amount(text, minor) => {
                    columns.push(Arc::new(text.finish()));
                    columns.push(Arc::new(minor.finish()));
                }
            }
        }
        let table = self.spec.name;
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| TableError::Encode {
                table,
                message: e.to_string(),
            })?;
        self.writer.write(&batch).map_err(|e| TableError::Encode {
            table,
            message: e.to_string(),
        })?;
        self.pending = 0;
        Ok(())
    }

    /// The whole file's bytes. A table without rows is a valid Parquet file with the schema.
    pub fn finish(mut self) -> Result<Vec<u8>, TableError> {
        self.flush()?;
        let table = self.spec.name;
        self.writer.into_inner().map_err(|e| TableError::Encode {
            table,
            message: e.to_string(),
        })
    }
}

/// A table's CSV file derived from its Parquet file, byte for byte what [`CsvTableWriter`]
/// wrote for the same rows: `header` is the CSV's header line (with its `\n`), and each name
/// in it is the Parquet column holding that CSV column. A text cell prints as
/// [`CsvTableWriter`] prints it; an integer as its digits; an amount's text column holds
/// exactly what the CSV printed (digits, a sign and a point need no quotes, so printing it as
/// text changes nothing); its `_minor` column is not named in the header and not read.
///
/// This lets a ledger keep only the Parquet file of a table that is written both ways.
pub fn csv_from_parquet(header: &[u8], parquet: Vec<u8>) -> Result<Vec<u8>, TableError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Array, Int64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;

    enum Column<'a> {
        Text(&'a StringArray),
        Int(&'a Int64Array),
    }

    let derive = |message: String| TableError::Derive(message);
    let names = header
        .strip_suffix(b"\n")
        .and_then(|line| std::str::from_utf8(line).ok())
        .ok_or_else(|| derive("the header is not one line of UTF-8".to_owned()))?;
    let names: Vec<&str> = names.split(',').collect();
    let mut printed = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            printed.push(b',');
        }
        push_csv_field(&mut printed, name);
    }
    printed.push(b'\n');
    if printed != header {
        return Err(derive(format!(
            "header {:?} is not a list of plain column names",
            String::from_utf8_lossy(header)
        )));
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(parquet))
        .map_err(|e| derive(e.to_string()))?;
    let fields = builder.parquet_schema().root_schema().get_fields();
    let mut leaves = Vec::with_capacity(names.len());
    for name in &names {
        let leaf = fields
            .iter()
            .position(|f| f.name() == *name)
            .ok_or_else(|| derive(format!("the Parquet file has no column {name}")))?;
        leaves.push(leaf);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), leaves.iter().copied());
    // The projected batch has its columns in file order: find each name's place in it.
    let mut in_file_order = leaves.clone();
    in_file_order.sort_unstable();
    let order: Vec<usize> = leaves
        .iter()
        .map(|leaf| in_file_order.binary_search(leaf).expect("projected"))
        .collect();
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| derive(e.to_string()))?;
    let mut out = header.to_vec();
    for batch in reader {
        let batch = batch.map_err(|e| derive(e.to_string()))?;
        let mut columns = Vec::with_capacity(order.len());
        for &c in &order {
            let column = batch.column(c);
            if column.null_count() > 0 {
                return Err(derive("a column holds nulls".to_owned()));
            }
            columns.push(match column.data_type() {
                DataType::Utf8 => Column::Text(column.as_string::<i32>()),
                DataType::Int64 => Column::Int(column.as_primitive::<Int64Type>()),
                other => {
                    return Err(derive(format!(
                        "a column is {other}, not text or a 64-bit integer"
                    )))
                }
            });
        }
        for row in 0..batch.num_rows() {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match column {
                    Column::Text(values) => push_csv_field(&mut out, values.value(row)),
                    Column::Int(values) => push_i64(&mut out, values.value(row)),
                }
            }
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Digits, a sign and a point, as [`push_amount_text`] writes them.
fn ascii(text: &[u8]) -> &str {
    std::str::from_utf8(text).expect("numbers print as ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::io::{Seek, Write};

    /// Parquet bytes as a file the reader can open.
    fn as_file(bytes: &[u8]) -> std::fs::File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        file
    }

    const SPEC: TableSpec = TableSpec {
        name: "member_positions",
        columns: &[
            ("member_id", ColumnKind::Text),
            ("count", ColumnKind::Int),
            ("net_amount", ColumnKind::Amount),
        ],
    };

    fn cny() -> Currency {
        Currency::from_code("CNY").unwrap()
    }

    fn rows() -> Vec<[Cell<'static>; 3]> {
        let jpy = Currency::from_code("JPY").unwrap();
        vec![
            [
                Cell::Text("A"),
                Cell::Int(2),
                Cell::Amount(AmountMinor(861_799), cny()),
            ],
            [
                Cell::Text("B, \"Beta\""),
                Cell::Int(-1),
                Cell::Amount(AmountMinor(-300), cny()),
            ],
            [
                Cell::Text("C"),
                Cell::Int(0),
                Cell::Amount(AmountMinor(-7), jpy),
            ],
        ]
    }

    #[test]
    fn csv_table_prints_exact_amounts_and_quotes_when_needed() {
        let mut w = CsvTableWriter::new(SPEC);
        for row in rows() {
            w.row(&row).unwrap();
        }
        assert_eq!(
            String::from_utf8(w.finish()).unwrap(),
            "member_id,count,net_amount\nA,2,8617.99\n\"B, \"\"Beta\"\"\",-1,-3.00\nC,0,-7\n"
        );
    }

    #[test]
    fn a_table_rendered_in_parts_concatenates_to_the_whole() {
        let mut whole = CsvTableWriter::new(SPEC);
        for row in rows() {
            whole.row(&row).unwrap();
        }
        let all = rows();
        let (first, rest) = all.split_at(1);
        let mut head = CsvTableWriter::new(SPEC);
        for row in first {
            head.row(row).unwrap();
        }
        let mut tail = CsvTableWriter::continuation(SPEC);
        for row in rest {
            tail.row(row).unwrap();
        }
        let mut joined = head.finish();
        joined.extend_from_slice(&tail.finish());
        assert_eq!(joined, whole.finish());
    }

    #[test]
    fn rows_that_do_not_match_the_spec_are_refused() {
        let mut csv = CsvTableWriter::new(SPEC);
        let mut parquet = ParquetTableWriter::new(SPEC).unwrap();
        let narrow = [Cell::Text("A")];
        let wrong = [Cell::Text("A"), Cell::Text("2"), Cell::Int(1)];
        assert!(matches!(
            csv.row(&narrow),
            Err(TableError::Width {
                found: 1,
                expected: 3,
                ..
            })
        ));
        assert!(matches!(
            parquet.row(&narrow),
            Err(TableError::Width { .. })
        ));
        let err = csv.row(&wrong).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table member_positions: column count expects Int"
        );
        assert!(matches!(
            parquet.row(&wrong),
            Err(TableError::Kind {
                column: "count",
                ..
            })
        ));
        assert_eq!(csv.finish(), b"member_id,count,net_amount\n");
    }

    fn parquet_bytes() -> Vec<u8> {
        let mut w = ParquetTableWriter::new(SPEC).unwrap();
        for row in rows() {
            w.row(&row).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn parquet_table_has_text_and_minor_columns_and_is_deterministic() {
        let bytes = parquet_bytes();
        assert_eq!(bytes, parquet_bytes());
        let reader = ParquetRecordBatchReaderBuilder::try_new(as_file(&bytes))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            ["member_id", "count", "net_amount", "net_amount_minor"]
        );
        let text: Vec<_> = batch
            .column(2)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(text, ["8617.99", "-3.00", "-7"]);
        let minor: Vec<_> = batch
            .column(3)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(minor, [861_799, -300, -7]);
        let ids: Vec<_> = batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ids, ["A", "B, \"Beta\"", "C"]);
    }

    #[test]
    fn empty_parquet_table_is_a_valid_file() {
        let bytes = ParquetTableWriter::new(SPEC).unwrap().finish().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(as_file(&bytes)).unwrap();
        assert_eq!(builder.schema().fields().len(), 4);
        assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
    }

    /// The CSV writer's and the Parquet writer's files for the same rows.
    fn both(spec: TableSpec, rows: &[Vec<Cell<'_>>]) -> (Vec<u8>, Vec<u8>) {
        let mut csv = CsvTableWriter::new(spec);
        let mut parquet = ParquetTableWriter::new(spec).unwrap();
        for row in rows {
            csv.row(row).unwrap();
            parquet.row(row).unwrap();
        }
        (csv.finish(), parquet.finish().unwrap())
    }

    fn header_of(csv: &[u8]) -> &[u8] {
        &csv[..=csv.iter().position(|&b| b == b'\n').unwrap()]
    }

    #[test]
    fn csv_derived_from_parquet_is_the_csv_written() {
        let rows: Vec<Vec<Cell<'_>>> = rows().into_iter().map(Vec::from).collect();
        let (csv, parquet) = both(SPEC, &rows);
        assert_eq!(csv_from_parquet(header_of(&csv), parquet).unwrap(), csv);
        // No rows, and more rows than one batch and one row group hold.
        let (csv, parquet) = both(SPEC, &[]);
        assert_eq!(csv_from_parquet(header_of(&csv), parquet).unwrap(), csv);
        let names: Vec<String> = (0..70_000).map(|i| format!("M{i:05}")).collect();
        let many: Vec<Vec<Cell<'_>>> = names
            .iter()
            .zip(0i64..)
            .map(|(n, i)| {
                vec![
                    Cell::Text(n),
                    Cell::Int(i - 35_000),
                    Cell::Amount(AmountMinor(i * 7 - 3), cny()),
                ]
            })
            .collect();
        let (csv, parquet) = both(SPEC, &many);
        assert_eq!(csv_from_parquet(header_of(&csv), parquet).unwrap(), csv);
    }

    #[test]
    fn a_csv_that_cannot_be_derived_is_an_error() {
        let (csv, parquet) = both(SPEC, &[]);
        let header = header_of(&csv);
        for bad in [
            &b"member_id,count,nope\n"[..],
            b"member_id,count",
            b"\"member_id\",count\n",
            b"\xff\n",
        ] {
            let err = csv_from_parquet(bad, parquet.clone()).unwrap_err();
            assert!(matches!(err, TableError::Derive(_)), "{err}");
        }
        assert!(csv_from_parquet(header, b"not parquet".to_vec()).is_err());
        // A header naming an amount's `_minor` column prints its integers: only the header
        // decides which columns the CSV has.
        let derived = csv_from_parquet(b"net_amount_minor\n", parquet).unwrap();
        assert_eq!(derived, b"net_amount_minor\n");
    }

    proptest::proptest! {
        #[test]
        fn csv_derived_from_parquet_matches_for_any_rows(
            rows in proptest::collection::vec(
                ("(?s).{0,12}", proptest::num::i64::ANY, -(1i64 << 60)..(1i64 << 60), proptest::bool::ANY),
                0..40,
            )
        ) {
            let jpy = Currency::from_code("JPY").unwrap();
            let cells: Vec<Vec<Cell<'_>>> = rows
                .iter()
                .map(|(text, int, minor, yen)| {
                    vec![
                        Cell::Text(text),
                        Cell::Int(*int),
                        Cell::Amount(AmountMinor(*minor), if *yen { jpy } else { cny() }),
                    ]
                })
                .collect();
            let (csv, parquet) = both(SPEC, &cells);
            proptest::prop_assert_eq!(csv_from_parquet(header_of(&csv), parquet).unwrap(), csv);
        }
    }
}
