//! Readers for the reference files of a day directory: platform.toml, members.csv,
//! instruments.csv, opening_balances.csv, opening_positions.csv (SPEC §2.1–§2.5).
//!
//! Each reader checks what one file can tell on its own (header, syntax, ranges, uniqueness
//! within the file) and reports every bad row. Checks across files (a member's settlement bank
//! is in platform.toml, an opening position's instrument exists) belong to the engine.

use std::path::Path;

use crate::model::{Instrument, Member, OpeningBalance, OpeningPosition, Platform, RowError};
use crate::{FormatError, Parsed};

/// Reads platform.toml. Unknown keys, missing required keys, a `delivery_bank` that is not a
/// key of `[banks]`, or a policy other than `abort`/`cover` are errors naming the key.
pub fn read_platform(path: &Path) -> Result<Result<Platform, Vec<RowError>>, FormatError> {
    let _ = path;
    todo!()
}

pub fn read_members(path: &Path) -> Result<Parsed<Member>, FormatError> {
    let _ = path;
    todo!()
}

pub fn read_instruments(path: &Path) -> Result<Parsed<Instrument>, FormatError> {
    let _ = path;
    todo!()
}

pub fn read_opening_balances(path: &Path) -> Result<Parsed<OpeningBalance>, FormatError> {
    let _ = path;
    todo!()
}

pub fn read_opening_positions(path: &Path) -> Result<Parsed<OpeningPosition>, FormatError> {
    let _ = path;
    todo!()
}
