//! The lock-free multi-producer log buffer between producers and the single writer thread.
//!
//! Positions are byte offsets in an unbounded stream (`u64`); the ring index is the position
//! masked by the power-of-two capacity. Producers share no lock:
//!
//! 1. **Claim**: one `fetch_add` on `tail` reserves `[start, start + len)`. Bit 63 of `tail` is the
//!    CLOSED flag, set by seal/close in the same word, so a claim and the check that the journal
//!    is still open are one atomic step: every claim either precedes the seal marker in the
//!    stream (and is written before the seal record) or observes CLOSED and is refused.
//! 2. **Back-pressure**: the claimed range may be reused ring memory; the producer waits until
//!    the writer has released it (`head >= start + len - capacity`). Claims are bounded to a
//!    quarter of the ring, and the writer only needs frames *before* a waiting producer's claim,
//!    so this cannot deadlock.
//! 3. **Wrap**: a claim that would cross the physical end of the ring is turned into a pad frame
//!    covering the whole claim and the producer claims again, so a frame is always contiguous
//!    in memory (as in Aeron's log buffers).
//! 4. **Write and commit**: the producer writes the length and payload, then publishes the frame
//!    with a release store of its first 4 bytes (the kind, never zero).
//!
//! The writer acquires commit words in stream order, frames the records in place, writes them
//! to the segment file, zeroes the consumed bytes (so a stale commit word is never mistaken for a
//! new one) and then advances `head`, releasing the space.

use super::error::JournalError;
use super::format::{
    frame_len, is_aligned, producer_header, ring_kind, RecordKind, RECORD_ALIGN, RECORD_HEADER_LEN,
    RECORD_LEN_OFFSET,
};
use super::wait::{poll_until, Notifier};
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8};
use std::sync::OnceLock;

const CLOSED: u64 = 1 << 63;
/// Size of the seal/shutdown marker frame: just a commit word and a length, so it always fits
/// before the physical end of the ring (positions are 8-aligned).
const MARKER_LEN: u64 = RECORD_ALIGN as u64;

/// Why the ring stopped accepting claims.
pub(crate) const OPEN: u8 = 0;
pub(crate) const SEALED: u8 = 1;
pub(crate) const CLOSED_REASON: u8 = 2;

/// Keeps hot atomics of different writers on different cache lines.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub T);

/// Zeroed, 128-byte aligned memory owned by [`Shared`].
struct RingMemory {
    base: NonNull<u8>,
    layout: Layout,
}

impl RingMemory {
    fn new(capacity: usize) -> RingMemory {
        let layout = Layout::from_size_align(capacity, 128).expect("ring layout");
        assert!(layout.size() > 0);
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout));
        RingMemory { base, layout }
    }
}

impl Drop for RingMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// State shared by the journal handle, the appenders and the writer thread.
pub(crate) struct Shared {
    memory: RingMemory,
    capacity: usize,
    mask: usize,
    /// Largest single claim; a batch larger than this is split into several claims.
    claim_max: usize,
    record_max: usize,
    /// Next free position, bit 63 = CLOSED. Written by producers.
    tail: Padded<AtomicU64>,
    /// Everything before it has been written to the file and zeroed. Written by the writer.
    head: Padded<AtomicU64>,
    /// Everything before it is acknowledged (fdatasync'd in durable mode). Written by the writer.
    acked: Padded<AtomicU64>,
    close_reason: AtomicU8,
    failed: AtomicBool,
    failure: OnceLock<String>,
    /// The writer thread has exited (after a seal, a close, or a failure).
    stopped: AtomicBool,
    pub(crate) work: Padded<Notifier>,
    space: Padded<Notifier>,
    ack: Padded<Notifier>,
    /// fdatasync calls made by the writer, for metrics. Written by the writer only.
    pub(crate) syncs: AtomicU64,
}

// SAFETY: the ring memory is only accessed through the claim/commit/release protocol described
// in the module doc, which gives every byte a single owner at a time with happens-before edges
// (release/acquire on the commit word and on `head`) between owners.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    pub(crate) fn new(capacity: usize, claim_max: usize, record_max: usize) -> Shared {
        assert!(capacity.is_power_of_two() && capacity >= 4096);
        assert!(claim_max <= capacity / 4 && frame_len(record_max) <= claim_max);
        Shared {
            memory: RingMemory::new(capacity),
            capacity,
            mask: capacity - 1,
            claim_max,
            record_max,
            tail: Padded::default(),
            head: Padded::default(),
            acked: Padded::default(),
            close_reason: AtomicU8::new(OPEN),
            failed: AtomicBool::new(false),
            failure: OnceLock::new(),
            stopped: AtomicBool::new(false),
            work: Padded::default(),
            space: Padded::default(),
            ack: Padded::default(),
            syncs: AtomicU64::new(0),
        }
    }

    /// A ring that refuses every claim: for a journal found sealed on open.
    pub(crate) fn new_sealed(capacity: usize, claim_max: usize, record_max: usize) -> Shared {
        let shared = Shared::new(capacity, claim_max, record_max);
        shared.close_reason.store(SEALED, SeqCst);
        shared.tail.0.store(CLOSED, SeqCst);
        shared.stopped.store(true, SeqCst);
        shared
    }

    pub(crate) fn ring_capacity(&self) -> usize {
        self.capacity
    }

    // ---------------------------------------------------------------- producer side

    /// Appends one record; returns the stream position its acknowledgement is tracked by.
    pub(crate) fn append(&self, payload: &[u8]) -> Result<u64, JournalError> {
        self.check_record(payload)?;
        self.check_not_failed()?;
        let len = frame_len(payload.len());
        // The sums come before the claim: its locked instruction waits for this thread's
        // earlier stores (the previous frame, into lines the writer last touched) to complete,
        // and hashing first gives them that time instead of stalling on them.
        let header = producer_header(RecordKind::Data, payload);
        let start = self.claim(len)?;
        // SAFETY: `claim` returned a range of `len` bytes that this thread owns, that does not
        // cross the end of the ring and that the writer has zeroed.
        unsafe { self.write_data_frame(start, &header, payload) };
        self.work.0.notify();
        Ok(start + len as u64)
    }

    /// Appends records in order; records that fit in one claim are stored contiguously.
    pub(crate) fn append_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<u64, JournalError> {
        // Refuse the whole batch before claiming anything if one record is invalid.
        for payload in payloads {
            self.check_record(payload.as_ref())?;
        }
        self.check_not_failed()?;
        let mut end = 0;
        let mut rest = payloads;
        while !rest.is_empty() {
            let mut chunk_len = 0;
            let mut count = 0;
            for payload in rest {
                let len = frame_len(payload.as_ref().len());
                if chunk_len + len > self.claim_max {
                    break;
                }
                chunk_len += len;
                count += 1;
            }
            assert!(
                count > 0,
                "every record fits in one claim (checked by the options)"
            );
            let mut pos = self.claim(chunk_len)?;
            for payload in &rest[..count] {
                let payload = payload.as_ref();
                let header = producer_header(RecordKind::Data, payload);
                // SAFETY: sub-range of a claim owned by this thread, see `append`.
                unsafe { self.write_data_frame(pos, &header, payload) };
                pos += frame_len(payload.len()) as u64;
            }
            self.work.0.notify();
            end = pos;
            rest = &rest[count..];
        }
        Ok(end)
    }

    fn check_record(&self, payload: &[u8]) -> Result<(), JournalError> {
        if payload.len() > self.record_max {
            return Err(JournalError::RecordTooLarge {
                len: payload.len(),
                max: self.record_max,
            });
        }
        Ok(())
    }

    fn check_not_failed(&self) -> Result<(), JournalError> {
        if self.failed.load(Acquire) {
            return Err(self.poisoned());
        }
        Ok(())
    }

    /// Reserves `len` contiguous ring bytes, waiting for the writer to free them if needed.
    fn claim(&self, len: usize) -> Result<u64, JournalError> {
        assert!(is_aligned(len as u64) && len > 0 && len <= self.claim_max);
        // Not a retry loop on contention: each iteration that does not return has claimed and
        // padded the end of the ring, which only happens once per lap per producer.
        loop {
            let raw = self.tail.0.fetch_add(len as u64, SeqCst);
            if raw & CLOSED != 0 {
                return Err(self.closed_error());
            }
            let start = raw;
            self.wait_for_space(start + len as u64)?;
            let idx = start as usize & self.mask;
            if idx + len <= self.capacity {
                return Ok(start);
            }
            // The pad frame's header (8 bytes) fits: idx is 8-aligned and below the capacity.
            // SAFETY: the claim is owned by this thread and released by the wait above.
            unsafe { self.write_header_and_commit(idx, ring_kind::PAD, len as u32) };
            self.work.0.notify();
        }
    }

    fn wait_for_space(&self, end: u64) -> Result<(), JournalError> {
        let head_min = end.saturating_sub(self.capacity as u64);
        let ready = || self.head.0.load(SeqCst) >= head_min || self.failed.load(SeqCst);
        if !ready() {
            self.space.0.wait_until(ready);
        }
        if self.head.0.load(SeqCst) >= head_min {
            Ok(())
        } else {
            Err(self.poisoned())
        }
    }

    /// # Safety
    /// `[start, start + frame_len(payload.len()))` must be a zeroed range owned by the caller that
    /// does not cross the end of the ring, and `header` the producer header of `payload`.
    unsafe fn write_data_frame(
        &self,
        start: u64,
        header: &[u8; RECORD_HEADER_LEN],
        payload: &[u8],
    ) {
        let idx = start as usize & self.mask;
        let base = self.memory.base.as_ptr().add(idx);
        // The commit word (bytes 0..4) may be read concurrently by the writer: it is only ever
        // touched atomically. The rest of the header (length, payload CRC and digest) and the
        // payload are plain writes, published by the release store of the commit word.
        std::ptr::copy_nonoverlapping(header[4..].as_ptr(), base.add(4), RECORD_HEADER_LEN - 4);
        let payload_at = base.add(RECORD_HEADER_LEN);
        std::ptr::copy_nonoverlapping(payload.as_ptr(), payload_at, payload.len());
        self.commit_word(idx)
            .store(commit_value(RecordKind::Data as u8), Release);
    }

    /// # Safety
    /// `[idx, idx + 8)` must be owned by the caller.
    unsafe fn write_header_and_commit(&self, idx: usize, kind: u8, len: u32) {
        let base = self.memory.base.as_ptr().add(idx);
        let len = len.to_le_bytes();
        std::ptr::copy_nonoverlapping(len.as_ptr(), base.add(RECORD_LEN_OFFSET), 4);
        self.commit_word(idx).store(commit_value(kind), Release);
    }

    fn commit_word(&self, idx: usize) -> &AtomicU32 {
        assert!(is_aligned(idx as u64) && idx + 4 <= self.capacity);
        // SAFETY: in bounds and 4-aligned (the base is 128-aligned); AtomicU32 has the size and
        // alignment of u32, and every concurrent access to these 4 bytes is atomic.
        unsafe { &*(self.memory.base.as_ptr().add(idx) as *const AtomicU32) }
    }

    /// Stops accepting claims and enqueues a marker frame of `kind` that tells the writer to
    /// stop there. Returns the position after the marker. Only the first caller succeeds.
    pub(crate) fn close(&self, reason: u8, kind: u8) -> Result<u64, JournalError> {
        assert!(reason != OPEN && (kind == ring_kind::SEAL || kind == ring_kind::SHUTDOWN));
        if self
            .close_reason
            .compare_exchange(OPEN, reason, SeqCst, SeqCst)
            .is_err()
        {
            return Err(self.closed_error());
        }
        // A CAS (not fetch_add) because adding CLOSED twice would clear it.
        let mut raw = self.tail.0.load(SeqCst);
        loop {
            assert_eq!(
                raw & CLOSED,
                0,
                "only the winner of close_reason sets CLOSED"
            );
            match self.tail.0.compare_exchange_weak(
                raw,
                (raw + MARKER_LEN) | CLOSED,
                SeqCst,
                SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => raw = now,
            }
        }
        self.wait_for_space(raw + MARKER_LEN)?;
        // SAFETY: the marker's 8 bytes are claimed by the CAS and released by the wait.
        unsafe { self.write_header_and_commit(raw as usize & self.mask, kind, 0) };
        self.work.0.notify();
        Ok(raw + MARKER_LEN)
    }

    pub(crate) fn close_reason(&self) -> u8 {
        self.close_reason.load(SeqCst)
    }

    fn closed_error(&self) -> JournalError {
        match self.close_reason.load(SeqCst) {
            SEALED => JournalError::Sealed,
            _ => JournalError::Closed,
        }
    }

    pub(crate) fn poisoned(&self) -> JournalError {
        let reason = self.failure.get().map_or("writer stopped", String::as_str);
        JournalError::Poisoned(reason.to_string())
    }

    /// Blocks until everything before `end` is acknowledged.
    pub(crate) fn wait_acked(&self, end: u64) -> Result<(), JournalError> {
        let ready = || {
            self.acked.0.load(SeqCst) >= end
                || self.failed.load(SeqCst)
                || self.stopped.load(SeqCst)
        };
        if !ready() {
            self.ack.0.wait_until(ready);
        }
        if self.acked.0.load(SeqCst) >= end {
            Ok(())
        } else if self.failed.load(SeqCst) {
            Err(self.poisoned())
        } else {
            Err(JournalError::Closed)
        }
    }

    pub(crate) fn is_acked(&self, end: u64) -> bool {
        self.acked.0.load(Acquire) >= end
    }

    // ---------------------------------------------------------------- writer side

    /// Claimed positions so far (the writer sleeps only when it has consumed all of them).
    pub(crate) fn tail_position(&self) -> u64 {
        self.tail.0.load(SeqCst) & !CLOSED
    }

    /// The committed frame at `pos`, if its producer has published it: (kind, length field).
    pub(crate) fn committed_frame(&self, pos: u64) -> Option<(u8, u32)> {
        let idx = pos as usize & self.mask;
        let word = self.commit_word(idx).load(Acquire);
        if word == 0 {
            return None;
        }
        let kind = word.to_le_bytes()[0];
        // SAFETY: the acquire load above synchronises with the producer's release store, after
        // which the producer no longer touches the frame.
        let len = unsafe { self.frame(pos, RECORD_ALIGN) };
        let len = super::format::read_u32(len, RECORD_LEN_OFFSET);
        Some((kind, len))
    }

    /// Waits (spinning, then yielding) until the frame at `pos` is committed, or the writer has
    /// been failed. Used when a claim is known to exist at `pos`.
    pub(crate) fn wait_committed(&self, pos: u64) {
        let idx = pos as usize & self.mask;
        poll_until(|| self.commit_word(idx).load(Acquire) != 0 || self.failed.load(Relaxed));
    }

    /// # Safety
    /// The frame at `pos` must be committed and not yet released; only the writer calls this.
    pub(crate) unsafe fn frame(&self, pos: u64, len: usize) -> &[u8] {
        let idx = pos as usize & self.mask;
        assert!(idx + len <= self.capacity);
        std::slice::from_raw_parts(self.memory.base.as_ptr().add(idx), len)
    }

    /// # Safety
    /// As [`Shared::frame`], and no other reference to these bytes may be live.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn frame_mut(&self, pos: u64, len: usize) -> &mut [u8] {
        let idx = pos as usize & self.mask;
        assert!(idx + len <= self.capacity);
        std::slice::from_raw_parts_mut(self.memory.base.as_ptr().add(idx), len)
    }

    /// Whether the next frame after `[pos, pos + len)` follows it in memory (it does not when
    /// the range ends exactly at the physical end of the ring).
    pub(crate) fn ends_before_ring_end(&self, pos: u64, len: u64) -> bool {
        (pos as usize & self.mask) + (len as usize) < self.capacity
    }

    /// Zeroes `[from, to)` and hands it back to the producers. Only the writer calls this, for
    /// frames it has consumed.
    pub(crate) fn release(&self, from: u64, to: u64) {
        assert!(from == self.head.0.load(Relaxed) && from <= to);
        assert!(to - from <= self.capacity as u64);
        let mut pos = from;
        while pos < to {
            let idx = pos as usize & self.mask;
            let len = ((to - pos) as usize).min(self.capacity - idx);
            // SAFETY: consumed frames are owned by the writer until `head` moves past them.
            unsafe { std::ptr::write_bytes(self.memory.base.as_ptr().add(idx), 0, len) };
            pos += len as u64;
        }
        self.head.0.store(to, SeqCst);
        self.space.0.notify();
    }

    pub(crate) fn publish_acked(&self, pos: u64) {
        assert!(pos <= self.head.0.load(Relaxed));
        self.acked.0.store(pos, SeqCst);
        self.ack.0.notify();
    }

    /// Marks the writer failed: every waiter and every later append gets `Poisoned`.
    pub(crate) fn fail(&self, reason: String) {
        let _ = self.failure.set(reason);
        self.failed.store(true, SeqCst);
        self.notify_all();
    }

    pub(crate) fn mark_stopped(&self) {
        self.stopped.store(true, SeqCst);
        self.notify_all();
    }

    fn notify_all(&self) {
        self.work.0.notify();
        self.space.0.notify();
        self.ack.0.notify();
    }
}

/// The commit word holds the kind in its first byte in memory, zero elsewhere; never zero.
fn commit_value(kind: u8) -> u32 {
    assert!(kind != 0);
    u32::from_le_bytes([kind, 0, 0, 0])
}
