//! Trade file writer for `clearhouse gen`: what it writes, [`super::read_trades`] reads back
//! to the same [`TradeFields`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Decimal128Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{TradeFormat, TRADE_COLUMN_NAMES};
use crate::encode::{push_csv_field, push_decimal, push_int};
use crate::model::TradeFields;
use crate::FormatError;

/// Rows per Parquet row group (SPEC-independent; big groups compress and scan well).
pub const PARQUET_ROW_GROUP_ROWS: usize = 1_000_000;

/// Rows buffered before they are handed to the Parquet writer, which gathers them into row
/// groups; bounded so that memory does not grow with the row group.
const PARQUET_BATCH_ROWS: usize = 64 * 1024;

/// The largest DECIMAL precision stored on INT64.
const PRICE_PRECISION: u8 = 18;

/// Writes trades as CSV, JSON Lines or Parquet. Call [`TradeFileWriter::finish`]: a writer
/// dropped without it leaves an incomplete file (a Parquet file without its footer).
pub struct TradeFileWriter {
    path: PathBuf,
    inner: Inner,
}

enum Inner {
    Text {
        format: TradeFormat,
        out: BufWriter<File>,
        line: Vec<u8>,
    },
    Parquet(Box<ParquetTrades>),
}

impl TradeFileWriter {
    /// Creates (or truncates) `path`. `price_scale` is the scale of the Parquet DECIMAL(18, s)
    /// price column, at most 18; every price written must fit it exactly. CSV and JSON Lines
    /// write each price's own decimal text and ignore it.
    pub fn create(
        path: &Path,
        format: TradeFormat,
        price_scale: u32,
    ) -> Result<TradeFileWriter, FormatError> {
        Self::create_with_row_groups(path, format, price_scale, PARQUET_ROW_GROUP_ROWS)
    }

    /// [`TradeFileWriter::create`] with Parquet row groups of at most `row_group_rows` rows
    /// (tests split files by row group).
    pub fn create_with_row_groups(
        path: &Path,
        format: TradeFormat,
        price_scale: u32,
        row_group_rows: usize,
    ) -> Result<TradeFileWriter, FormatError> {
        let io_error = |source| FormatError::Io {
            path: path.to_owned(),
            source,
        };
        if format == TradeFormat::Parquet && price_scale > u32::from(PRICE_PRECISION) {
            return Err(parquet_error(
                path,
                format!("price scale {price_scale} is above the DECIMAL(18) maximum of 18"),
            ));
        }
        let file = File::create(path).map_err(io_error)?;
        let out = BufWriter::with_capacity(1 << 20, file);
        let inner = match format {
            TradeFormat::Csv | TradeFormat::Jsonl => {
                let mut inner = Inner::Text {
                    format,
                    out,
                    line: Vec::with_capacity(256),
                };
                if let Inner::Text { out, .. } = &mut inner {
                    if format == TradeFormat::Csv {
                        out.write_all(TRADE_COLUMN_NAMES.join(",").as_bytes())
                            .and_then(|()| out.write_all(b"\n"))
                            .map_err(io_error)?;
                    }
                }
                inner
            }
            TradeFormat::Parquet => Inner::Parquet(Box::new(
                ParquetTrades::new(out, price_scale, row_group_rows.max(1))
                    .map_err(|m| parquet_error(path, m))?,
            )),
        };
        Ok(TradeFileWriter {
            path: path.to_owned(),
            inner,
        })
    }

    pub fn write(&mut self, trade: &TradeFields<'_>) -> Result<(), FormatError> {
        match &mut self.inner {
            Inner::Text { format, out, line } => {
                line.clear();
                if *format == TradeFormat::Csv {
                    csv_line(line, trade);
                } else {
                    json_line(line, trade);
                }
                out.write_all(line).map_err(|source| FormatError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
            Inner::Parquet(p) => p.push(trade).map_err(|m| parquet_error(&self.path, m)),
        }
    }

    /// Flushes everything and, for Parquet, writes the footer.
    pub fn finish(self) -> Result<(), FormatError> {
        let path = self.path;
        let io_error = |source| FormatError::Io {
            path: path.clone(),
            source,
        };
        match self.inner {
            Inner::Text { mut out, .. } => out.flush().map_err(io_error),
            Inner::Parquet(p) => {
                let mut out = p.finish().map_err(|m| parquet_error(&path, m))?;
                out.flush().map_err(io_error)
            }
        }
    }
}

fn parquet_error(path: &Path, message: String) -> FormatError {
    FormatError::Parquet {
        path: path.to_owned(),
        message,
    }
}

fn csv_line(line: &mut Vec<u8>, t: &TradeFields<'_>) {
    for text in [t.trade_id, t.business_date, t.instrument, t.buyer, t.seller] {
        push_csv_field(line, text);
        line.push(b',');
    }
    push_decimal(line, t.price);
    line.push(b',');
    push_int(line, i128::from(t.quantity));
    line.push(b',');
    push_csv_field(line, t.executed_at.unwrap_or(""));
    line.push(b'\n');
}

fn push_json_string(line: &mut Vec<u8>, text: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *line, text);
}

/// One JSON object per line; the price is a JSON string so that no reader can take it for a
/// float.
fn json_line(line: &mut Vec<u8>, t: &TradeFields<'_>) {
    let texts = [t.trade_id, t.business_date, t.instrument, t.buyer, t.seller];
    line.push(b'{');
    for (name, text) in TRADE_COLUMN_NAMES.iter().zip(texts) {
        push_json_string(line, name);
        line.push(b':');
        push_json_string(line, text);
        line.push(b',');
    }
    line.extend_from_slice(b"\"price\":\"");
    push_decimal(line, t.price);
    line.extend_from_slice(b"\",\"quantity\":");
    push_int(line, i128::from(t.quantity));
    if let Some(at) = t.executed_at {
        line.extend_from_slice(b",\"executed_at\":");
        push_json_string(line, at);
    }
    line.extend_from_slice(b"}\n");
}

/// Column builders for the rows not yet handed to the Parquet writer.
struct ParquetTrades {
    writer: ArrowWriter<BufWriter<File>>,
    schema: SchemaRef,
    scale: u32,
    text: [StringBuilder; 5],
    price: Decimal128Builder,
    quantity: Int64Builder,
    executed_at: StringBuilder,
    pending: usize,
}

impl ParquetTrades {
    fn new(
        out: BufWriter<File>,
        scale: u32,
        row_group_rows: usize,
    ) -> Result<ParquetTrades, String> {
        let scale_i8 = i8::try_from(scale).map_err(|e| e.to_string())?;
        let price_type = DataType::Decimal128(PRICE_PRECISION, scale_i8);
        let mut fields: Vec<Field> = TRADE_COLUMN_NAMES[..5]
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, false))
            .collect();
        fields.push(Field::new("price", price_type, false));
        fields.push(Field::new("quantity", DataType::Int64, false));
        fields.push(Field::new("executed_at", DataType::Utf8, true));
        let schema = Arc::new(Schema::new(fields));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(row_group_rows))
            .build();
        let writer =
            ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
        Ok(ParquetTrades {
            writer,
            schema,
            scale,
            text: Default::default(),
            price: new_price_builder(scale_i8)?,
            quantity: Int64Builder::new(),
            executed_at: StringBuilder::new(),
            pending: 0,
        })
    }

    fn push(&mut self, t: &TradeFields<'_>) -> Result<(), String> {
        let unscaled = self.unscaled(t)?;
        for (builder, text) in
            self.text
                .iter_mut()
                .zip([t.trade_id, t.business_date, t.instrument, t.buyer, t.seller])
        {
            builder.append_value(text);
        }
        self.price.append_value(unscaled);
        self.quantity.append_value(t.quantity);
        self.executed_at.append_option(t.executed_at);
        self.pending += 1;
        if self.pending == PARQUET_BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// The price as the column's unscaled integer, refusing any loss of digits.
    fn unscaled(&self, t: &TradeFields<'_>) -> Result<i128, String> {
        let refuse = |why: &str| {
            format!(
                "trade {}: price {} {why} DECIMAL({PRICE_PRECISION}, {})",
                t.trade_id, t.price, self.scale
            )
        };
        if t.price.scale > self.scale {
            return Err(refuse("has more decimals than the column's"));
        }
        let unscaled = 10i128
            .checked_pow(self.scale - t.price.scale)
            .and_then(|f| f.checked_mul(i128::from(t.price.mantissa)))
            .filter(|u| u.unsigned_abs() < 10u128.pow(u32::from(PRICE_PRECISION)))
            .ok_or_else(|| refuse("does not fit"))?;
        Ok(unscaled)
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = self
            .text
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        columns.push(Arc::new(self.price.finish()));
        columns.push(Arc::new(self.quantity.finish()));
        columns.push(Arc::new(self.executed_at.finish()));
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())?;
        self.writer.write(&batch).map_err(|e| e.to_string())?;
        self.pending = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<BufWriter<File>, String> {
        self.flush()?;
        self.writer.into_inner().map_err(|e| e.to_string())
    }
}

fn new_price_builder(scale: i8) -> Result<Decimal128Builder, String> {
    Decimal128Builder::new()
        .with_precision_and_scale(PRICE_PRECISION, scale)
        .map_err(|e| e.to_string())
}
