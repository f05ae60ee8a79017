//! The journal's error type. Every integrity error names the segment file and the byte offset.

use std::io;
use std::path::PathBuf;

/// Errors of the journal. Integrity errors ([`JournalError::Corrupt`]) name the segment file and
/// the byte offset inside it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    #[error("journal I/O error: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal corrupt: {}, byte offset {offset}: {defect}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        defect: Defect,
    },
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    #[error("invalid journal options: {0}")]
    InvalidOptions(&'static str),
    #[error("journal is sealed: no append is accepted")]
    Sealed,
    #[error("journal is closed: no append is accepted")]
    Closed,
    /// The writer thread hit an error (e.g. a failed write or fdatasync); since the file state
    /// after a failed fsync is unknown, no further append is accepted. Reopen to recover.
    #[error("journal writer failed, no append is accepted until reopened: {0}")]
    Poisoned(String),
    #[error("journal directory {} is locked by another writer", path.display())]
    Locked { path: PathBuf },
}

impl JournalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// What is wrong at the offset named by [`JournalError::Corrupt`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Defect {
    #[error("bad segment magic")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("segment size {size} out of bounds or not a multiple of 8")]
    SegmentSize { size: u64 },
    #[error("file is larger than the segment size in its header")]
    FileLargerThanSegment,
    #[error("segment header names segment {found}, expected {expected}")]
    SegmentNumber { expected: u64, found: u64 },
    #[error("segment header base sequence {found}, expected {expected}")]
    BaseSeq { expected: u64, found: u64 },
    #[error("segment header does not carry the chain value of the previous segment's end")]
    PrevChain,
    #[error("segment {number} is missing")]
    MissingSegment { number: u64 },
    #[error("a segment follows the sealed segment")]
    SegmentAfterSeal,
    #[error("record runs past the end of the segment")]
    Truncated,
    #[error("invalid record kind {0}")]
    BadKind(u8),
    #[error("non-zero reserved header bytes")]
    NonZeroReserved,
    #[error("CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc { stored: u32, computed: u32 },
    #[error("non-zero padding after the payload")]
    NonZeroPadding,
    #[error("control record with a payload")]
    ControlPayload,
    #[error("synced offset {synced_offset} is not before the record")]
    SyncedOffset { synced_offset: u64 },
    #[error("sequence number {found}, expected {expected} (record dropped, duplicated or moved)")]
    Seq { expected: u64, found: u64 },
    #[error("hash chain broken (record changed, dropped or reordered)")]
    Chain,
    #[error("non-zero bytes after the segment's final record")]
    GarbageAfterEnd,
    #[error("segment ends without a segment-end record but is not the last segment")]
    MissingSegmentEnd,
    /// Only from [`verify`](super::verify)/[`read_all`](super::read_all) (which change nothing):
    /// bytes after the last valid record of an unsealed journal, which `Journal::open` would
    /// truncate as a torn tail.
    #[error("torn tail: bytes after the last valid record ({inner})")]
    TornTail { inner: Box<Defect> },
    /// A corrupt record followed by a valid record that was written after the corrupt one had
    /// been made durable: this is damage to durable data, never a torn write.
    #[error("{inner}; a valid record written after this one was durable follows at offset {witness_offset}")]
    CorruptDurable {
        inner: Box<Defect>,
        witness_offset: u64,
    },
}
