//! Trade intake for the end-of-day batch: every trade file of a day read, validated,
//! de-duplicated and netted into one [`ValidatedTrades`].
//!
//! Input: the reference data and the day's trade files. Output: the netting accumulator, the
//! rejects and the counts. This is the stage that streams the bulk of the day's bytes.

use std::path::PathBuf;

use clearhouse_formats::trades::{read_trades, TradeFormat, TradeSink};

use crate::reference::RefData;
use crate::validate::{TradeValidator, ValidatedTrades};
use crate::EngineError;

mod parallel;

pub use parallel::{validate_files, validate_files_split};

/// Reads the files on [`intake_threads`] threads, with the result of reading them in the
/// order given (file-name order for a day directory) into one validator
/// ([`validate_trade_files_sequential`]).
pub fn validate_trade_files(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
) -> Result<ValidatedTrades, EngineError> {
    validate_files(refs, files, intake_threads(), None)
}

/// Threads for reading trade files: `CLEARHOUSE_THREADS` if set to a number ≥ 1, else one
/// per core. The result does not depend on it, only the time.
pub fn intake_threads() -> usize {
    std::env::var("CLEARHOUSE_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The sequential reference: every file read in the order given into one
/// [`TradeValidator`], which answers each id at once. Kept for the journal-like single pass
/// and as the model the parallel intake is tested against.
pub fn validate_trade_files_sequential(
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

/// Reads a sealed session journal (`journal-<date>/`) into the same validator as trade files:
/// the header first (it must name `date` and the reference data `refs` was loaded from, whose
/// digest is `reference_digest`), then every trades record in journal order. Rows are
/// numbered by journal sequence number. The journal is read strictly: any damage is an error.
/// Returns the journal's verification too (its final chain value keys the batch), so a sealed
/// journal is read once.
pub fn validate_journal(
    refs: &RefData,
    dir: &std::path::Path,
    date: clearhouse_formats::model::BusinessDate,
    reference_digest: [u8; 32],
) -> Result<(ValidatedTrades, crate::journal::VerifyReport), EngineError> {
    use crate::session::record;
    use clearhouse_formats::model::Location;

    let expected_day = crate::validate::DayDate::new(date, Location::new(dir, 1));
    let mut validator = TradeValidator::new(refs, Some(expected_day));
    validator.set_file(dir);
    let date_text = date.to_string();
    let mut problem = None;
    let report = crate::journal::read_all(dir, |seq, payload| {
        if problem.is_some() {
            return;
        }
        let result = if seq == 1 {
            record::decode_header(seq, payload).and_then(|h| {
                let expected = record::Header {
                    date,
                    reference_digest,
                };
                if h == expected {
                    Ok(())
                } else {
                    Err(record::RecordError {
                        seq,
                        what: "the session header does not match the date or the reference data"
                            .to_string(),
                    })
                }
            })
        } else {
            record::decode_trades(seq, payload, &date_text, |t| validator.trade(seq, t)).map(|_| ())
        };
        if let Err(e) = result {
            problem = Some(e);
        }
    })?;
    if let Some(e) = problem {
        return Err(EngineError::Session(format!("{}: {e}", dir.display())));
    }
    if !report.sealed {
        return Err(EngineError::Session(format!(
            "{} is not sealed: close the session first",
            dir.display()
        )));
    }
    Ok((validator.finish(), report))
}
