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
mod parquet_trades;
mod writer;

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
    fn is_valid(&mut self, text: &str) -> bool {
        if self.set && text.as_bytes() == self.last_valid {
            return true;
        }
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
    for (column, text) in [
        (TRADE_ID, trade_id),
        (INSTRUMENT, instrument),
        (BUYER, buyer),
        (SELLER, seller),
    ] {
        if let Some(reason) = id_problem(text) {
            return Err(Bad::new(column, text, reason));
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

fn price_from_text(text: &str) -> Result<Decimal, Bad> {
    Decimal::parse(text).map_err(|e| price_error(text, e))
}

fn quantity_from_text(text: &str) -> Result<i64, Bad> {
    parse_i64(text).map_err(|e| Bad::new(QUANTITY, text, e.reason("quantity")))
}

/// An empty `executed_at` is an absent one: the column is optional per row as well.
fn optional_text(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests;
