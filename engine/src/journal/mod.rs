//! The market-hours trade journal (issue 3): lock-free multi-producer appends, CRC32C and a
//! hash chain per record, segmented pre-allocated files, group commit, crash recovery.
//!
//! The journal is record-agnostic: a record is an opaque byte payload (the caller encodes
//! trades into it). Records get dense sequence numbers 1, 2, 3, ... in the order producers
//! claimed buffer space.
//!
//! # Usage
//!
//! ```no_run
//! use clearhouse_engine::journal::{self, Journal, JournalOptions};
//! # fn main() -> Result<(), journal::JournalError> {
//! let (journal, report) = Journal::open("data/journal-2024-03-15", JournalOptions::default())?;
//! assert!(report.truncated.is_none());
//! let appender = journal.appender(); // clone it into as many threads as needed
//! appender.append(b"trade 1")?.wait()?; // returns once the record is on disk
//! appender.append_batch(&[&b"trade 2"[..], b"trade 3"])?.wait()?;
//! journal.seal()?; // no append is accepted afterwards, not even after reopening
//! journal::read_all("data/journal-2024-03-15", |seq, payload| println!("{seq}: {payload:?}"))?;
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! **Append path (no lock between producers).** Producers claim space in a pre-allocated ring
//! buffer with a single `fetch_add` on its tail (as the LMAX Disruptor and Aeron's log buffers
//! do), copy their payload into the claimed frame, and publish it with a release store of the
//! frame's first word. One writer thread consumes frames in claim order. This was chosen over a
//! queue of owned buffers (crossbeam `SegQueue`) because a claim is one atomic instruction and
//! one copy, with no allocation per record, and the frames in the ring already have the on-disk
//! layout: the writer fills in four header fields in place and writes straight from the ring.
//! The details are in `ring.rs`.
//!
//! **Sequencing and the chain in the writer.** The hash chain needs a total order, so the
//! writer, which sees frames in claim order, assigns the sequence number and computes the chain
//! value and the record CRC. Everything that depends only on the payload (its CRC32C and its
//! XXH3-128 digest) is computed by the producers, in parallel, before the frame is published:
//! the writer then hashes 52 bytes and checksums 36 per record whatever the payload size, and
//! the checksum is end-to-end (computed from the producer's own bytes, before the ring).
//!
//! **Group commit.** The writer drains everything committed (bounded by the buffer size),
//! writes it, calls `fdatasync` once, and acknowledges all of it: appends that arrive during a
//! sync share the next one. [`AppendTicket::wait`] blocks until the record's group is
//! acknowledged. In [`SyncMode::Buffered`] (for benchmarks and tests) acknowledgement comes
//! after the `write` into the OS, and the journal syncs only on seal and close.
//!
//! **Back-pressure.** The ring is bounded ([`JournalOptions::buffer_size_bytes`]). A producer
//! whose claim reaches space the writer has not yet freed waits (spins briefly, then sleeps on a
//! futex) until it is freed; if the writer has failed, it gets [`JournalError::Poisoned`]
//! instead. Waiting (rather than refusing) was chosen because a claim is made before the space
//! is known to be free (that is what makes it one instruction), and a made claim must be filled.
//! The server bounds how many requests can wait by its connection limit.
//!
//! **Hash choice.** The chain uses XXH3-128, not BLAKE3. Measured here on 104-byte inputs:
//! XXH3-128 ~18 ns, BLAKE3 ~270 ns (its per-block compression dominates short inputs), and the
//! single writer hashes every record. The chain's job is to detect accidental damage and
//! mistakes (a changed, dropped, duplicated, reordered or spliced record or segment): 128 bits
//! of a well-mixed hash make an undetected accident negligible. It is not a defence against a
//! deliberate forger: any unkeyed chain, BLAKE3's included, can be recomputed by whoever can
//! rewrite the files; tamper evidence needs the final chain value ([`VerifyReport::chain`])
//! anchored outside the journal, together with a cryptographic digest of the sealed files.
//!
//! # On-disk format (version 1, little-endian)
//!
//! A journal is a directory of segment files `00000001.seg`, `00000002.seg`, ... (plus `LOCK`).
//! Each segment is pre-allocated to its size (default 64 MiB) and read as zeros past its data.
//!
//! Segment header, 64 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `CLHJRNL\0` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | segment number (equals the file name's) |
//! | 24 | 8 | base seq: sequence number of the last data record before this segment |
//! | 32 | 8 | segment size in bytes |
//! | 40 | 16 | chain value of the previous segment's last record (`CLEARHOUSE-JRNL1` for segment 1) |
//! | 56 | 4 | reserved, zero |
//! | 60 | 4 | CRC32C of bytes 0..60 |
//!
//! Records follow from offset 64, each starting at a multiple of 8:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind: 1 data, 2 segment end, 3 seal |
//! | 1 | 3 | reserved, zero |
//! | 4 | 4 | payload length |
//! | 8 | 8 | seq: data records are numbered 1, 2, ...; control records repeat the last number |
//! | 16 | 4 | synced offset: bytes before it in this segment were durable when this record was written |
//! | 20 | 4 | CRC32C of `payload ‖ padding ‖ header bytes 0..20 ‖ header bytes 24..40` |
//! | 24 | 16 | chain value |
//! | 40 | len | payload, then zero padding to a multiple of 8 |
//!
//! The chain value of a record is XXH3-128 of `previous chain value ‖ header bytes 0..20 ‖
//! XXH3-128(payload)` (little-endian u128s). Through the previous value it covers every record
//! before it, across segments (the segment header carries the value over). Together the CRC and
//! the chain cover every byte of the record; padding must be zero.
//!
//! # Invariants
//!
//! - Sequence numbers of data records are dense, from 1, in claim order. Each producer's records
//!   are in its own append order; a batch that fits in one claim (a quarter of the buffer) is
//!   stored contiguously.
//! - A record is acknowledged only after it is durable (durable mode), and only after every
//!   record before it is.
//! - Every segment except the last ends with a segment-end record followed by zeros only; the
//!   last one of a sealed journal ends with the seal record followed by zeros only. Nothing is
//!   written after a seal, and no record is ever modified in place once written.
//! - In durable mode a segment-end is synced before the next segment is used. A seal is
//!   preceded by a sync of every segment (so its synced offset is its own offset) and followed
//!   by one; a clean close syncs every segment too.
//! - Only one `Journal` appends to a directory at a time (an exclusive `flock` on `LOCK`).
//!
//! # Recovery (`Journal::open`)
//!
//! Every segment is read and checked (CRC, sequence, chain, headers, zero tails). Then:
//! - zeros after the last valid record of the last segment: the normal end;
//! - anything else after the last valid record of the last segment is a **torn tail** if no
//!   record after it proves it was durable: it is zeroed, fsynced and reported in
//!   [`RecoveryReport::truncated`]. A crash during an unsynced write can leave later pages
//!   written and earlier ones not; those later records carry a synced offset at or before the
//!   damage, so they are recognised as part of the same torn write;
//! - a damaged record followed by a valid record whose synced offset lies past the damage, or a
//!   damaged record in any segment but the last, or anything after a seal or a segment end, is a
//!   **hard error** ([`JournalError::Corrupt`] with the file and byte offset): durable data was
//!   damaged and nothing is skipped. The limit of what can be told apart: damage to the very
//!   last records of an unsealed journal, or to a seal record, after they were synced looks
//!   like a torn write and is truncated (and reported; a truncated seal leaves the journal
//!   unsealed);
//! - a last segment file with neither a valid header nor records (created ahead of time and
//!   never used, or its header write torn) is removed.
//!
//! [`verify`] and [`read_all`] change nothing and are strict: a torn tail is an error there too
//! (open the journal first to recover it).

mod error;
mod format;
#[doc(hidden)]
pub mod record_work;
mod ring;
mod scan;
mod segment;
mod wait;
mod writer;

#[cfg(test)]
mod tests;

pub use error::{Defect, JournalError};

use format::{frame_len, ring_kind, SegmentHeader, GENESIS_CHAIN, SEGMENT_HEADER_LEN};
use ring::Shared;
use scan::Mode;
use segment::{create_segment_file, open_segment_rw, sync_dir, write_header, DirLock};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use writer::{ActiveSegment, WriterExit, WriterStart};

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// After `fdatasync` of the segment (group commit). The production mode.
    Durable,
    /// After the `write` into the operating system: survives a crash of the process, not of the
    /// machine. Everything is synced on seal and on close. After a power loss or OS crash the
    /// unsynced part may be damaged in any segment, and recovery may then refuse the journal (a
    /// hard error naming the damaged segment): use it for benchmarks and tests.
    Buffered,
}

/// Journal configuration; every size is bounded and checked by [`Journal::open`].
#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub sync: SyncMode,
    /// Size new segment files are pre-allocated to: 4 KiB ..= 1 GiB, a multiple of 8.
    pub segment_size_bytes: u64,
    /// Capacity of the in-memory ring between producers and the writer: a power of two,
    /// 4 KiB ..= 1 GiB. Producers wait when it is full.
    pub buffer_size_bytes: usize,
    /// Largest payload accepted. Its record (payload + 40-byte header) must fit in a quarter of
    /// the buffer and in a segment after the segment header and one control record.
    pub record_size_max_bytes: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            sync: SyncMode::Durable,
            segment_size_bytes: 64 << 20,
            buffer_size_bytes: 16 << 20,
            record_size_max_bytes: 1 << 20,
        }
    }
}

impl JournalOptions {
    fn validate(&self) -> Result<(), JournalError> {
        let segment = self.segment_size_bytes;
        if !(format::SEGMENT_SIZE_MIN..=format::SEGMENT_SIZE_MAX).contains(&segment)
            || !format::is_aligned(segment)
        {
            return Err(JournalError::InvalidOptions(
                "segment_size_bytes must be a multiple of 8 in 4 KiB ..= 1 GiB",
            ));
        }
        let buffer = self.buffer_size_bytes;
        if !buffer.is_power_of_two() || !(4096..=1 << 30).contains(&buffer) {
            return Err(JournalError::InvalidOptions(
                "buffer_size_bytes must be a power of two in 4 KiB ..= 1 GiB",
            ));
        }
        let record = frame_len(self.record_size_max_bytes) as u64;
        if self.record_size_max_bytes > u32::MAX as usize || record > (buffer / 4) as u64 {
            return Err(JournalError::InvalidOptions(
                "record_size_max_bytes + 40 must fit in a quarter of buffer_size_bytes",
            ));
        }
        let segment_overhead = SEGMENT_HEADER_LEN as u64 + format::RECORD_HEADER_LEN as u64;
        if record + segment_overhead > segment {
            return Err(JournalError::InvalidOptions(
                "record_size_max_bytes + 144 must fit in segment_size_bytes",
            ));
        }
        Ok(())
    }
}

/// What `Journal::open` found and repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files holding records.
    pub segments: u64,
    /// Data records in the journal.
    pub records: u64,
    /// Sequence number of the last data record (0 if none).
    pub last_seq: u64,
    pub sealed: bool,
    /// The torn tail that was zeroed, if any.
    pub truncated: Option<TruncatedTail>,
    /// A last segment file without header or records (created in advance, never used) that
    /// was removed.
    pub removed_unused_segment: Option<PathBuf>,
}

/// A torn tail removed by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatedTail {
    pub file: PathBuf,
    /// First byte that was not part of a valid record; appending resumes here.
    pub offset: u64,
    /// Bytes zeroed (from `offset` to the last non-zero byte).
    pub bytes_discarded: u64,
    /// CRC-valid records inside the discarded range: written, but never acknowledged as
    /// durable (a torn group commit).
    pub records_discarded: u64,
}

/// Result of [`verify`] and [`read_all`]: the journal is intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub segments: u64,
    pub records: u64,
    pub payload_bytes: u64,
    pub last_seq: u64,
    pub sealed: bool,
    /// Chain value of the last record: a fingerprint of the whole journal.
    pub chain: [u8; 16],
}

/// The final state written by [`Journal::seal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealReport {
    pub last_seq: u64,
    /// Chain value of the seal record (equals [`VerifyReport::chain`] of the sealed journal).
    pub chain: [u8; 16],
}

/// An open journal directory. Appends go through [`Appender`]s; the writer thread stops on
/// [`Journal::seal`], [`Journal::close`] or drop (which syncs what was appended).
pub struct Journal {
    shared: Arc<Shared>,
    /// Taken by seal/close to join the writer; never touched by appends.
    writer: Mutex<Option<JoinHandle<Result<WriterExit, JournalError>>>>,
    dir: PathBuf,
    /// Declared last: released after the writer has been joined in `drop`.
    _lock: DirLock,
}

/// A cheap, clonable handle for appending from any thread. Appenders share no lock.
#[derive(Clone)]
pub struct Appender {
    shared: Arc<Shared>,
}

/// An accepted append: [`AppendTicket::wait`] blocks until it is acknowledged (durable in
/// [`SyncMode::Durable`]). It borrows its [`Appender`] (keep the appender in a variable while
/// the ticket lives): a ticket that owned a reference count would add a second contended
/// atomic operation to every append.
#[must_use = "an append is only acknowledged once its ticket's wait returns Ok"]
pub struct AppendTicket<'a> {
    shared: &'a Shared,
    /// Ring position after the last frame of the append.
    end: u64,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, verifying every segment and truncating
    /// a torn tail (see the module doc). A sealed journal opens read-only: appends and seal
    /// return [`JournalError::Sealed`].
    pub fn open(
        dir: impl AsRef<Path>,
        options: JournalOptions,
    ) -> Result<(Journal, RecoveryReport), JournalError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| JournalError::io("create dir", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let outcome = scan::scan(&dir, Mode::Recover, &mut |_, _| {})?;
        let mut report = RecoveryReport {
            segments: outcome.segments,
            records: outcome.records,
            last_seq: outcome.last_seq,
            sealed: outcome.sealed,
            truncated: None,
            removed_unused_segment: None,
        };
        if let Some(path) = &outcome.unused_segment {
            std::fs::remove_file(path).map_err(|e| JournalError::io("remove", path, e))?;
            report.removed_unused_segment = Some(path.clone());
        }
        if let Some(torn) = &outcome.torn {
            zero_range(&torn.file, torn.offset, torn.end)?;
            report.truncated = Some(TruncatedTail {
                file: torn.file.clone(),
                offset: torn.offset,
                bytes_discarded: torn.end - torn.offset,
                records_discarded: torn.records,
            });
        }
        let buffer = options.buffer_size_bytes;
        let (claim_max, record_max) = (buffer / 4, options.record_size_max_bytes);
        if outcome.sealed {
            sync_dir(&dir)?;
            let shared = Arc::new(Shared::new_sealed(buffer, claim_max, record_max));
            let journal = Journal {
                shared,
                writer: Mutex::new(None),
                dir,
                _lock: lock,
            };
            return Ok((journal, report));
        }
        let segment = active_segment(&dir, &outcome, options.segment_size_bytes)?;
        sync_dir(&dir)?;
        let shared = Arc::new(Shared::new(buffer, claim_max, record_max));
        let handle = writer::spawn(WriterStart {
            shared: Arc::clone(&shared),
            dir: dir.clone(),
            segment,
            last_seq: outcome.last_seq,
            chain: outcome.chain,
            durable: options.sync == SyncMode::Durable,
            segment_size: options.segment_size_bytes,
        })?;
        let journal = Journal {
            shared,
            writer: Mutex::new(Some(handle)),
            dir,
            _lock: lock,
        };
        Ok((journal, report))
    }

    /// A handle for appending; clone it freely.
    pub fn appender(&self) -> Appender {
        Appender {
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `fdatasync` calls of the writer since the journal was opened (group commits, segment
    /// rolls, seal), for metrics.
    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the journal is sealed (by [`Journal::seal`] or found sealed on open).
    pub fn is_sealed(&self) -> bool {
        self.shared.close_reason() == ring::SEALED
    }

    /// Seals the journal: every append that was accepted before is written, then a seal record,
    /// synced. Appends racing with the seal are either before it or get
    /// [`JournalError::Sealed`]. Returns once the seal is durable.
    pub fn seal(&self) -> Result<SealReport, JournalError> {
        self.shared.close(ring::SEALED, ring_kind::SEAL)?;
        let exit = self.join_writer()?;
        Ok(SealReport {
            last_seq: exit.last_seq,
            chain: exit.chain,
        })
    }

    /// Stops the writer after writing and syncing everything accepted so far. The journal stays
    /// unsealed: reopening continues it. Closing a sealed journal is a no-op.
    pub fn close(self) -> Result<(), JournalError> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<(), JournalError> {
        match self.shared.close(ring::CLOSED_REASON, ring_kind::SHUTDOWN) {
            Ok(_) => self.join_writer().map(|_| ()),
            Err(JournalError::Sealed | JournalError::Closed) => Ok(()),
            Err(e) => {
                let _ = self.join_writer();
                Err(e)
            }
        }
    }

    fn join_writer(&self) -> Result<WriterExit, JournalError> {
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(handle) = handle else {
            return Err(self.shared.poisoned());
        };
        handle
            .join()
            .unwrap_or_else(|_| Err(JournalError::Poisoned("journal writer panicked".into())))
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; `close` reports them.
        let _ = self.shutdown();
    }
}

impl Appender {
    /// Appends one record. Returns once the record is in the buffer; wait on the ticket for the
    /// acknowledgement. May wait for buffer space (back-pressure).
    pub fn append(&self, payload: &[u8]) -> Result<AppendTicket<'_>, JournalError> {
        let end = self.shared.append(payload)?;
        Ok(AppendTicket {
            shared: &self.shared,
            end,
        })
    }

    /// Appends records in order; the ticket covers all of them. Every record is size-checked
    /// before anything is appended. A batch that fits in one claim (a quarter of the buffer) is
    /// stored contiguously and is all-or-nothing; a larger batch is split into several claims
    /// and, if the journal is sealed or closed meanwhile, only its first claims are appended.
    pub fn append_batch<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
    ) -> Result<AppendTicket<'_>, JournalError> {
        let end = self.shared.append_batch(payloads)?;
        Ok(AppendTicket {
            shared: &self.shared,
            end,
        })
    }
}

impl AppendTicket<'_> {
    /// Blocks until the append is acknowledged: durable in [`SyncMode::Durable`], written to
    /// the OS in [`SyncMode::Buffered`]. Errors if the writer failed first.
    pub fn wait(&self) -> Result<(), JournalError> {
        self.shared.wait_acked(self.end)
    }

    /// Whether [`AppendTicket::wait`] would return `Ok` at once.
    pub fn is_acknowledged(&self) -> bool {
        self.shared.is_acked(self.end)
    }
}

/// Reads every data record in order, calling `f(seq, payload)` after checking the record's CRC
/// and chain link. Strict: any defect (including a torn tail) is an error. On error, the
/// records already delivered were individually valid but the journal as a whole is not.
pub fn read_all(
    dir: impl AsRef<Path>,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<VerifyReport, JournalError> {
    let outcome = scan::scan(dir.as_ref(), Mode::Strict, &mut f)?;
    Ok(VerifyReport {
        segments: outcome.segments,
        records: outcome.records,
        payload_bytes: outcome.payload_bytes,
        last_seq: outcome.last_seq,
        sealed: outcome.sealed,
        chain: outcome.chain,
    })
}

/// Checks every segment header, record CRC, sequence number and chain link, and that nothing
/// but zeros follows the end of each segment. Changes nothing.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, JournalError> {
    read_all(dir, |_, _| {})
}

/// The segment the writer starts in: the recovered last one, or a new one.
fn active_segment(
    dir: &Path,
    outcome: &scan::ScanOutcome,
    segment_size: u64,
) -> Result<ActiveSegment, JournalError> {
    let Some(tail) = outcome.tail.as_ref().filter(|t| !t.ended) else {
        let number = outcome.tail.as_ref().map_or(1, |t| t.number + 1);
        return new_segment(dir, number, outcome.last_seq, outcome.chain, segment_size);
    };
    let file = open_segment_rw(&tail.path)?;
    // What was read may still be only in the page cache (the previous process may have died
    // before syncing): make it durable before treating it as synced.
    file.sync_data()
        .map_err(|e| JournalError::io("fdatasync", &tail.path, e))?;
    Ok(ActiveSegment {
        file,
        path: tail.path.clone(),
        number: tail.number,
        size: tail.size,
        offset: tail.end,
        synced: tail.end,
    })
}

fn new_segment(
    dir: &Path,
    number: u64,
    base_seq: u64,
    prev_chain: [u8; 16],
    size: u64,
) -> Result<ActiveSegment, JournalError> {
    assert!(number > 1 || prev_chain == GENESIS_CHAIN);
    let file = create_segment_file(dir, number, size, true)?;
    let path = segment::segment_path(dir, number);
    let header = SegmentHeader {
        number,
        base_seq,
        size,
        prev_chain,
    };
    write_header(&file, &path, &header, true)?;
    Ok(ActiveSegment {
        file,
        path,
        number,
        size,
        offset: SEGMENT_HEADER_LEN as u64,
        synced: SEGMENT_HEADER_LEN as u64,
    })
}

/// Overwrites `[from, to)` of `path` with zeros and syncs: the torn-tail truncation. Zeroing
/// instead of shrinking the file keeps it pre-allocated.
fn zero_range(path: &Path, from: u64, to: u64) -> Result<(), JournalError> {
    assert!(from <= to);
    let file = open_segment_rw(path)?;
    let zeros = vec![0u8; 64 << 10];
    let mut pos = from;
    while pos < to {
        let len = ((to - pos) as usize).min(zeros.len());
        file.write_all_at(&zeros[..len], pos)
            .map_err(|e| JournalError::io("write", path, e))?;
        pos += len as u64;
    }
    file.sync_data()
        .map_err(|e| JournalError::io("fdatasync", path, e))
}
