//! Clearhouse engine: the end-of-day pipeline stages, the ledger and the journal.

pub mod journal;
