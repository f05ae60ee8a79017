//! Clearhouse file formats: the only crate that knows CSV, JSON Lines, Parquet, TOML and XML.
//!
//! Readers stream and report every bad row as a [`model::RowError`] (file, line, column, value,
//! reason) instead of stopping at the first. Writers are deterministic: the same rows give
//! byte-identical files.

pub mod bankfiles;
pub mod camt;
mod csvscan;
pub mod digits;
mod encode;
mod fields;
pub mod funds;
pub mod iso20022;
pub mod model;
pub mod money;
pub mod recon_csv;
pub mod reference;
pub mod table;
pub mod tokens;
pub mod trades;

use std::path::PathBuf;

/// A failure that is not about the content of one row: the file could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
}

/// Rows read from a reference file, with every bad row reported rather than the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub rows: Vec<T>,
    pub errors: Vec<model::RowError>,
}
