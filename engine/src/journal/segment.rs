//! Segment files on disk: naming, listing, creation with pre-allocation, the directory lock.
//! All file-system calls of the journal are here or in the writer, each error naming its path.

use super::error::{Defect, JournalError};
use super::format::SegmentHeader;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const SEGMENT_SUFFIX: &str = ".seg";
const LOCK_FILE: &str = "LOCK";
/// Upper bound on the number of segment files in one journal directory (64 TiB at 64 MiB each);
/// keeps the listing bounded.
pub(crate) const SEGMENT_COUNT_MAX: usize = 1 << 20;

pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:08}{SEGMENT_SUFFIX}"))
}

/// The segment files of `dir`, ordered by number; they must be numbered 1..=N without gaps.
/// Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| JournalError::io("read_dir", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("read_dir", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() < 8 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(number) = stem.parse::<u64>() else {
            continue;
        };
        if segments.len() >= SEGMENT_COUNT_MAX {
            return Err(JournalError::InvalidOptions(
                "journal directory holds too many segment files",
            ));
        }
        segments.push((number, entry.path()));
    }
    segments.sort_unstable();
    for (i, (number, _)) in segments.iter().enumerate() {
        let expected = i as u64 + 1;
        if *number != expected {
            return Err(JournalError::Corrupt {
                file: segment_path(dir, expected),
                offset: 0,
                defect: Defect::MissingSegment { number: expected },
            });
        }
    }
    Ok(segments)
}

/// Creates a new, pre-allocated, all-zero segment file; with `sync`, makes its directory entry
/// durable. (Its allocation becomes durable with the first fdatasync of the file, the header
/// write.) The header is written later, when the writer switches to the segment (it needs the
/// chain value of the previous segment's end). An all-zero last segment is therefore a valid
/// state after a crash: the scanner treats it as unused.
pub(crate) fn create_segment_file(
    dir: &Path,
    number: u64,
    size: u64,
    sync: bool,
) -> Result<File, JournalError> {
    let path = segment_path(dir, number);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| JournalError::io("create", &path, e))?;
    preallocate(&file, size).map_err(|e| JournalError::io("fallocate", &path, e))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(file)
}

/// Writes the header into a freshly created segment; with `sync`, makes it durable, so that
/// records in this segment are never behind a header that could be lost in a crash.
pub(crate) fn write_header(
    file: &File,
    path: &Path,
    header: &SegmentHeader,
    sync: bool,
) -> Result<(), JournalError> {
    file.write_all_at(&header.encode(), 0)
        .map_err(|e| JournalError::io("write header", path, e))?;
    if sync {
        file.sync_data()
            .map_err(|e| JournalError::io("fdatasync", path, e))?;
    }
    Ok(())
}

pub(crate) fn open_segment_rw(path: &Path) -> Result<File, JournalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io("open", path, e))
}

/// Reserves the file's blocks so that appends never hit ENOSPC mid-segment and the file size
/// never changes while records are written.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, size: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(size).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: plain syscall on an fd we own.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        // File systems without fallocate support (e.g. some overlays): a sparse file still
        // reads as zeros, which is all the format needs.
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(size),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(file: &File, size: u64) -> std::io::Result<()> {
    file.set_len(size)
}

/// Makes created or removed directory entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io("fsync dir", dir, e))
}

/// An exclusive advisory lock on `dir/LOCK`, held for the life of an open journal so that two
/// writers (two processes, or two `Journal`s in one process) never append to one directory.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join(LOCK_FILE);
        match crate::file_lock::lock_exclusive(&path) {
            Ok(Some(file)) => Ok(DirLock { _file: file }),
            Ok(None) => Err(JournalError::Locked { path }),
            Err(e) => Err(JournalError::io("lock", &path, e)),
        }
    }
}
