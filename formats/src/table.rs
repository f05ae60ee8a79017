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
        CsvTableWriter { spec, out }
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
}
