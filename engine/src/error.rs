//! The engine's error type. Bad input is not an error here: it is a list of rejects that the
//! day runner turns into exit code 2. These are the failures that stop a run outright.

use std::path::PathBuf;

use crate::ledger::LedgerError;
use clearhouse_formats::iso20022::IsoError;
use clearhouse_formats::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A sum left the range of a 64-bit amount: the input is absurd, not the engine wrong.
    #[error("amount overflow: {what} exceeds the 64-bit range")]
    Overflow { what: String },
    /// A broken invariant is a bug: nothing is posted and the run stops.
    #[error("invariant broken: {0}")]
    Invariant(String),
    #[error("{0}")]
    Output(String),
    /// The batch is committed (posted exactly once) but its output files could not be
    /// written, e.g. on a full disk. The outputs are stored in the ledger: running the same
    /// day again writes them.
    #[error(
        "business date {date} is posted, but writing its outputs failed; run the same day \
         again to write them from the ledger: {cause}"
    )]
    OutputsNotWritten {
        date: String,
        cause: Box<EngineError>,
    },
    /// A batch's instructions cannot be written as valid ISO 20022 files.
    #[error("bank files: {0}")]
    BankFile(#[from] IsoError),
    /// Splitting gave a part the id of another instruction of the batch (a request id that
    /// ends in `-<n>` next to a split request with the same stem).
    #[error("instruction id {id} would be used twice: a split part has the id of another instruction of the batch")]
    InstructionIdCollision { id: String },
    /// `clearhouse instructions` for a business date the ledger has not posted.
    #[error("business date {date} is not posted in {ledger}")]
    NotPosted { date: String, ledger: PathBuf },
    /// Another process holds the data directory's writer lock (`serve`, `ingest`, `close`...).
    #[error("data directory is in use by another clearhouse process (lock {path} is held)")]
    Locked { path: PathBuf },
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A session operation that the session's state does not allow.
    #[error("{0}")]
    Session(String),
}

impl EngineError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> EngineError {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }
}
