//! What this machine allows the journal's append path, measured without the journal's files:
//! the ceiling that the in-process target (20 M appends/s, issue 3) has to fit under.
//!
//! 1. **Per-record work**, one thread, in a loop: the producer's header (CRC32C and XXH3-128 of
//!    the payload), the writer's step (sequence number, chain hash, record CRC), an uncontended
//!    `fetch_add` (a claim), and `write()` of the framed bytes into the page cache from a hot
//!    buffer in 1 MiB calls (the cheapest way the bytes can reach the OS).
//! 2. **The hand-off alone**: the journal's claim/commit protocol on a hot in-memory ring
//!    (1 MiB, fits in L2) between producer threads and one consumer thread, with the real
//!    per-record work (`journal::record_work`) and no I/O at all. This is an upper bound for the
//!    journal: the real one also writes every byte to its segment file.
//!
//! ```sh
//! cargo run --release -p clearhouse-bench --bin journal-ceiling -- --records 40000000
//! ```

use clearhouse_engine::journal::record_work::{finish_record, producer_header, HEADER_BYTES};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Instant;

/// Stand-in for an encoded trade, as in `benches/journal.rs`.
const PAYLOAD_BYTES: usize = 64;
const FRAME_BYTES: usize = HEADER_BYTES + PAYLOAD_BYTES;
const RING_BYTES: usize = FRAME_BYTES * 10_000;
/// The consumer takes frames in batches of this many and hands their space back per batch
/// (the journal's writer drains chunks likewise). A consumer that polls the very frame a
/// producer is writing takes the cache line away from it on every poll: with batches of 64 the
/// hand-off ran at 11 M records/s (1 producer), with 1,024 at 26 M.
const BATCH_FRAMES: u64 = 1024;
/// Scratch files are written from offset 0 again past this size, so a run never fills more
/// page cache than this.
const SCRATCH_BYTES: u64 = 1 << 30;

fn main() {
    let mut records: u64 = 40_000_000;
    let mut dir = std::env::temp_dir();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--records" => records = value.parse().expect("--records N"),
            "--dir" => dir = value.into(),
            other => panic!("unknown flag {other}"),
        }
    }
    println!("per-record work, one thread ({records} records each):");
    let producer_ns = per_record_ns(records, |i, payload| {
        payload[0] = i as u8;
        black_box(producer_header(black_box(payload)));
    });
    println!("  producer header (CRC32C + XXH3-128 of {PAYLOAD_BYTES} B): {producer_ns:.1} ns");
    let mut header = producer_header(&[0x5A; PAYLOAD_BYTES]);
    let mut chain = [0u8; 16];
    let writer_ns = per_record_ns(records, |i, _| {
        header[8..20].fill(0);
        chain = finish_record(black_box(&mut header), i + 1, &chain);
    });
    println!("  writer step (seq, chain XXH3-128, record CRC): {writer_ns:.1} ns");
    let tail = AtomicU64::new(0);
    let claim_ns = per_record_ns(records, |_, _| {
        black_box(tail.fetch_add(FRAME_BYTES as u64, SeqCst));
    });
    println!("  uncontended claim (fetch_add): {claim_ns:.1} ns");
    let write_ns = write_ns_per_record(records, &dir);
    println!(
        "  write() of {FRAME_BYTES} B frames into the page cache, 1 MiB calls: {write_ns:.1} ns"
    );
    let sum = producer_ns + writer_ns + claim_ns + write_ns;
    println!(
        "  sum {sum:.1} ns: {:.1} M records/s if two cores shared it perfectly",
        2.0e3 / sum
    );

    println!(
        "hand-off through a hot {} KiB ring, batches of {BATCH_FRAMES} frames:",
        RING_BYTES >> 10
    );
    for producers in [1u64, 2] {
        let rate = ring_rate(records, producers, Backing::Heap(None));
        println!("  {producers} producer(s) + 1 consumer, no I/O: {rate:.2} M records/s");
    }
    let scratch = ScratchFile::create(&dir, "ring");
    for producers in [1u64, 2] {
        let rate = ring_rate(records, producers, Backing::Heap(Some(&scratch.file)));
        println!(
            "  {producers} producer(s) + 1 consumer that write()s each batch: {rate:.2} M records/s"
        );
    }
    drop(scratch);
    let mapped_records = records.min(SCRATCH_BYTES / FRAME_BYTES as u64);
    println!(
        "producers writing straight into a mapped file ({mapped_records} records, no write()):"
    );
    for producers in [1u64, 2] {
        let rate = ring_rate(mapped_records, producers, Backing::Mapped(&dir));
        println!("  {producers} producer(s) + 1 consumer: {rate:.2} M records/s");
    }
}

fn per_record_ns(records: u64, mut step: impl FnMut(u64, &mut [u8; PAYLOAD_BYTES])) -> f64 {
    let mut payload = [0x5Au8; PAYLOAD_BYTES];
    let started = Instant::now();
    for i in 0..records {
        step(i, &mut payload);
    }
    started.elapsed().as_nanos() as f64 / records as f64
}

/// Writes `records` frames' worth of bytes into a fresh file from a 1 MiB buffer that stays
/// in cache.
fn write_ns_per_record(records: u64, dir: &std::path::Path) -> f64 {
    let scratch = ScratchFile::create(dir, "bin");
    let chunk = vec![0xA5u8; (1 << 20) / FRAME_BYTES * FRAME_BYTES];
    let total = records * FRAME_BYTES as u64;
    let started = Instant::now();
    let mut written = 0;
    while written < total {
        let len = (total - written).min(chunk.len() as u64) as usize;
        scratch
            .file
            .write_all_at(&chunk[..len], written % SCRATCH_BYTES)
            .expect("write scratch file");
        written += len as u64;
    }
    started.elapsed().as_nanos() as f64 / records as f64
}

/// A file in the scratch directory, removed on drop.
struct ScratchFile {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl ScratchFile {
    fn create(dir: &std::path::Path, extension: &str) -> ScratchFile {
        let path = dir.join(format!(
            "journal-ceiling-{}.{extension}",
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create scratch file");
        ScratchFile { file, path }
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the frames live in one `ring_rate` run.
enum Backing<'a> {
    /// The hot in-memory ring; the consumer `write()`s each batch to the file if there is one
    /// (rewriting its first GiB over and over).
    Heap(Option<&'a std::fs::File>),
    /// A file in `dir`, allocated and mapped for every frame of the run: producers write
    /// straight into the page cache (Aeron's mapped log buffers) and nothing is copied.
    Mapped(&'a std::path::Path),
}

/// Frame memory shared by the threads of one `ring_rate` run, zeroed.
struct Ring {
    base: *mut u8,
    bytes: usize,
    /// Written by producers.
    tail: Padded,
    /// Written by the consumer.
    head: Padded,
    _memory: Memory,
}

// SAFETY: the memory is accessed through the claim/commit protocol only (see `ring_rate`).
unsafe impl Sync for Ring {}

enum Memory {
    Heap(#[allow(dead_code)] Vec<AtomicU64>),
    Mapped(MappedFile),
}

/// Keeps `tail` and `head` on different cache lines, as the journal does.
#[repr(align(128))]
struct Padded(AtomicU64);

impl Ring {
    fn new(backing: &Backing, frames: u64) -> Ring {
        let memory = match backing {
            Backing::Heap(_) => {
                Memory::Heap((0..RING_BYTES / 8).map(|_| AtomicU64::new(0)).collect())
            }
            Backing::Mapped(dir) => {
                Memory::Mapped(MappedFile::new(dir, frames as usize * FRAME_BYTES))
            }
        };
        let (base, bytes) = match &memory {
            Memory::Heap(words) => (words.as_ptr() as *mut u8, RING_BYTES),
            Memory::Mapped(map) => (map.base, map.bytes),
        };
        Ring {
            base,
            bytes,
            tail: Padded(AtomicU64::new(0)),
            head: Padded(AtomicU64::new(0)),
            _memory: memory,
        }
    }

    fn offset(&self, pos: u64) -> usize {
        (pos % self.bytes as u64) as usize
    }

    fn commit_word(&self, pos: u64) -> &AtomicU32 {
        // SAFETY: frames start at multiples of 8 inside the ring, so the 4 bytes are in bounds
        // and aligned; they are only ever accessed atomically.
        unsafe { &*(self.base.add(self.offset(pos)) as *const AtomicU32) }
    }
}

/// A scratch file allocated (`fallocate`) and mapped shared; unmapped and removed on drop.
struct MappedFile {
    base: *mut u8,
    bytes: usize,
    /// Declared last: removed after the mapping is gone.
    _scratch: ScratchFile,
}

impl MappedFile {
    fn new(dir: &std::path::Path, bytes: usize) -> MappedFile {
        use std::os::fd::AsRawFd;
        let scratch = ScratchFile::create(dir, "map");
        let fd = scratch.file.as_raw_fd();
        // SAFETY: plain system calls on a file this function owns; the mapping is checked.
        let base = unsafe {
            assert_eq!(
                libc::fallocate(fd, 0, 0, bytes as libc::off_t),
                0,
                "fallocate"
            );
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert!(base != libc::MAP_FAILED, "mmap");
        MappedFile {
            base: base as *mut u8,
            bytes,
            _scratch: scratch,
        }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer referenced.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.bytes) };
    }
}

/// Producers claim frames with one `fetch_add`, write header and payload, and publish with a
/// release store of the commit word; the consumer acquires frames in claim order, does the
/// writer's step in place, clears the commit word, writes the batch out (see [`Backing`]) and
/// hands space back. Waiting spins briefly, then yields: three threads share two cores when
/// there are two producers.
fn ring_rate(records: u64, producers: u64, backing: Backing) -> f64 {
    const { assert!(FRAME_BYTES.is_multiple_of(8) && RING_BYTES.is_multiple_of(FRAME_BYTES)) };
    let per_producer = records / producers;
    let total = per_producer * producers;
    let ring = Ring::new(&backing, total);
    let file = match backing {
        Backing::Heap(file) => file,
        Backing::Mapped(_) => None,
    };
    let started = Instant::now();
    std::thread::scope(|scope| {
        let ring = &ring;
        scope.spawn(move || {
            let mut chain = [0u8; 16];
            let mut batch_start = 0;
            for seq in 1..=total {
                let pos = (seq - 1) * FRAME_BYTES as u64;
                if (seq - 1) % BATCH_FRAMES == 0 {
                    batch_start = pos;
                    // Consume in batches: a consumer that polls the very frame a producer is
                    // writing takes the line away from it on every poll.
                    let batch_end = (seq - 1 + BATCH_FRAMES).min(total) * FRAME_BYTES as u64;
                    wait_until(|| ring.tail.0.load(Acquire) >= batch_end);
                }
                let word = ring.commit_word(pos);
                wait_until(|| word.load(Acquire) != 0);
                let offset = ring.offset(pos);
                // SAFETY: the acquire above hands the committed frame to this thread until the
                // commit word is cleared and `head` moves past it.
                let header =
                    unsafe { std::slice::from_raw_parts_mut(ring.base.add(offset), HEADER_BYTES) };
                chain = finish_record(header, seq, &chain);
                word.store(0, Relaxed);
                if seq % BATCH_FRAMES == 0 || seq == total {
                    let end = seq * FRAME_BYTES as u64;
                    if let Some(file) = file {
                        write_batch(ring, file, batch_start, end);
                    }
                    ring.head.0.store(end, Release);
                }
            }
            black_box(chain);
        });
        for _ in 0..producers {
            scope.spawn(move || {
                let mut payload = [0x5Au8; PAYLOAD_BYTES];
                for i in 0..per_producer {
                    // Different bytes every time, so the sums cannot be hoisted out of the loop.
                    payload[..8].copy_from_slice(&i.to_le_bytes());
                    let header = producer_header(black_box(&payload));
                    let pos = ring.tail.0.fetch_add(FRAME_BYTES as u64, SeqCst);
                    let free_from = (pos + FRAME_BYTES as u64).saturating_sub(ring.bytes as u64);
                    wait_until(|| ring.head.0.load(Acquire) >= free_from);
                    let offset = ring.offset(pos);
                    // SAFETY: the claim gives this thread the frame's bytes, which the consumer
                    // has released (head is past them); the commit word is published last.
                    unsafe {
                        let frame = ring.base.add(offset);
                        std::ptr::copy_nonoverlapping(
                            header[4..].as_ptr(),
                            frame.add(4),
                            HEADER_BYTES - 4,
                        );
                        std::ptr::copy_nonoverlapping(
                            payload.as_ptr(),
                            frame.add(HEADER_BYTES),
                            PAYLOAD_BYTES,
                        );
                    }
                    ring.commit_word(pos).store(u32::from(header[0]), Release);
                }
            });
        }
    });
    total as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// Writes stream positions `[from, to)` of the ring to `file`, in two pieces if they wrap.
fn write_batch(ring: &Ring, file: &std::fs::File, from: u64, to: u64) {
    let mut pos = from;
    while pos < to {
        let offset = ring.offset(pos);
        let len = ((to - pos) as usize).min(ring.bytes - offset);
        // SAFETY: the consumer owns these committed frames until `head` moves past them.
        let bytes = unsafe { std::slice::from_raw_parts(ring.base.add(offset), len) };
        file.write_all_at(bytes, pos % SCRATCH_BYTES)
            .expect("write scratch file");
        pos += len as u64;
    }
}

fn wait_until(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        if spins < 200 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}
