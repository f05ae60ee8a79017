//! Streaming trade readers (CSV, JSON Lines, Parquet) and writers (for `clearhouse gen`).
//!
//! A reader never loads a whole file: it hands each decoded row to a [`TradeSink`], and each
//! row it cannot decode to the same sink as a [`RowError`], then goes on with the next row.
//!
//! Readers check syntax only (SPEC §2.4): ids are ids, the date is a calendar date, the price a
//! decimal, the quantity a 64-bit integer, `executed_at` RFC 3339. Every format goes through the
//! same checks here, so the same bad value gets the same reason whatever file it came in.

mod csv_trades;
mod json_body;
mod jsonl_trades;
mod key_cache;
mod parquet_trades;
mod writer;

use std::ops::Range;
use std::path::Path;

use crate::csvscan::{optional, required, Column};
use crate::fields::{
    decimal_reason, id_problem, is_rfc3339_with, parse_i64, DATE_REASON, TIMESTAMP_REASON,
};
use crate::model::{BusinessDate, Location, RowError, TradeFields};
use crate::money::{Decimal, DecimalError};
use crate::FormatError;

pub use json_body::{read_json_body, BodyError};
pub use writer::TradeFileWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TradeFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl TradeFormat {
    /// The format of a `trades*` file by its extension, `None` for other files.
    pub fn of_path(path: &Path) -> Option<TradeFormat> {
        match path.extension()?.to_str()? {
            "csv" => Some(TradeFormat::Csv),
            "jsonl" => Some(TradeFormat::Jsonl),
            "parquet" => Some(TradeFormat::Parquet),
            _ => None,
        }
    }

    /// The file extension of this format, without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            TradeFormat::Csv => "csv",
            TradeFormat::Jsonl => "jsonl",
            TradeFormat::Parquet => "parquet",
        }
    }
}

/// Receives the rows of a trade file in file order.
pub trait TradeSink {
    /// A row whose fields decoded. `line` is the CSV/JSONL line (header = line 1 in CSV) or
    /// the 1-based Parquet row.
    fn trade(&mut self, line: u64, fields: &TradeFields<'_>);
    /// A row (or the file header, or the whole file) that could not be decoded.
    fn bad_row(&mut self, error: RowError);

    /// The sink's own number for an id of a key column (an index into its reference data),
    /// or `None`. It must depend on `column` and `id` alone: readers ask once per distinct
    /// value of a dictionary-encoded column (a Parquet row group's dictionary) instead of
    /// once per row, and hand the answers back with each row in [`TradeSink::trade_keyed`].
    fn key_of(&mut self, column: KeyColumn, id: &str) -> Option<u32> {
        let _ = (column, id);
        None
    }

    /// A decoded row with what [`TradeSink::key_of`] answered for its instrument, buyer and
    /// seller (`None` where the reader did not ask). The default ignores the keys.
    fn trade_keyed(&mut self, line: u64, fields: &TradeFields<'_>, keys: TradeKeys) {
        let _ = keys;
        self.trade(line, fields);
    }
}

/// The id columns a sink may number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyColumn {
    Instrument,
    /// `buyer` and `seller` (members).
    Member,
}

/// [`TradeSink::key_of`]'s answers for one row's instrument, buyer and seller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TradeKeys {
    pub instrument: Option<u32>,
    pub buyer: Option<u32>,
    pub seller: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Data rows read, decoded or not (the CSV header is not a row).
    pub rows: u64,
    /// Bytes of the file read.
    pub bytes: u64,
}

/// Reads one trade file of the given format into `sink`.
///
/// Problems with the content, from one bad value to a file that is empty, has a wrong header
/// or is not Parquet at all, go to [`TradeSink::bad_row`] and the call still returns `Ok`, so
/// that the engine rejects the input (SPEC §5 exit 2). `Err` is for failures to read the file.
pub fn read_trades<S: TradeSink>(
    path: &Path,
    format: TradeFormat,
    sink: &mut S,
) -> Result<ReadStats, FormatError> {
    match format {
        TradeFormat::Csv => csv_trades::read(path, sink),
        TradeFormat::Jsonl => jsonl_trades::read(path, sink),
        TradeFormat::Parquet => parquet_trades::read(path, sink),
    }
}

/// A part of a trade file that one thread reads, so that one large file uses every core.
/// Reading every part of [`split_trade_file`]'s answer, in order, into one sink gives what
/// reading the whole file gives, as long as each part but the last reads to its end
/// ([`PartStats::ends_at`] equal to the next part's start); otherwise read the file whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePart {
    Whole,
    /// Parquet row groups `groups`; `rows_before` rows precede them in the file, and rows
    /// keep their numbers in the whole file.
    RowGroups {
        groups: Range<usize>,
        rows_before: u64,
    },
    /// The CSV records that start at a byte in `bytes` (the header is read for its layout,
    /// and reported only by the part that starts at byte 0); `first_line` is the physical
    /// line that starts at `bytes.start`.
    CsvRecords {
        bytes: Range<u64>,
        first_line: u64,
    },
}

/// What reading one part gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartStats {
    pub stats: ReadStats,
    /// Where the reader stopped, as (byte, line) of the next record (CSV parts); the next
    /// part must start exactly there.
    pub ends_at: Option<(u64, u64)>,
    /// False when the read stopped before the part's end (undecodable Parquet data): a
    /// whole-file read stops there too, so the later parts must not count.
    pub complete: bool,
}

/// Splits a trade file into at most `parts` parts of about equal work: Parquet by row groups,
/// CSV at line starts (at least `MIN_CSV_PART_BYTES` each). JSON Lines, small files and files
/// whose footer cannot be read stay whole.
pub fn split_trade_file(
    path: &Path,
    format: TradeFormat,
    parts: usize,
) -> Result<Vec<FilePart>, FormatError> {
    split_trade_file_with(path, format, parts, MIN_CSV_PART_BYTES)
}

/// A CSV part is at least this large: smaller files are not worth a second thread.
pub const MIN_CSV_PART_BYTES: u64 = 4 << 20;

/// [`split_trade_file`] with CSV parts of at least `min_csv_part_bytes` (tests split small
/// files).
pub fn split_trade_file_with(
    path: &Path,
    format: TradeFormat,
    parts: usize,
    min_csv_part_bytes: u64,
) -> Result<Vec<FilePart>, FormatError> {
    if parts <= 1 {
        return Ok(vec![FilePart::Whole]);
    }
    match format {
        TradeFormat::Jsonl => Ok(vec![FilePart::Whole]),
        TradeFormat::Parquet => {
            let Some(rows) = parquet_trades::row_group_rows(path)? else {
                return Ok(vec![FilePart::Whole]);
            };
            Ok(split_row_groups(&rows, parts))
        }
        TradeFormat::Csv => csv_trades::split(path, parts, min_csv_part_bytes.max(1)),
    }
}

/// Consecutive row groups of about `total / parts` rows each.
fn split_row_groups(rows: &[u64], parts: usize) -> Vec<FilePart> {
    let total: u64 = rows.iter().sum();
    let parts = parts.min(rows.len()).max(1) as u64;
    if parts <= 1 {
        return vec![FilePart::Whole];
    }
    let mut out = Vec::new();
    let (mut start, mut before, mut acc) = (0usize, 0u64, 0u64);
    for (g, &n) in rows.iter().enumerate() {
        acc += n;
        let target = total * (out.len() as u64 + 1) / parts;
        if acc >= target && g + 1 < rows.len() && (out.len() as u64) + 1 < parts {
            out.push(FilePart::RowGroups {
                groups: start..g + 1,
                rows_before: before,
            });
            start = g + 1;
            before = acc;
        }
    }
    out.push(FilePart::RowGroups {
        groups: start..rows.len(),
        rows_before: before,
    });
    out
}

/// Reads one part of a trade file into `sink` (see [`FilePart`]).
pub fn read_trades_part<S: TradeSink>(
    path: &Path,
    format: TradeFormat,
    part: &FilePart,
    sink: &mut S,
) -> Result<PartStats, FormatError> {
    match (part, format) {
        (
            FilePart::RowGroups {
                groups,
                rows_before,
            },
            TradeFormat::Parquet,
        ) => {
            let read = parquet_trades::read_part(path, Some((groups.clone(), *rows_before)), sink)?;
            Ok(PartStats {
                stats: read.stats,
                ends_at: None,
                complete: read.complete,
            })
        }
        (FilePart::CsvRecords { bytes, first_line }, TradeFormat::Csv) => {
            csv_trades::read_range(path, bytes.clone(), *first_line, sink)
        }
        (FilePart::Whole, TradeFormat::Parquet) => {
            let read = parquet_trades::read_part(path, None, sink)?;
            Ok(PartStats {
                stats: read.stats,
                ends_at: None,
                complete: read.complete,
            })
        }
        _ => Ok(PartStats {
            stats: read_trades(path, format, sink)?,
            ends_at: None,
            complete: true,
        }),
    }
}

/// The trade columns in SPEC order: CSV header names, JSON keys and Parquet column names.
pub const TRADE_COLUMN_NAMES: [&str; 8] = [
    "trade_id",
    "business_date",
    "instrument",
    "buyer",
    "seller",
    "price",
    "quantity",
    "executed_at",
];

const TRADE_COLUMNS: &[Column] = &[
    required("trade_id"),
    required("business_date"),
    required("instrument"),
    required("buyer"),
    required("seller"),
    required("price"),
    required("quantity"),
    optional("executed_at"),
];

const TRADE_ID: usize = 0;
const BUSINESS_DATE: usize = 1;
const INSTRUMENT: usize = 2;
const BUYER: usize = 3;
const SELLER: usize = 4;
const PRICE: usize = 5;
const QUANTITY: usize = 6;
const EXECUTED_AT: usize = 7;

/// One field's problem, turned into a [`RowError`] once the row's place is known. Only built
/// on the error path, so the owned strings cost nothing for good rows.
#[derive(Debug)]
struct Bad {
    column: usize,
    value: String,
    reason: String,
}

impl Bad {
    fn new(column: usize, value: &str, reason: impl Into<String>) -> Bad {
        Bad {
            column,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn into_row_error(self, path: &Path, line: u64, trade_id: &str) -> RowError {
        let id = if id_problem(trade_id).is_none() {
            trade_id
        } else {
            ""
        };
        RowError::new(
            Location::new(path, line),
            id,
            TRADE_COLUMNS[self.column].name,
            &self.value,
            self.reason,
        )
    }
}

/// The last business date that passed the calendar check. All trades of a file normally share
/// one date, so comparing ten bytes replaces the parse on nearly every row.
#[derive(Default)]
struct DateMemo {
    last_valid: [u8; 10],
    set: bool,
    /// The same for the date part of `executed_at`, which may differ from the business date.
    executed: Option<Box<DateMemo>>,
}

impl DateMemo {
    /// Inlined for the usual row, whose date is the last valid one (as a call, the compare
    /// cost 20 instructions a row, most of them the call's).
    #[inline]
    fn is_valid(&mut self, text: &str) -> bool {
        // Compared as a ten-byte array: two loads, not a call to memcmp on every row.
        let same = <&[u8; 10]>::try_from(text.as_bytes()).is_ok_and(|t| *t == self.last_valid);
        if self.set && same {
            return true;
        }
        self.parse_other(text)
    }

    /// [`DateMemo::is_valid`] for a date text other than the last valid one.
    #[cold]
    #[inline(never)]
    fn parse_other(&mut self, text: &str) -> bool {
        if BusinessDate::parse(text).is_none() {
            return false;
        }
        // A valid date is exactly ten bytes.
        if let Ok(bytes) = <[u8; 10]>::try_from(text.as_bytes()) {
            self.last_valid = bytes;
            self.set = true;
        }
        true
    }
}

/// The checks every format applies to a row's text fields.
fn check_text(
    dates: &mut DateMemo,
    trade_id: &str,
    business_date: &str,
    instrument: &str,
    buyer: &str,
    seller: &str,
    executed_at: Option<&str>,
) -> Result<(), Bad> {
    check_text_with(
        dates,
        trade_id,
        business_date,
        [instrument, buyer, seller],
        false,
        executed_at,
    )
}

/// [`check_text`], where `ids_known_good` says that instrument, buyer and seller were already
/// found to be ids (once per dictionary entry), so that only their checks are skipped and
/// every other check runs in the same order.
fn check_text_with(
    dates: &mut DateMemo,
    trade_id: &str,
    business_date: &str,
    [instrument, buyer, seller]: [&str; 3],
    ids_known_good: bool,
    executed_at: Option<&str>,
) -> Result<(), Bad> {
    if let Some(reason) = id_problem(trade_id) {
        return Err(Bad::new(TRADE_ID, trade_id, reason));
    }
    if !ids_known_good {
        for (column, text) in [(INSTRUMENT, instrument), (BUYER, buyer), (SELLER, seller)] {
            if let Some(reason) = id_problem(text) {
                return Err(Bad::new(column, text, reason));
            }
        }
    }
    if !dates.is_valid(business_date) {
        return Err(Bad::new(BUSINESS_DATE, business_date, DATE_REASON));
    }
    if let Some(at) = executed_at {
        let memo = dates.executed.get_or_insert_with(Default::default);
        if !is_rfc3339_with(at, |date| memo.is_valid(date)) {
            return Err(Bad::new(EXECUTED_AT, at, TIMESTAMP_REASON));
        }
    }
    Ok(())
}

fn price_error(text: &str, error: DecimalError) -> Bad {
    Bad::new(PRICE, text, decimal_reason(&error))
}

#[inline]
fn price_from_text(text: &str) -> Result<Decimal, Bad> {
    Decimal::parse(text).map_err(|e| price_error(text, e))
}

#[inline]
fn quantity_from_text(text: &str) -> Result<i64, Bad> {
    parse_i64(text).map_err(|e| Bad::new(QUANTITY, text, e.reason("quantity")))
}

/// An empty `executed_at` is an absent one: the column is optional per row as well.
fn optional_text(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests;
