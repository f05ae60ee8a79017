//! Streaming trade readers (CSV, JSON Lines, Parquet) and writers (for `clearhouse gen`).
//!
//! A reader never loads a whole file: it hands each decoded row to a [`TradeSink`], and each
//! row it cannot decode to the same sink as a [`RowError`], then goes on with the next row.

use std::path::Path;

use crate::model::{RowError, TradeFields};
use crate::FormatError;

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
    pub rows: u64,
    pub bytes: u64,
}

/// Reads one trade file of the given format into `sink`.
pub fn read_trades<S: TradeSink>(
    path: &Path,
    format: TradeFormat,
    sink: &mut S,
) -> Result<ReadStats, FormatError> {
    let _ = (path, format, sink);
    todo!()
}
