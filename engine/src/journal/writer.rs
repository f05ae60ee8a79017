//! The single writer thread: drains committed frames from the ring in claim order, gives each
//! record its sequence number, chain value and CRC, writes them to the active segment, syncs
//! (group commit) and acknowledges. Only this thread touches the segment files while the
//! journal is open, so the chain needs no synchronisation.

use super::error::JournalError;
use super::format::{
    finish_record, frame_len, is_aligned, producer_header, ring_kind, RecordKind, SegmentHeader,
    RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::ring::Shared;
use super::segment::{
    create_segment_file, open_segment_rw, segment_path, sync_dir, write_header, SEGMENT_COUNT_MAX,
};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Room kept free at the end of every segment for the one control record (segment end or seal)
/// that closes it, so closing a segment never needs another segment.
const SEGMENT_RESERVE: u64 = RECORD_HEADER_LEN as u64;

/// The segment being appended to.
pub(crate) struct ActiveSegment {
    pub file: File,
    pub path: PathBuf,
    pub number: u64,
    /// Pre-allocated size from the segment header.
    pub size: u64,
    /// Where the next record goes.
    pub offset: u64,
    /// Everything before this offset is known durable (last fdatasync).
    pub synced: u64,
}

/// Where the writer starts: the recovered end of the journal.
pub(crate) struct WriterStart {
    pub shared: Arc<Shared>,
    pub dir: PathBuf,
    pub segment: ActiveSegment,
    pub last_seq: u64,
    pub chain: [u8; 16],
    pub durable: bool,
    /// Size of segments created from now on.
    pub segment_size: u64,
}

/// The journal's final state when the writer stops.
pub(crate) struct WriterExit {
    pub last_seq: u64,
    pub chain: [u8; 16],
}

/// A contiguous range of ring memory that maps to a contiguous range of the segment file.
#[derive(Default)]
struct Run {
    pos: u64,
    len: u64,
    file_offset: u64,
}

struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    seg: ActiveSegment,
    seq: u64,
    chain: [u8; 16],
    /// Next ring position to consume.
    scan: u64,
    durable: bool,
    segment_size: u64,
    /// Bytes drained between two releases of ring space back to producers.
    chunk_max: u64,
    /// Bytes covered by one fdatasync at most (durable mode).
    group_max: u64,
    run: Run,
    unsynced: bool,
    prepared: Option<JoinHandle<Result<File, JournalError>>>,
    /// Buffered mode: closed segments not yet synced (synced on seal and close).
    unsynced_segments: Vec<PathBuf>,
}

pub(crate) fn spawn(
    start: WriterStart,
) -> Result<JoinHandle<Result<WriterExit, JournalError>>, JournalError> {
    let capacity = start.shared.ring_capacity() as u64;
    let shared = Arc::clone(&start.shared);
    let dir = start.dir.clone();
    let writer = Writer {
        shared: start.shared,
        dir: start.dir,
        seg: start.segment,
        seq: start.last_seq,
        chain: start.chain,
        scan: 0,
        durable: start.durable,
        segment_size: start.segment_size,
        chunk_max: capacity / 4,
        group_max: capacity,
        run: Run::default(),
        unsynced: false,
        prepared: None,
        unsynced_segments: Vec::new(),
    };
    std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || {
            let _guard = FailOnPanic(Arc::clone(&shared));
            let result = writer.run();
            match &result {
                Err(e) => shared.fail(e.to_string()),
                Ok(_) => shared.mark_stopped(),
            }
            result
        })
        .map_err(|e| JournalError::io("spawn writer thread", dir, e))
}

/// Producers and waiters must not hang if the writer panics (a broken invariant).
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("journal writer panicked".to_string());
        }
    }
}

impl Writer {
    fn run(mut self) -> Result<WriterExit, JournalError> {
        self.spawn_preparer();
        loop {
            let scan = self.scan;
            let shared = Arc::clone(&self.shared);
            shared.work.0.idle_until(|| shared.tail_position() > scan);
            if let Some(stop) = self.group()? {
                assert!(stop == ring_kind::SEAL || stop == ring_kind::SHUTDOWN);
                self.discard_prepared();
                return Ok(WriterExit {
                    last_seq: self.seq,
                    chain: self.chain,
                });
            }
        }
    }

    /// One group commit: drains what is committed (at most `group_max` bytes), syncs once in
    /// durable mode, acknowledges. Returns the stop marker if one was reached.
    fn group(&mut self) -> Result<Option<u8>, JournalError> {
        // A claim exists at `scan` (tail > scan); its producer may still be copying.
        self.shared.wait_committed(self.scan);
        let group_start = self.scan;
        let mut watermark = self.seg.synced;
        let mut stop = None;
        while self.scan - group_start < self.group_max {
            let (consumed, marker) = self.drain_chunk(&mut watermark)?;
            if marker.is_some() {
                stop = marker;
                break;
            }
            // In buffered mode acknowledge every chunk; in durable mode keep draining whatever
            // is already committed so it shares the coming fdatasync.
            if consumed == 0 || !self.durable {
                break;
            }
        }
        match stop {
            Some(ring_kind::SEAL) => self.write_seal()?,
            Some(_) => {
                self.sync_closed_segments()?;
                self.sync()?;
            }
            None if self.durable => self.sync()?,
            None => {}
        }
        self.shared.publish_acked(self.scan);
        Ok(stop)
    }

    /// Frames and writes committed frames from `scan` (at most `chunk_max` bytes), then zeroes
    /// them and releases their ring space. Returns bytes consumed and the stop marker, if any.
    fn drain_chunk(&mut self, watermark: &mut u64) -> Result<(u64, Option<u8>), JournalError> {
        let start = self.scan;
        let mut pos = start;
        let mut stop = None;
        while pos - start < self.chunk_max {
            let Some((kind, len)) = self.shared.committed_frame(pos) else {
                break;
            };
            match kind {
                ring_kind::PAD => {
                    assert!(len > 0 && is_aligned(u64::from(len)), "pad length {len}");
                    self.flush_run()?;
                    pos += u64::from(len);
                }
                ring_kind::SEAL | ring_kind::SHUTDOWN => {
                    pos += RECORD_ALIGN as u64;
                    stop = Some(kind);
                    break;
                }
                k if k == RecordKind::Data as u8 => {
                    let frame = frame_len(len as usize) as u64;
                    self.frame_data(pos, frame, watermark)?;
                    pos += frame;
                }
                other => panic!("journal ring corrupted: frame kind {other:#x} at {pos}"),
            }
        }
        self.flush_run()?;
        self.shared.release(start, pos);
        self.scan = pos;
        Ok((pos - start, stop))
    }

    /// Assigns the next sequence number and chain value to the data frame at `pos` and queues
    /// it for writing, rolling to a new segment first if it does not fit.
    fn frame_data(
        &mut self,
        pos: u64,
        frame: u64,
        watermark: &mut u64,
    ) -> Result<(), JournalError> {
        if self.seg.offset + frame + SEGMENT_RESERVE > self.seg.size {
            self.flush_run()?;
            self.roll(watermark)?;
        }
        assert!(self.seg.offset + frame + SEGMENT_RESERVE <= self.seg.size);
        // SAFETY: the frame is committed and not yet released: the writer owns it.
        let header = unsafe { self.shared.frame_mut(pos, RECORD_HEADER_LEN) };
        self.seq += 1;
        let synced = u32::try_from(*watermark).expect("segment offsets fit in u32");
        self.chain = finish_record(header, self.seq, synced, &self.chain);
        let contiguous = self.run.len > 0
            && self.run.pos + self.run.len == pos
            && self.shared.ends_before_ring_end(self.run.pos, self.run.len)
            && self.run.file_offset + self.run.len == self.seg.offset;
        if !contiguous {
            self.flush_run()?;
            self.run = Run {
                pos,
                len: 0,
                file_offset: self.seg.offset,
            };
        }
        self.run.len += frame;
        self.seg.offset += frame;
        Ok(())
    }

    fn flush_run(&mut self) -> Result<(), JournalError> {
        if self.run.len == 0 {
            return Ok(());
        }
        // SAFETY: the run covers committed, unreleased frames in one physical stretch.
        let bytes = unsafe { self.shared.frame(self.run.pos, self.run.len as usize) };
        self.seg
            .file
            .write_all_at(bytes, self.run.file_offset)
            .map_err(|e| JournalError::io("write", &self.seg.path, e))?;
        self.unsynced = true;
        self.run.len = 0;
        Ok(())
    }

    /// Closes the active segment with a segment-end record and continues in the next
    /// (pre-created) segment, whose header carries the chain value.
    ///
    /// Durable mode syncs the closed segment and the new header before any record goes into
    /// the new segment, so every segment but the last is complete on disk. Buffered mode leaves
    /// write-back to the OS until seal or close (syncing at every roll would cap its throughput
    /// at the disk's bandwidth, which is what durable mode is for).
    fn roll(&mut self, watermark: &mut u64) -> Result<(), JournalError> {
        self.write_control(RecordKind::SegmentEnd, *watermark)?;
        let file = self.take_prepared()?;
        let number = self.seg.number + 1;
        let path = segment_path(&self.dir, number);
        let header = SegmentHeader {
            number,
            base_seq: self.seq,
            size: self.segment_size,
            prev_chain: self.chain,
        };
        if self.durable {
            self.sync()?;
        } else {
            assert!(self.unsynced_segments.len() < SEGMENT_COUNT_MAX);
            self.unsynced_segments.push(self.seg.path.clone());
        }
        write_header(&file, &path, &header, self.durable)?;
        self.seg = ActiveSegment {
            file,
            path,
            number,
            size: self.segment_size,
            offset: SEGMENT_HEADER_LEN as u64,
            synced: SEGMENT_HEADER_LEN as u64,
        };
        self.unsynced = !self.durable;
        *watermark = self.seg.synced;
        self.spawn_preparer();
        Ok(())
    }

    /// Buffered mode: makes the segments closed since the last call durable (on seal and
    /// close), so that a sealed or cleanly closed journal is on disk in either mode.
    fn sync_closed_segments(&mut self) -> Result<(), JournalError> {
        if self.durable {
            assert!(self.unsynced_segments.is_empty());
            return Ok(());
        }
        for path in self.unsynced_segments.drain(..) {
            let file = open_segment_rw(&path)?;
            file.sync_data()
                .map_err(|e| JournalError::io("fdatasync", &path, e))?;
            self.shared
                .syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Buffered mode creates segments without syncing their directory entries.
        sync_dir(&self.dir)
    }

    /// The seal is preceded by a sync so that its synced offset is its own offset: recovery can
    /// then tell that every record before a seal was durable (a later corruption there is a hard
    /// error, never a torn tail).
    fn write_seal(&mut self) -> Result<(), JournalError> {
        self.sync_closed_segments()?;
        self.sync()?;
        self.write_control(RecordKind::Seal, self.seg.synced)?;
        self.sync()
    }

    fn write_control(&mut self, kind: RecordKind, watermark: u64) -> Result<(), JournalError> {
        assert!(self.run.len == 0, "control records follow flushed data");
        assert!(self.seg.offset + SEGMENT_RESERVE <= self.seg.size);
        let mut record = producer_header(kind, &[]);
        let synced = u32::try_from(watermark).expect("segment offsets fit in u32");
        self.chain = finish_record(&mut record, self.seq, synced, &self.chain);
        self.seg
            .file
            .write_all_at(&record, self.seg.offset)
            .map_err(|e| JournalError::io("write", &self.seg.path, e))?;
        self.seg.offset += RECORD_HEADER_LEN as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Makes the active segment durable.
    fn sync(&mut self) -> Result<(), JournalError> {
        if self.unsynced {
            self.seg
                .file
                .sync_data()
                .map_err(|e| JournalError::io("fdatasync", &self.seg.path, e))?;
            self.shared
                .syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.unsynced = false;
        }
        self.seg.synced = self.seg.offset;
        Ok(())
    }

    /// Creates the next segment file in the background (create, fallocate and, in durable mode,
    /// a directory fsync take milliseconds, more while the disk is busy) so that a roll only
    /// writes a header.
    fn spawn_preparer(&mut self) {
        assert!(self.prepared.is_none());
        let dir = self.dir.clone();
        let number = self.seg.number + 1;
        let size = self.segment_size;
        let durable = self.durable;
        let spawned = std::thread::Builder::new()
            .name("journal-prepare".into())
            .spawn(move || create_segment_file(&dir, number, size, durable));
        // If no thread can be spawned, the roll creates the file itself.
        self.prepared = spawned.ok();
    }

    fn take_prepared(&mut self) -> Result<File, JournalError> {
        let number = self.seg.number + 1;
        match self.prepared.take() {
            Some(handle) => handle.join().unwrap_or_else(|_| {
                Err(JournalError::Poisoned("segment preparer panicked".into()))
            }),
            None => create_segment_file(&self.dir, number, self.segment_size, self.durable),
        }
    }

    /// After a seal or close the pre-created next segment is not needed. Removing it is best
    /// effort: a left-over all-zero last segment is valid (the scanner treats it as unused).
    fn discard_prepared(&mut self) {
        if let Some(handle) = self.prepared.take() {
            if let Ok(Ok(file)) = handle.join() {
                drop(file);
                let path = segment_path(&self.dir, self.seg.number + 1);
                if std::fs::remove_file(&path).is_ok() {
                    let _ = sync_dir(&self.dir);
                }
            }
        }
    }
}
