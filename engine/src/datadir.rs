//! The data directory: where everything that outlives one command is kept, and the lock that
//! keeps two writing processes out of it.
//!
//! ```text
//! <data-dir>/
//!   LOCK                      flock: one writer process (serve, ingest, open, close, init)
//!   platform.toml             reference data, written by `clearhouse init`
//!   members.csv
//!   instruments.csv
//!   ledger.sqlite             the ledger (balances, positions, entries, posted batches)
//!   journal-<date>/           one session's journal: NNNNNNNN.seg segments, LOCK, and
//!     reference/              the reference data the session was opened with
//!   out/<date>/               the SPEC §4 outputs of a posted business date
//! ```
//!
//! `clearhouse run DAY_DIR` uses the same ledger and outputs; it reads its reference data from
//! the day directory (platform.toml falling back to the data directory's).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use clearhouse_formats::model::BusinessDate;

use crate::EngineError;

/// The reference files `init` keeps in the data directory, and each session snapshots.
pub const REFERENCE_FILES: [&str; 3] = ["platform.toml", "members.csv", "instruments.csv"];

const LOCK_FILE: &str = "LOCK";
const JOURNAL_PREFIX: &str = "journal-";

/// Paths inside a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// One of [`REFERENCE_FILES`] as `init` stored it.
    pub fn reference_file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn has_reference(&self) -> bool {
        REFERENCE_FILES
            .iter()
            .all(|name| self.reference_file(name).is_file())
    }

    pub fn journal_dir(&self, date: BusinessDate) -> PathBuf {
        self.root.join(format!("{JOURNAL_PREFIX}{date}"))
    }

    /// The reference data a session was opened with (inside its journal directory).
    pub fn session_reference_dir(&self, date: BusinessDate) -> PathBuf {
        self.journal_dir(date).join("reference")
    }

    pub fn out_dir(&self, date: BusinessDate) -> PathBuf {
        self.root.join("out").join(date.to_string())
    }

    /// Business dates that have a journal directory, in date order.
    pub fn session_dates(&self) -> Result<Vec<BusinessDate>, EngineError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io(&self.root, e)),
        };
        let mut dates = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| EngineError::io(&self.root, e))?;
            let name = entry.file_name();
            let Some(date) = name
                .to_str()
                .and_then(|n| n.strip_prefix(JOURNAL_PREFIX))
                .and_then(BusinessDate::parse)
            else {
                continue;
            };
            if entry.path().is_dir() {
                dates.push(date);
            }
        }
        dates.sort();
        Ok(dates)
    }

    /// Takes the data directory's writer lock (creating the directory if needed). Held for the
    /// life of the returned guard; a second process gets [`EngineError::Locked`] (after a short grace, see
    /// [`crate::file_lock`]).
    pub fn lock(&self) -> Result<DataDirLock, EngineError> {
        std::fs::create_dir_all(&self.root).map_err(|e| EngineError::io(&self.root, e))?;
        let path = self.root.join(LOCK_FILE);
        match crate::file_lock::lock_exclusive(&path) {
            Ok(Some(file)) => Ok(DataDirLock { _file: file }),
            Ok(None) => Err(EngineError::Locked { path }),
            Err(e) => Err(EngineError::io(&path, e)),
        }
    }
}

/// The data directory's writer lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. A reader sees the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let name = path
        .file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| EngineError::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EngineError::io(dir, e))
}

/// BLAKE3 over each reference file's name, length and bytes, in [`REFERENCE_FILES`] order: the
/// fingerprint a session header records.
pub fn reference_digest(dir: &Path) -> Result<[u8; 32], EngineError> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"clearhouse-reference-v1\0");
    for name in REFERENCE_FILES {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| EngineError::io(&path, e))?;
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keeps_a_second_writer_out() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("d"));
        let held = data.lock().unwrap();
        assert!(matches!(data.lock(), Err(EngineError::Locked { .. })));
        drop(held);
        data.lock().unwrap();
    }

    #[test]
    fn lists_session_dates() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        assert!(data.session_dates().unwrap().is_empty());
        for name in [
            "journal-2026-11-26",
            "journal-2026-11-25",
            "journal-x",
            "other",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("journal-2026-11-27"), b"a file").unwrap();
        let dates: Vec<String> = data
            .session_dates()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(dates, ["2026-11-25", "2026-11-26"]);
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.csv");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
