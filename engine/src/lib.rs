//! Clearhouse engine: the end-of-day pipeline stages, the ledger and the journal.
//!
//! Stages, in order, each a module with typed input and output: [`reference`] (reference data
//! checked across files) → [`validate`] (+ [`dedup`]) → [`netting`] → [`funding`] →
//! [`posting`] (on a [`book`]) → [`banks`] → [`instructions`] → [`channels`] → [`outputs`] and
//! [`payment_files`]; [`day`] runs them for one day directory and [`ledger`] persists the
//! result in one transaction.

pub mod audit;
pub mod banks;
pub mod book;
pub mod channels;
pub mod close;
pub mod datadir;
pub mod day;
pub mod dedup;
pub mod digest;
pub mod error;
pub mod faults;
mod file_lock;
pub mod funding;
pub mod funds;
pub mod gen;
pub mod init;
/// The delivery instructions a batch emits, as types. The code that builds them from bank
/// nets is a private module of [`day`], unreachable from the intake path (ARCHITECTURE.md).
pub mod instructions {
    pub use crate::day::{Instruction, InstructionKind};
}
pub mod intake;
pub mod journal;
pub mod ledger;
pub mod netting;
pub mod outputs;
pub mod payment_files;
pub mod posting;
pub mod recon;
pub mod reference;
pub mod server;
pub mod session;
pub mod summary;
pub mod suspense;
pub mod validate;

pub use error::EngineError;
