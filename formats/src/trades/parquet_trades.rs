//! Trades from Parquet, record batch by record batch.
//!
//! The embedded Arrow schema is ignored and columns are decoded by their Parquet types alone,
//! so that strings always arrive as plain UTF-8 arrays whatever writer produced the file
//! (a dictionary-typed Arrow schema written by another tool would otherwise surface as
//! dictionary arrays). The types accepted per column (SPEC §2.4):
//! - ids: UTF-8 strings or integers (an integer's decimal text is the id);
//! - `business_date`: UTF-8 `YYYY-MM-DD` or DATE;
//! - `price`: DECIMAL (INT32, INT64 or FIXED_LEN_BYTE_ARRAY) or a UTF-8 decimal string;
//! - `quantity`: INT64 or any narrower integer (or a UTF-8 integer);
//! - `executed_at`: UTF-8 RFC 3339 or TIMESTAMP (formatted as UTC).

use std::fmt::Write as _;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Date32Array, Date64Array, LargeStringArray, PrimitiveArray,
    RecordBatch, StringArray, StringViewArray,
};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use super::{
    check_text_with, optional_text, price_error, price_from_text, quantity_from_text, Bad,
    DateMemo, KeyColumn, ReadStats, TradeKeys, TradeSink, BUSINESS_DATE, BUYER, EXECUTED_AT,
    INSTRUMENT, PRICE, QUANTITY, SELLER, TRADE_COLUMNS, TRADE_ID,
};
use crate::fields::{
    format_days, format_timestamp, id_problem, is_rfc3339_with, IntError, UTF8_REASON,
};
use crate::model::{Location, RowError, TradeFields};
use crate::money::{Decimal, DecimalError};
use crate::FormatError;

/// Rows per record batch: large enough to amortise per-batch work, small enough to stay in
/// cache-friendly memory.
const BATCH_ROWS: usize = 32 * 1024;

pub(super) fn read<S: TradeSink>(path: &Path, sink: &mut S) -> Result<ReadStats, FormatError> {
    read_part(path, None, sink).map(|part| part.stats)
}

/// The rows of each row group, or `None` when the footer cannot be read (the whole-file read
/// then reports why).
pub(super) fn row_group_rows(path: &Path) -> Result<Option<Vec<u64>>, FormatError> {
    let file = File::open(path).map_err(|source| FormatError::Io {
        path: path.to_owned(),
        source,
    })?;
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    Ok(
        match guarded(|| ArrowReaderMetadata::load(&file, options)) {
            Ok(Ok(meta)) => meta
                .metadata()
                .row_groups()
                .iter()
                .map(|g| u64::try_from(g.num_rows()).ok())
                .collect(),
            _ => None,
        },
    )
}

/// Reads the whole file (`groups` = `None`) or the row groups `groups.0`, whose first row is
/// row `groups.1 + 1` of the file. A part after the first reports nothing about the file as a
/// whole (footer, schema): the first part does, exactly as a whole-file read would.
pub(super) fn read_part<S: TradeSink>(
    path: &Path,
    groups: Option<(Range<usize>, u64)>,
    sink: &mut S,
) -> Result<PartRead, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let bytes = file.metadata().map_err(io_error)?.len();
    let first_row = groups.as_ref().map_or(0, |g| g.1);
    // By row group, not row: a first row group may be empty.
    let reports_file = groups.as_ref().is_none_or(|g| g.0.start == 0);
    let mut part = PartRead {
        stats: ReadStats { rows: 0, bytes },
        complete: true,
    };
    let whole_file = |sink: &mut S, reason: String| {
        if reports_file {
            sink.bad_row(RowError::new(Location::new(path, 1), "", "", "", reason));
        }
    };
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let meta = match guarded(|| ArrowReaderMetadata::load(&file, options.clone())) {
        Ok(Ok(meta)) => meta,
        Ok(Err(e)) => {
            whole_file(sink, format!("is not a readable Parquet file: {e}"));
            return Ok(part);
        }
        Err(panic) => {
            whole_file(sink, format!("is not a readable Parquet file: {panic}"));
            return Ok(part);
        }
    };
    if let Err(reason) = check_chunk_ranges(meta.metadata(), bytes) {
        whole_file(sink, format!("is not a readable Parquet file: {reason}"));
        return Ok(part);
    }
    let positions = match match_schema(path, meta.schema().fields()) {
        Ok(positions) => positions,
        Err(errors) => {
            if reports_file {
                errors.into_iter().for_each(|e| sink.bad_row(e));
            }
            return Ok(part);
        }
    };
    // Low-cardinality text columns are decoded as dictionaries: no string is copied per row,
    // and each distinct value is checked once per row group instead of once per row.
    let executed_dictionary = groups_dictionary_encoded(
        meta.metadata(),
        &positions,
        meta.schema().fields(),
        groups.as_ref().map(|g| g.0.clone()),
    );
    let meta = match dictionary_schema(meta.schema(), &positions, executed_dictionary) {
        Some(schema) => {
            let with_dictionaries = options.with_schema(schema);
            match guarded(|| {
                ArrowReaderMetadata::try_new(meta.metadata().clone(), with_dictionaries)
            }) {
                Ok(Ok(dict_meta)) => dict_meta,
                _ => meta,
            }
        }
        None => meta,
    };
    let mut builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta).with_batch_size(BATCH_ROWS);
    if let Some((range, _)) = &groups {
        builder = builder.with_row_groups(range.clone().collect());
    }
    let mut reader = match guarded(|| builder.build()) {
        Ok(Ok(reader)) => reader,
        Ok(Err(e)) => {
            whole_file(sink, format!("is not a readable Parquet file: {e}"));
            part.complete = false;
            return Ok(part);
        }
        Err(panic) => {
            whole_file(sink, format!("is not a readable Parquet file: {panic}"));
            part.complete = false;
            return Ok(part);
        }
    };
    let mut buffers: [String; 6] = Default::default();
    let mut dates = DateMemo::default();
    let mut keys = [
        DictKeys::new(KeyColumn::Instrument),
        DictKeys::new(KeyColumn::Member),
        DictKeys::new(KeyColumn::Member),
    ];
    let mut stamps: PerEntry<Stamp> = PerEntry::default();
    loop {
        let first = first_row + part.stats.rows + 1;
        let lost = |reason: String| {
            RowError::new(
                Location::new(path, first),
                "",
                "",
                "",
                format!("rows from {first} on could not be decoded: {reason}"),
            )
        };
        // The reader cannot resynchronise after a corrupt page: everything from this batch on
        // is lost, and said so. A part that stops here is not complete: rows of later parts
        // are lost too, which only the caller can know.
        let batch = match guarded(|| reader.next()) {
            Ok(None) => break,
            Ok(Some(Ok(batch))) => batch,
            Ok(Some(Err(e))) => {
                sink.bad_row(lost(e.to_string()));
                part.complete = false;
                return Ok(part);
            }
            Err(panic) => {
                sink.bad_row(lost(panic));
                part.complete = false;
                return Ok(part);
            }
        };
        let Some(columns) = Columns::of(&batch, &positions) else {
            sink.bad_row(lost(format!(
                "a column changed type within the file ({})",
                batch.schema()
            )));
            part.complete = false;
            return Ok(part);
        };
        let [k_instrument, k_buyer, k_seller] = &mut keys;
        k_instrument.refresh(&columns.instrument, sink);
        k_buyer.refresh(&columns.buyer, sink);
        k_seller.refresh(&columns.seller, sink);
        refresh_stamps(&mut stamps, columns.executed_at.as_ref(), &mut dates);
        let fast = FastRows::of(&columns, &stamps);
        for row in 0..batch.num_rows() {
            let line = first_row + part.stats.rows + 1;
            part.stats.rows += 1;
            let known = [
                k_instrument.at(&columns.instrument, row),
                k_buyer.at(&columns.buyer, row),
                k_seller.at(&columns.seller, row),
            ];
            if let Some(fast) = &fast {
                if fast.emit(row, line, known, &mut dates, sink) {
                    continue;
                }
            }
            if let Err((bad, trade_id)) =
                columns.decode(row, line, known, &mut buffers, &mut dates, sink)
            {
                sink.bad_row(bad.into_row_error(path, line, &trade_id));
            }
        }
    }
    Ok(part)
}

/// What reading a part of a file gave.
pub(super) struct PartRead {
    pub stats: ReadStats,
    /// False when the read stopped before the part's end (undecodable data): a whole-file
    /// read would have stopped there too and read nothing of the later parts.
    pub complete: bool,
}

/// Whether `executed_at` is dictionary-encoded in every data page of the row groups read
/// (`None`: all). Only then is it worth reading as a dictionary: a chunk that fell back to
/// plain pages (high-cardinality timestamps, as most real feeds have) would make the reader
/// build a dictionary by hashing every value, slower than reading the strings.
fn groups_dictionary_encoded(
    metadata: &parquet::file::metadata::ParquetMetaData,
    positions: &[Option<usize>; 8],
    fields: &arrow_schema::Fields,
    groups: Option<Range<usize>>,
) -> bool {
    use parquet::basic::Encoding;
    let Some(name) = positions[EXECUTED_AT]
        .and_then(|i| fields.get(i))
        .map(|f| f.name())
    else {
        return false;
    };
    let columns = metadata.file_metadata().schema_descr().columns();
    let Some(leaf) = columns
        .iter()
        .position(|c| c.path().parts() == [name.as_str()])
    else {
        return false;
    };
    let all = 0..metadata.num_row_groups();
    let groups = groups.unwrap_or(all);
    !groups.is_empty()
        && groups.into_iter().all(|g| {
            metadata
                .row_groups()
                .get(g)
                .and_then(|group| group.columns().get(leaf))
                .is_some_and(|chunk| {
                    chunk.dictionary_page_offset().is_some()
                        && chunk.page_encoding_stats_mask().is_some_and(|mask| {
                            mask.is_only(Encoding::RLE_DICTIONARY)
                                || mask.is_only(Encoding::PLAIN_DICTIONARY)
                        })
                })
        })
}

/// Whether a whole-file read of `path` decodes `executed_at` as a dictionary.
#[cfg(test)]
pub(super) fn reads_executed_at_as_dictionary(path: &Path) -> bool {
    let file = File::open(path).unwrap();
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let meta = ArrowReaderMetadata::load(&file, options).unwrap();
    let positions = match_schema(path, meta.schema().fields()).unwrap();
    groups_dictionary_encoded(meta.metadata(), &positions, meta.schema().fields(), None)
}

/// The schema with `business_date`, `instrument`, `buyer` and `seller` (and `executed_at`
/// when `executed_at_too`) as dictionaries where the file stores them as UTF-8 strings;
/// `None` if none is.
fn dictionary_schema(
    schema: &arrow_schema::SchemaRef,
    positions: &[Option<usize>; 8],
    executed_at_too: bool,
) -> Option<arrow_schema::SchemaRef> {
    let mut fields: Vec<arrow_schema::Field> =
        schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut any = false;
    let text_columns: &[usize] = if executed_at_too {
        &[BUSINESS_DATE, INSTRUMENT, BUYER, SELLER, EXECUTED_AT]
    } else {
        &[BUSINESS_DATE, INSTRUMENT, BUYER, SELLER]
    };
    for &k in text_columns {
        let Some(field) = positions[k].and_then(|i| fields.get_mut(i)) else {
            continue;
        };
        if field.data_type() == &DataType::Utf8 {
            let dictionary =
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            *field = field.clone().with_data_type(dictionary);
            any = true;
        }
    }
    any.then(|| {
        std::sync::Arc::new(arrow_schema::Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        ))
    })
}

/// A value per entry of a column's dictionary, recomputed only when the dictionary changes
/// (each row group), so that per-entry checks run once per entry rather than once per row.
struct PerEntry<T> {
    values: Option<ArrayRef>,
    entries: Vec<T>,
}

impl<T> Default for PerEntry<T> {
    fn default() -> Self {
        PerEntry {
            values: None,
            entries: Vec::new(),
        }
    }
}

impl<T> PerEntry<T> {
    /// `of(text)` for each entry (`None`: a null entry); nothing when the column is not a
    /// dictionary or its dictionary is the one seen last.
    fn refresh(&mut self, col: Option<&TextCol<'_>>, mut of: impl FnMut(Option<&str>) -> T) {
        let Some(TextKind::Dict {
            values, strings, ..
        }) = col.map(|c| &c.kind)
        else {
            self.values = None;
            return;
        };
        if matches!(&self.values, Some(v) if std::sync::Arc::ptr_eq(v, values)) {
            return;
        }
        self.entries.clear();
        self.entries
            .extend((0..strings.len()).map(|i| of(strings.is_valid(i).then(|| strings.value(i)))));
        self.values = Some(std::sync::Arc::clone(values));
    }
}

/// Per dictionary entry of one id column: whether it is an id (the reader's syntax check)
/// and the sink's key for it.
struct DictKeys {
    column: KeyColumn,
    keys: PerEntry<Option<u32>>,
}

impl DictKeys {
    fn new(column: KeyColumn) -> DictKeys {
        DictKeys {
            column,
            keys: PerEntry::default(),
        }
    }

    fn refresh<S: TradeSink>(&mut self, col: &TextCol<'_>, sink: &mut S) {
        let column = self.column;
        self.keys.refresh(Some(col), |text| {
            // An entry that is not an id gets no key: its rows take the per-row checks,
            // which report it.
            let text = text.filter(|t| id_problem(t).is_none())?;
            sink.key_of(column, text)
        });
    }

    /// The key of `row`'s entry, `None` when the row has none (not a dictionary, null, not
    /// an id, or unknown to the sink).
    #[inline]
    fn at(&self, col: &TextCol<'_>, row: usize) -> Option<u32> {
        let TextKind::Dict { keys, .. } = &col.kind else {
            return None;
        };
        if col.nulls.is_null(row) {
            return None;
        }
        let entry = usize::try_from(*keys.get(row)?).ok()?;
        *self.keys.entries.get(entry)?
    }
}

/// What a row whose `executed_at` is one dictionary entry holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// Empty text or a null entry: no execution time.
    Absent,
    Valid,
    /// Not RFC 3339: its rows take the per-row checks, which report it.
    Invalid,
}

/// The RFC 3339 check of each `executed_at` dictionary entry.
fn refresh_stamps(stamps: &mut PerEntry<Stamp>, col: Option<&TextCol<'_>>, dates: &mut DateMemo) {
    let memo = dates.executed.get_or_insert_with(Default::default);
    stamps.refresh(col, |text| match text.and_then(optional_text) {
        None => Stamp::Absent,
        Some(at) if is_rfc3339_with(at, |date| memo.is_valid(date)) => Stamp::Valid,
        Some(_) => Stamp::Invalid,
    });
}

/// Runs a call into the Parquet decoder, turning a panic into an error message.
///
/// The decoder asserts on some inconsistent metadata instead of returning an error, and a
/// damaged trade file must reject the day (exit 2), not end the process. Only decoder calls
/// are guarded: a panic in the sink (the engine) is a bug and must propagate. The default
/// panic hook still prints the panic to stderr.
fn guarded<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".to_owned());
        format!("the Parquet decoder failed: {message}")
    })
}

/// Checks that every column chunk lies inside the file, before the decoder asserts on it.
fn check_chunk_ranges(
    metadata: &parquet::file::metadata::ParquetMetaData,
    file_len: u64,
) -> Result<(), String> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let len = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| s.checked_add(l));
            let inside = matches!(end, Some(end) if end <= file_len);
            if !inside {
                return Err(format!(
                    "row group {g}, column {}: chunk at byte {start}, {len} bytes, lies outside the {file_len}-byte file",
                    column.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// Matches the file's columns to the trade columns and checks their types, reporting every
/// problem at row 1 (the schema is the Parquet file's header).
fn match_schema(
    path: &Path,
    fields: &arrow_schema::Fields,
) -> Result<[Option<usize>; 8], Vec<RowError>> {
    let at = Location::new(path, 1);
    let mut errors = Vec::new();
    let mut positions = [None; 8];
    for (i, field) in fields.iter().enumerate() {
        let Some(k) = TRADE_COLUMNS.iter().position(|c| c.name == field.name()) else {
            errors.push(RowError::new(
                at.clone(),
                "",
                field.name(),
                "",
                format!(
                    "is not a known column (expected {})",
                    super::TRADE_COLUMN_NAMES.join(", ")
                ),
            ));
            continue;
        };
        if positions[k].is_some() {
            errors.push(RowError::new(
                at.clone(),
                "",
                field.name(),
                "",
                "appears twice in the schema",
            ));
            continue;
        }
        positions[k] = Some(i);
        let supported = match k {
            TRADE_ID | INSTRUMENT | BUYER | SELLER => {
                is_text(field.data_type()) || is_int(field.data_type())
            }
            BUSINESS_DATE => {
                is_text(field.data_type())
                    || matches!(field.data_type(), DataType::Date32 | DataType::Date64)
            }
            PRICE => {
                is_text(field.data_type())
                    || matches!(
                        field.data_type(),
                        DataType::Decimal32(_, s) | DataType::Decimal64(_, s)
                            | DataType::Decimal128(_, s) | DataType::Decimal256(_, s) if *s >= 0
                    )
            }
            QUANTITY => is_int(field.data_type()) || is_text(field.data_type()),
            _ => {
                is_text(field.data_type()) || matches!(field.data_type(), DataType::Timestamp(_, _))
            }
        };
        if !supported {
            let expected = match k {
                TRADE_ID | INSTRUMENT | BUYER | SELLER => "a UTF-8 string or an integer",
                BUSINESS_DATE => "a UTF-8 string or a DATE",
                PRICE => "DECIMAL or a UTF-8 string (a binary float cannot hold a price exactly)",
                QUANTITY => "INT64",
                _ => "a UTF-8 string or a TIMESTAMP",
            };
            errors.push(RowError::new(
                at.clone(),
                "",
                field.name(),
                &field.data_type().to_string(),
                format!("has an unsupported type; it must be {expected}"),
            ));
        }
    }
    for (k, column) in TRADE_COLUMNS.iter().enumerate() {
        if column.required && positions[k].is_none() {
            errors.push(RowError::new(
                at.clone(),
                "",
                column.name,
                "",
                "is missing from the file's columns",
            ));
        }
    }
    if errors.is_empty() {
        Ok(positions)
    } else {
        Err(errors)
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary
    )
}

fn is_int(t: &DataType) -> bool {
    t.is_integer()
}

/// One batch's columns, downcast once per batch.
struct Columns<'a> {
    trade_id: TextCol<'a>,
    business_date: TextCol<'a>,
    instrument: TextCol<'a>,
    buyer: TextCol<'a>,
    seller: TextCol<'a>,
    price: PriceCol<'a>,
    quantity: QuantityCol<'a>,
    executed_at: Option<TextCol<'a>>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch, positions: &[Option<usize>; 8]) -> Option<Columns<'a>> {
        // Row indexes below the batch's row count are then valid in every column.
        let column = |k: usize| -> Option<&'a dyn Array> {
            positions[k]
                .and_then(|i| batch.columns().get(i))
                .map(|c| c.as_ref())
                .filter(|c| c.len() == batch.num_rows())
        };
        Some(Columns {
            trade_id: TextCol::of(column(TRADE_ID)?)?,
            business_date: TextCol::of(column(BUSINESS_DATE)?)?,
            instrument: TextCol::of(column(INSTRUMENT)?)?,
            buyer: TextCol::of(column(BUYER)?)?,
            seller: TextCol::of(column(SELLER)?)?,
            price: PriceCol::of(column(PRICE)?)?,
            quantity: QuantityCol::of(column(QUANTITY)?)?,
            executed_at: match column(EXECUTED_AT) {
                Some(array) => Some(TextCol::of(array)?),
                None => None,
            },
        })
    }

    /// `known`: the sink's keys of the row's instrument, buyer and seller, where its
    /// dictionary entry is an id the sink knows.
    fn decode<S: TradeSink>(
        &self,
        row: usize,
        line: u64,
        known: [Option<u32>; 3],
        buffers: &mut [String; 6],
        dates: &mut DateMemo,
        sink: &mut S,
    ) -> Result<(), (Bad, String)> {
        let [b_id, b_date, b_instrument, b_buyer, b_seller, b_executed] = buffers;
        let trade_id = self
            .trade_id
            .required(row, TRADE_ID, b_id)
            .map_err(|bad| (bad, String::new()))?;
        let with_id = |bad: Bad| (bad, trade_id.to_owned());
        let business_date = self
            .business_date
            .required(row, BUSINESS_DATE, b_date)
            .map_err(with_id)?;
        let instrument = self
            .instrument
            .required(row, INSTRUMENT, b_instrument)
            .map_err(with_id)?;
        let buyer = self.buyer.required(row, BUYER, b_buyer).map_err(with_id)?;
        let seller = self
            .seller
            .required(row, SELLER, b_seller)
            .map_err(with_id)?;
        let executed_at = match &self.executed_at {
            Some(col) => col
                .get(row, EXECUTED_AT, b_executed)
                .map_err(with_id)?
                .and_then(optional_text),
            None => None,
        };
        // A key exists only for an entry that passed the id check.
        let ids_known_good = known.iter().all(Option::is_some);
        check_text_with(
            dates,
            trade_id,
            business_date,
            [instrument, buyer, seller],
            ids_known_good,
            executed_at,
        )
        .map_err(with_id)?;
        let price = self.price.get(row).map_err(with_id)?;
        let quantity = self.quantity.get(row).map_err(with_id)?;
        let fields = TradeFields {
            trade_id,
            business_date,
            instrument,
            buyer,
            seller,
            price,
            quantity,
            executed_at,
        };
        let [instrument, buyer, seller] = known;
        if ids_known_good {
            sink.trade_keyed(
                line,
                &fields,
                TradeKeys {
                    instrument,
                    buyer,
                    seller,
                },
            );
        } else {
            sink.trade(line, &fields);
        }
        Ok(())
    }
}

/// A batch in the layout `clearhouse gen` and most writers produce, read without the per-row
/// dispatch of [`Columns::decode`]: plain UTF-8 trade ids, dictionary-encoded date and ids,
/// a 64- or 128-bit DECIMAL price, an INT64 quantity, no nulls but in `executed_at`. A row
/// it takes is a row every check of [`Columns::decode`] passes, decoded to the same fields;
/// any other row (a check fails, an id is unknown) goes to [`Columns::decode`], which
/// words the refusal as always.
struct FastRows<'a> {
    trade_id: Texts<'a>,
    business_date: DictText<'a>,
    instrument: DictText<'a>,
    buyer: DictText<'a>,
    seller: DictText<'a>,
    price: FastPrice<'a>,
    quantity: &'a [i64],
    executed_at: FastStamps<'a>,
}

/// `executed_at` as the fast path reads it.
enum FastStamps<'a> {
    None,
    /// Strings, checked per row.
    Utf8(Texts<'a>, Nulls<'a>),
    /// Dictionary keys and the entries' checks ([`refresh_stamps`]).
    Dict {
        keys: &'a [i32],
        strings: Texts<'a>,
        nulls: Nulls<'a>,
        entries: &'a [Stamp],
    },
}

/// A string array's values as slices of its one value buffer, checked as UTF-8 once per
/// batch: a row's text is then an inlined slice, where Arrow's `value` was a call per field
/// (six per row, 5% of the intake).
#[derive(Clone, Copy)]
struct Texts<'a> {
    offsets: &'a [i32],
    values: &'a str,
}

impl<'a> Texts<'a> {
    fn of(array: &'a StringArray) -> Option<Texts<'a>> {
        Some(Texts {
            offsets: array.value_offsets(),
            values: crate::fields::text_of(array.value_data()).ok()?,
        })
    }

    /// Every value, or `None` if an offset is not a value's.
    fn all(&self) -> Option<Vec<&'a str>> {
        (0..self.offsets.len().saturating_sub(1))
            .map(|i| self.get(i))
            .collect()
    }

    /// The `i`th value; `None` past the end (or at offsets that are not a value's).
    #[inline(always)]
    fn get(&self, i: usize) -> Option<&'a str> {
        let start = usize::try_from(*self.offsets.get(i)?).ok()?;
        let end = usize::try_from(*self.offsets.get(i + 1)?).ok()?;
        self.values.get(start..end)
    }
}

/// A dictionary-encoded text column without nulls (in keys or values), its entries sliced
/// once per batch: a row's text is then one load, not two offsets and two boundary checks.
struct DictText<'a> {
    keys: &'a [i32],
    entries: Vec<&'a str>,
}

impl<'a> DictText<'a> {
    fn of(col: &TextCol<'a>) -> Option<DictText<'a>> {
        match col.kind {
            TextKind::Dict { keys, strings, .. } if !col.nulls.any && strings.null_count() == 0 => {
                Some(DictText {
                    keys,
                    entries: Texts::of(strings)?.all()?,
                })
            }
            _ => None,
        }
    }

    #[inline]
    fn text(&self, row: usize) -> Option<&'a str> {
        let entry = usize::try_from(*self.keys.get(row)?).ok()?;
        self.entries.get(entry).copied()
    }
}

enum FastPrice<'a> {
    I64(&'a [i64], u32),
    I128(&'a [i128], u32),
}

impl<'a> FastRows<'a> {
    fn of(columns: &Columns<'a>, stamps: &'a PerEntry<Stamp>) -> Option<FastRows<'a>> {
        let trade_id = match columns.trade_id.kind {
            TextKind::Utf8(a) if !columns.trade_id.nulls.any => Texts::of(a)?,
            _ => return None,
        };
        if columns.price.nulls.any || columns.quantity.nulls.any {
            return None;
        }
        let price = match &columns.price.kind {
            PriceKind::Decimal64(a, scale) => FastPrice::I64(a.values(), *scale),
            PriceKind::Decimal128(a, scale) => FastPrice::I128(a.values(), *scale),
            _ => return None,
        };
        let quantity = match &columns.quantity.kind {
            QuantityKind::Int(IntCol::I64(a)) => a.values().as_ref(),
            _ => return None,
        };
        let executed_at = match &columns.executed_at {
            None => FastStamps::None,
            Some(col) => match col.kind {
                TextKind::Utf8(a) => FastStamps::Utf8(Texts::of(a)?, col.nulls),
                TextKind::Dict { keys, strings, .. } if stamps.values.is_some() => {
                    FastStamps::Dict {
                        keys,
                        strings: Texts::of(strings)?,
                        nulls: col.nulls,
                        entries: &stamps.entries,
                    }
                }
                _ => return None,
            },
        };
        Some(FastRows {
            trade_id,
            business_date: DictText::of(&columns.business_date)?,
            instrument: DictText::of(&columns.instrument)?,
            buyer: DictText::of(&columns.buyer)?,
            seller: DictText::of(&columns.seller)?,
            price,
            quantity,
            executed_at,
        })
    }

    /// Hands `row` to the sink if it passes every check, and says whether it did.
    #[inline]
    fn emit<S: TradeSink>(
        &self,
        row: usize,
        line: u64,
        known: [Option<u32>; 3],
        dates: &mut DateMemo,
        sink: &mut S,
    ) -> bool {
        // A key exists only for an entry that passed the id check and that the sink knows.
        let [Some(instrument_key), Some(buyer_key), Some(seller_key)] = known else {
            return false;
        };
        let Some(trade_id) = self.trade_id.get(row) else {
            return false;
        };
        let (Some(business_date), Some(instrument), Some(buyer), Some(seller)) = (
            self.business_date.text(row),
            self.instrument.text(row),
            self.buyer.text(row),
            self.seller.text(row),
        ) else {
            return false;
        };
        // The checks of `check_text_with` with the ids known good, as yes/no.
        if id_problem(trade_id).is_some() || !dates.is_valid(business_date) {
            return false;
        }
        let executed_at = match &self.executed_at {
            FastStamps::Utf8(values, nulls) if !nulls.is_null(row) => {
                let Some(text) = values.get(row) else {
                    return false;
                };
                let at = optional_text(text);
                if let Some(at) = at {
                    let memo = dates.executed.get_or_insert_with(Default::default);
                    if !is_rfc3339_with(at, |date| memo.is_valid(date)) {
                        return false;
                    }
                }
                at
            }
            FastStamps::Dict {
                keys,
                strings,
                nulls,
                entries,
            } if !nulls.is_null(row) => {
                let Some(entry) = keys.get(row).and_then(|&k| usize::try_from(k).ok()) else {
                    return false;
                };
                match entries.get(entry) {
                    Some(Stamp::Absent) => None,
                    Some(Stamp::Valid) => match strings.get(entry) {
                        Some(text) => Some(text),
                        None => return false,
                    },
                    Some(Stamp::Invalid) | None => return false,
                }
            }
            _ => None,
        };
        let price = match self.price {
            FastPrice::I64(values, scale) => values
                .get(row)
                .and_then(|&u| Decimal::from_unscaled_i64(u, scale).ok()),
            FastPrice::I128(values, scale) => values
                .get(row)
                .and_then(|&u| Decimal::from_unscaled(u, scale).ok()),
        };
        let (Some(price), Some(&quantity)) = (price, self.quantity.get(row)) else {
            return false;
        };
        sink.trade_keyed(
            line,
            &TradeFields {
                trade_id,
                business_date,
                instrument,
                buyer,
                seller,
                price,
                quantity,
                executed_at,
            },
            TradeKeys {
                instrument: Some(instrument_key),
                buyer: Some(buyer_key),
                seller: Some(seller_key),
            },
        );
        true
    }
}

/// Null checks without a dynamic call per row when the column has no nulls (the usual case).
#[derive(Clone, Copy)]
struct Nulls<'a> {
    array: &'a dyn Array,
    any: bool,
}

impl<'a> Nulls<'a> {
    fn of(array: &'a dyn Array) -> Nulls<'a> {
        Nulls {
            array,
            any: array.null_count() > 0,
        }
    }

    #[inline]
    fn is_null(&self, row: usize) -> bool {
        self.any && self.array.is_null(row)
    }
}

/// A column read as text: strings in place, numbers, dates and timestamps formatted into a
/// per-column buffer that is reused from row to row.
struct TextCol<'a> {
    nulls: Nulls<'a>,
    kind: TextKind<'a>,
}

enum TextKind<'a> {
    Utf8(&'a StringArray),
    /// A dictionary-encoded UTF-8 column: per row an index into `strings`.
    Dict {
        keys: &'a [i32],
        values: &'a ArrayRef,
        strings: &'a StringArray,
    },
    LargeUtf8(&'a LargeStringArray),
    View(&'a StringViewArray),
    Binary(&'a BinaryArray),
    Int(IntCol<'a>),
    Date32(&'a Date32Array),
    Date64(&'a Date64Array),
    /// Values and the number of units per second.
    Timestamp(&'a [i64], i64),
}

impl<'a> TextCol<'a> {
    fn of(array: &'a dyn Array) -> Option<TextCol<'a>> {
        let kind = match array.data_type() {
            DataType::Utf8 => TextKind::Utf8(array.as_string_opt::<i32>()?),
            DataType::Dictionary(key, value)
                if **key == DataType::Int32 && **value == DataType::Utf8 =>
            {
                let dictionary = array.as_dictionary_opt::<Int32Type>()?;
                TextKind::Dict {
                    keys: dictionary.keys().values(),
                    values: dictionary.values(),
                    strings: dictionary.values().as_string_opt::<i32>()?,
                }
            }
            DataType::LargeUtf8 => TextKind::LargeUtf8(array.as_string_opt::<i64>()?),
            DataType::Utf8View => TextKind::View(array.as_string_view_opt()?),
            DataType::Binary => TextKind::Binary(array.as_binary_opt::<i32>()?),
            DataType::Date32 => TextKind::Date32(array.as_primitive_opt::<Date32Type>()?),
            DataType::Date64 => TextKind::Date64(array.as_primitive_opt::<Date64Type>()?),
            DataType::Timestamp(unit, _) => {
                let (values, per_second): (&[i64], i64) = match unit {
                    TimeUnit::Second => {
                        (array.as_primitive_opt::<TimestampSecondType>()?.values(), 1)
                    }
                    TimeUnit::Millisecond => (
                        array
                            .as_primitive_opt::<TimestampMillisecondType>()?
                            .values(),
                        1_000,
                    ),
                    TimeUnit::Microsecond => (
                        array
                            .as_primitive_opt::<TimestampMicrosecondType>()?
                            .values(),
                        1_000_000,
                    ),
                    TimeUnit::Nanosecond => (
                        array
                            .as_primitive_opt::<TimestampNanosecondType>()?
                            .values(),
                        1_000_000_000,
                    ),
                };
                TextKind::Timestamp(values, per_second)
            }
            _ => TextKind::Int(IntCol::of(array)?),
        };
        Some(TextCol {
            nulls: Nulls::of(array),
            kind,
        })
    }

    fn required<'b>(
        &'b self,
        row: usize,
        column: usize,
        buffer: &'b mut String,
    ) -> Result<&'b str, Bad> {
        self.get(row, column, buffer)?
            .ok_or_else(|| Bad::new(column, "", "is null"))
    }

    /// The row's text, `None` when it is null. `row` is below the batch's row count, which
    /// [`Columns::of`] checked every column has.
    #[inline]
    fn get<'b>(
        &'b self,
        row: usize,
        column: usize,
        buffer: &'b mut String,
    ) -> Result<Option<&'b str>, Bad> {
        if self.nulls.is_null(row) {
            return Ok(None);
        }
        let out_of_range = |value: i64| {
            Bad::new(
                column,
                &value.to_string(),
                "is out of the calendar's range (years 1 to 9999)",
            )
        };
        Ok(Some(match &self.kind {
            TextKind::Utf8(a) => a.value(row),
            TextKind::Dict { keys, strings, .. } => {
                let entry = keys
                    .get(row)
                    .and_then(|&k| usize::try_from(k).ok())
                    .filter(|&k| k < strings.len() && strings.is_valid(k));
                match entry {
                    Some(k) => strings.value(k),
                    None => return Ok(None),
                }
            }
            TextKind::LargeUtf8(a) => a.value(row),
            TextKind::View(a) => a.value(row),
            TextKind::Binary(a) => {
                let bytes = a.value(row);
                std::str::from_utf8(bytes)
                    .map_err(|_| Bad::new(column, &String::from_utf8_lossy(bytes), UTF8_REASON))?
            }
            TextKind::Int(c) => {
                buffer.clear();
                // Writing into a String cannot fail.
                let _ = write!(buffer, "{}", c.value(row));
                buffer
            }
            TextKind::Date32(a) => {
                buffer.clear();
                let days = i64::from(a.value(row));
                format_days(days, buffer).ok_or_else(|| out_of_range(days))?;
                buffer
            }
            TextKind::Date64(a) => {
                buffer.clear();
                let millis = a.value(row);
                format_days(millis.div_euclid(86_400_000), buffer)
                    .ok_or_else(|| out_of_range(millis))?;
                buffer
            }
            TextKind::Timestamp(values, per_second) => {
                buffer.clear();
                let value = values.get(row).copied().unwrap_or_default();
                format_timestamp(value, *per_second, buffer).ok_or_else(|| out_of_range(value))?;
                buffer
            }
        }))
    }
}

/// An integer column of any width, read as `i128` so that every width converts exactly.
enum IntCol<'a> {
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
}

impl<'a> IntCol<'a> {
    fn of(array: &'a dyn Array) -> Option<IntCol<'a>> {
        Some(match array.data_type() {
            DataType::Int8 => IntCol::I8(array.as_primitive_opt()?),
            DataType::Int16 => IntCol::I16(array.as_primitive_opt()?),
            DataType::Int32 => IntCol::I32(array.as_primitive_opt()?),
            DataType::Int64 => IntCol::I64(array.as_primitive_opt()?),
            DataType::UInt8 => IntCol::U8(array.as_primitive_opt()?),
            DataType::UInt16 => IntCol::U16(array.as_primitive_opt()?),
            DataType::UInt32 => IntCol::U32(array.as_primitive_opt()?),
            DataType::UInt64 => IntCol::U64(array.as_primitive_opt()?),
            _ => return None,
        })
    }

    /// The value at `row` (below the batch's row count), whatever is under a null.
    #[inline]
    fn value(&self, row: usize) -> i128 {
        match self {
            IntCol::I8(a) => i128::from(a.value(row)),
            IntCol::I16(a) => i128::from(a.value(row)),
            IntCol::I32(a) => i128::from(a.value(row)),
            IntCol::I64(a) => i128::from(a.value(row)),
            IntCol::U8(a) => i128::from(a.value(row)),
            IntCol::U16(a) => i128::from(a.value(row)),
            IntCol::U32(a) => i128::from(a.value(row)),
            IntCol::U64(a) => i128::from(a.value(row)),
        }
    }
}

struct PriceCol<'a> {
    nulls: Nulls<'a>,
    kind: PriceKind<'a>,
}

enum PriceKind<'a> {
    Decimal32(&'a PrimitiveArray<Decimal32Type>, u32),
    Decimal64(&'a PrimitiveArray<Decimal64Type>, u32),
    Decimal128(&'a PrimitiveArray<Decimal128Type>, u32),
    Decimal256(&'a PrimitiveArray<Decimal256Type>, u32),
    Text(TextCol<'a>),
}

impl<'a> PriceCol<'a> {
    fn of(array: &'a dyn Array) -> Option<PriceCol<'a>> {
        let scale = |s: i8| u32::try_from(s).ok();
        let kind = match array.data_type() {
            DataType::Decimal32(_, s) => {
                PriceKind::Decimal32(array.as_primitive_opt()?, scale(*s)?)
            }
            DataType::Decimal64(_, s) => {
                PriceKind::Decimal64(array.as_primitive_opt()?, scale(*s)?)
            }
            DataType::Decimal128(_, s) => {
                PriceKind::Decimal128(array.as_primitive_opt()?, scale(*s)?)
            }
            DataType::Decimal256(_, s) => {
                PriceKind::Decimal256(array.as_primitive_opt()?, scale(*s)?)
            }
            t if is_text(t) => PriceKind::Text(TextCol::of(array)?),
            _ => return None,
        };
        Some(PriceCol {
            nulls: Nulls::of(array),
            kind,
        })
    }

    #[inline]
    fn get(&self, row: usize) -> Result<Decimal, Bad> {
        if self.nulls.is_null(row) {
            return Err(Bad::new(PRICE, "", "is null"));
        }
        let (unscaled, scale) = match &self.kind {
            PriceKind::Decimal32(a, s) => (Some(i128::from(a.value(row))), *s),
            PriceKind::Decimal64(a, s) => (Some(i128::from(a.value(row))), *s),
            PriceKind::Decimal128(a, s) => (Some(a.value(row)), *s),
            PriceKind::Decimal256(a, s) => (a.value(row).to_i128(), *s),
            PriceKind::Text(c) => {
                let mut unused = String::new();
                return price_from_text(c.required(row, PRICE, &mut unused)?);
            }
        };
        let shown = || match unscaled {
            Some(u) => crate::money::format_scaled(u, scale),
            None => "(beyond 38 digits)".to_owned(),
        };
        unscaled
            .ok_or(DecimalError::TooLarge)
            .and_then(|u| Decimal::from_unscaled(u, scale))
            .map_err(|e| price_error(&shown(), e))
    }
}

struct QuantityCol<'a> {
    nulls: Nulls<'a>,
    kind: QuantityKind<'a>,
}

enum QuantityKind<'a> {
    Int(IntCol<'a>),
    Text(TextCol<'a>),
}

impl<'a> QuantityCol<'a> {
    fn of(array: &'a dyn Array) -> Option<QuantityCol<'a>> {
        let kind = match IntCol::of(array) {
            Some(ints) => QuantityKind::Int(ints),
            None if is_text(array.data_type()) => QuantityKind::Text(TextCol::of(array)?),
            None => return None,
        };
        Some(QuantityCol {
            nulls: Nulls::of(array),
            kind,
        })
    }

    #[inline]
    fn get(&self, row: usize) -> Result<i64, Bad> {
        if self.nulls.is_null(row) {
            return Err(Bad::new(QUANTITY, "", "is null"));
        }
        match &self.kind {
            QuantityKind::Int(ints) => {
                let value = ints.value(row);
                i64::try_from(value).map_err(|_| {
                    Bad::new(
                        QUANTITY,
                        &value.to_string(),
                        IntError::Overflow.reason("quantity"),
                    )
                })
            }
            QuantityKind::Text(c) => {
                let mut unused = String::new();
                quantity_from_text(c.required(row, QUANTITY, &mut unused)?)
            }
        }
    }
}
