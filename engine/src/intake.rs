//! Trade intake for the end-of-day batch: every trade file of a day read, validated,
//! de-duplicated and netted into one [`ValidatedTrades`].
//!
//! Input: the reference data and the day's trade files. Output: the netting accumulator, the
//! rejects and the counts. This is the stage that streams the bulk of the day's bytes.

use std::path::PathBuf;

use clearhouse_formats::trades::{read_trades, TradeFormat};

use crate::reference::RefData;
use crate::validate::{TradeValidator, ValidatedTrades};
use crate::EngineError;

/// Reads the files in the order given (file-name order for a day directory).
pub fn validate_trade_files(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
) -> Result<ValidatedTrades, EngineError> {
    let mut validator = TradeValidator::new(refs, None);
    for (path, format) in files {
        validator.set_file(path);
        read_trades(path, *format, &mut validator)?;
    }
    Ok(validator.finish())
}
