//! `clearhouse ingest FILE...`: trade files appended to the open session's journal, through
//! the same batches as `POST /v1/trades` ([`Session::start_batch`] → [`Session::commit`]).
//!
//! Two passes. The first reads every file and checks every trade on its own (syntax, date,
//! reference data) without appending anything: a file with a bad row appends nothing, and
//! every bad row is reported. The second reads the files again and commits them in batches of
//! at most [`SessionOptions::batch_trades_max`] trades, each one journal record, each durable
//! before the next. A batch can still be refused there (a trade id used before with other
//! content): ingestion stops at that batch and reports it. Everything is idempotent by trade
//! id, so running the same command again after a crash or a fix appends only what is missing.

use std::path::{Path, PathBuf};

use clearhouse_formats::model::{RowError, TradeFields};
use clearhouse_formats::trades::{read_trades, TradeFormat, TradeSink};

use super::{open_dates, Batch, BatchOutcome, Session, SessionOptions, TradeStatus};
use crate::datadir::DataDir;
use crate::ledger::Ledger;
use crate::EngineError;

/// Refused rows kept for the report; the count goes on past it.
const REFUSED_KEPT_MAX: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub date: Option<clearhouse_formats::model::BusinessDate>,
    pub trades_read: u64,
    pub created: u64,
    pub already_existed: u64,
    pub batches: u64,
    /// `file:line: reason` of refused rows (at most [`REFUSED_KEPT_MAX`]).
    pub refused: Vec<String>,
    pub refused_count: u64,
}

impl IngestReport {
    pub fn is_ok(&self) -> bool {
        self.refused_count == 0
    }
}

/// Runs `ingest`; takes the data directory's lock, so it fails at once while `serve` runs.
pub fn ingest(
    data: &DataDir,
    files: &[PathBuf],
    options: SessionOptions,
) -> Result<IngestReport, EngineError> {
    let _lock = data.lock()?;
    let ledger = Ledger::open(data.root())?;
    let date = match open_dates(data, &ledger)?.as_slice() {
        [date] => *date,
        [] => {
            return Err(EngineError::Session(
                "no session is open: `clearhouse open DATE` first".to_string(),
            ))
        }
        many => {
            return Err(EngineError::Session(format!(
                "{} sessions are open; close all but one",
                many.len()
            )))
        }
    };
    drop(ledger);
    let mut formats = Vec::with_capacity(files.len());
    for file in files {
        let format = TradeFormat::of_path(file).ok_or_else(|| {
            EngineError::Session(format!(
                "{}: not a trade file (.csv, .jsonl or .parquet)",
                file.display()
            ))
        })?;
        formats.push((file.as_path(), format));
    }
    let (session, _) = Session::open(data, date, options)?;
    let mut report = IngestReport {
        date: Some(date),
        ..IngestReport::default()
    };
    for (file, format) in &formats {
        let mut check = Check {
            session: &session,
            file,
            report: &mut report,
        };
        read_trades(file, *format, &mut check)?;
    }
    if report.refused_count == 0 {
        report.trades_read = 0;
        for (file, format) in &formats {
            let mut append = Append {
                session: &session,
                batch: Some(session.start_batch(file)),
                report: &mut report,
                error: None,
                stopped: false,
            };
            read_trades(file, *format, &mut append)?;
            append.flush();
            if let Some(e) = append.error {
                return Err(e);
            }
            if append.stopped {
                break;
            }
        }
    }
    session.shutdown()?;
    Ok(report)
}

fn refuse(report: &mut IngestReport, text: String) {
    report.refused_count += 1;
    if report.refused.len() < REFUSED_KEPT_MAX {
        report.refused.push(text);
    }
}

/// First pass: every trade checked on its own.
struct Check<'a> {
    session: &'a Session,
    file: &'a Path,
    report: &'a mut IngestReport,
}

impl TradeSink for Check<'_> {
    fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
        self.report.trades_read += 1;
        if let Err(reason) = self.session.check_trade(t) {
            let text = format!(
                "{}:{line}: trade {}: {reason}",
                self.file.display(),
                t.trade_id
            );
            refuse(self.report, text);
        }
    }

    fn bad_row(&mut self, error: RowError) {
        self.report.trades_read += 1;
        refuse(self.report, error.to_string());
    }
}

/// Second pass: batches committed as they fill.
struct Append<'a> {
    session: &'a Session,
    batch: Option<Batch<'a>>,
    report: &'a mut IngestReport,
    error: Option<EngineError>,
    stopped: bool,
}

impl<'a> Append<'a> {
    fn flush(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        if batch.is_empty() || self.stopped {
            return;
        }
        let source = batch.source().to_path_buf();
        match self.session.commit(batch) {
            Ok(outcome) => self.account(&source, outcome),
            Err(e) => {
                self.error = Some(e);
                self.stopped = true;
            }
        }
    }

    fn account(&mut self, source: &Path, outcome: BatchOutcome) {
        self.report.batches += 1;
        self.report.created += outcome.created;
        self.report.already_existed += outcome.already_existed;
        if !outcome.accepted {
            self.stopped = true;
            for r in &outcome.results {
                if let TradeStatus::Refused(reason) = &r.status {
                    let text = format!(
                        "{}:{}: trade {}: {reason}",
                        source.display(),
                        r.row,
                        r.trade_id
                    );
                    refuse(self.report, text);
                }
            }
        }
    }

    fn batch(&mut self) -> Option<&mut Batch<'a>> {
        if self.stopped {
            return None;
        }
        let full = self
            .batch
            .as_ref()
            .is_some_and(|b| b.len() >= self.session.options().batch_trades_max);
        if full {
            let source = self.batch.as_ref().map(|b| b.source().to_path_buf());
            self.flush();
            if self.stopped {
                return None;
            }
            let source = source.unwrap_or_default();
            self.batch = Some(self.session.start_batch(&source));
        }
        self.batch.as_mut()
    }
}

impl TradeSink for Append<'_> {
    fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
        self.report.trades_read += 1;
        if let Some(batch) = self.batch() {
            batch.trade(line, t);
        }
    }

    fn bad_row(&mut self, error: RowError) {
        // The first pass found none; a file changed in between is refused here.
        if let Some(batch) = self.batch() {
            batch.bad_row(error);
        }
    }
}
