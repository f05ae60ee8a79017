//! Closing a session (`POST /v1/sessions/{date}/close`, `clearhouse close DATE`): seal its
//! journal, then run the end-of-day batch on the sealed journal.
//!
//! From the validated trades on, this is the code of `clearhouse run`
//! ([`crate::day::run_validated`]): netting, funding, posting, bank nets, instructions,
//! outputs and the one ledger transaction. Only the source differs: the trades come from the
//! journal ([`crate::intake::validate_journal`]) instead of trade files, the reference data
//! from the session's snapshot, and a session carries no opening files or fund events.
//!
//! The batch key is the business date and a BLAKE3 digest of the sealed journal (its final
//! chain value, which covers every record, the header with the reference digest included), so
//! closing again after a crash either finishes the batch or finds it posted and writes the
//! stored outputs again.

use clearhouse_formats::model::BusinessDate;

use crate::datadir::{reference_digest, DataDir};
use crate::day::{
    restore_if_posted, run_validated, Observer, Openings, RunOptions, RunReport, SourceInput, Timer,
};
use crate::journal;
use crate::ledger::Ledger;
use crate::session::{load_reference, Session, SessionOptions};
use crate::EngineError;

/// Seals the session of `date` (the open `session` if the caller holds it, else the one on
/// disk, recovered first) and runs the batch. The caller holds the data directory's lock.
/// A session sealed earlier (a close that stopped before posting) is not sealed again.
pub fn close_session(
    data: &DataDir,
    date: BusinessDate,
    session: Option<&Session>,
    observer: &mut dyn Observer,
) -> Result<RunReport, EngineError> {
    let dir = data.journal_dir(date);
    match session {
        Some(session) => {
            assert_eq!(session.date(), date, "closing the session of another date");
            session.seal()?;
        }
        None => {
            if !dir.is_dir() {
                return Err(EngineError::Session(format!(
                    "no session for {date}: nothing in {}",
                    dir.display()
                )));
            }
            match Session::open(data, date, SessionOptions::default()) {
                Ok((session, _)) => {
                    session.seal()?;
                }
                // Sealed already: go on to the batch.
                Err(EngineError::Session(_)) if is_sealed(&dir) => {}
                Err(e) => return Err(e),
            }
        }
    }
    run_sealed(data, date, observer)
}

fn is_sealed(dir: &std::path::Path) -> bool {
    journal::verify(dir).is_ok_and(|v| v.sealed)
}

/// The end-of-day batch of a sealed session journal.
pub fn run_sealed(
    data: &DataDir,
    date: BusinessDate,
    observer: &mut dyn Observer,
) -> Result<RunReport, EngineError> {
    let mut timer = Timer::new();
    let dir = data.journal_dir(date);
    let opts = RunOptions {
        day_dir: dir.clone(),
        data_dir: data.root().to_path_buf(),
        out_dir: None,
        skip_invalid: false,
    };
    observer.stage("reference data");
    let snapshot = data.session_reference_dir(date);
    let refs = load_reference(&snapshot)?;
    let reference = reference_digest(&snapshot)?;
    timer.lap("reference");
    // One strict pass over the journal: every CRC and chain link checked, every trade
    // validated; it fails unless the journal is sealed. Its final chain value keys the batch.
    observer.stage("trades");
    let (validated, verified) = crate::intake::validate_journal(&refs, &dir, date, reference)?;
    let digest = session_digest(date, &verified);
    let mut ledger = Ledger::open(data.root())?;
    let timer = match restore_if_posted(&opts, &ledger, &digest, timer)? {
        Ok(report) => return Ok(report),
        Err(timer) => timer,
    };
    let source = SourceInput {
        refs: &refs,
        openings: Openings::none(),
        digest,
        first_source: dir,
    };
    run_validated(&opts, &mut ledger, source, validated, timer, observer)
}

/// The batch key's digest of a sealed journal.
pub fn session_digest(date: BusinessDate, verified: &journal::VerifyReport) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"clearhouse-journal-v1\0");
    hasher.update(date.to_string().as_bytes());
    hasher.update(&verified.chain);
    hasher.update(&verified.records.to_le_bytes());
    hasher.update(&verified.last_seq.to_le_bytes());
    hasher.finalize().to_hex().to_string()
}
