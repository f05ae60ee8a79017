//! The journal's durable write bandwidth against the disk's sequential write bandwidth,
//! measured in the same run on the same file system.
//!
//! 1. The disk: `dd if=/dev/zero of=<dir>/dd.bin bs=1M count=<MiB> oflag=direct conv=fsync`
//!    (O_DIRECT: no page cache, and a final fsync).
//! 2. The journal: `--producers` threads append `--record` byte records in durable mode (each
//!    producer appends batches of `--batch` records and waits for each to be on disk, as the
//!    intake server does), `<MiB>` of payload in all, until the last append is acknowledged.
//!
//! ```sh
//! cargo run --release -p clearhouse-bench --bin journal-bandwidth -- --dir /tmp --mib 1024
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use clearhouse_engine::journal::{Journal, JournalOptions, SyncMode};

fn main() {
    let mut dir = std::env::temp_dir();
    let mut mib: u64 = 1024;
    let mut record: usize = 4096;
    let mut batch: usize = 256;
    let mut producers: usize = 2;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => dir = PathBuf::from(value),
            "--mib" => mib = value.parse().expect("--mib N"),
            "--record" => record = value.parse().expect("--record BYTES"),
            "--batch" => batch = value.parse().expect("--batch N"),
            "--producers" => producers = value.parse().expect("--producers N"),
            other => panic!("unknown flag {other}"),
        }
    }
    let work = dir.join(format!("journal-bandwidth-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();

    let dd_file = work.join("dd.bin");
    let started = Instant::now();
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dd_file.display()))
        .args([
            "bs=1M",
            &format!("count={mib}"),
            "oflag=direct",
            "conv=fsync",
        ])
        .output()
        .expect("dd runs");
    let dd_s = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&dd_file);
    let dd_mib_s = mib as f64 / dd_s;
    println!("disk (dd oflag=direct, bs=1M, {mib} MiB): {dd_mib_s:.0} MiB/s");

    let options = JournalOptions {
        sync: SyncMode::Durable,
        segment_size_bytes: 256 << 20,
        buffer_size_bytes: 64 << 20,
        record_size_max_bytes: record.max(64),
    };
    let (journal, _) = Journal::open(work.join("journal"), options).expect("journal opens");
    let records = (mib << 20) / record as u64;
    let per_producer = records / producers as u64;
    let payload = vec![0xA5u8; record];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..producers {
            let appender = journal.appender();
            let payload = &payload;
            scope.spawn(move || {
                let batch_payloads: Vec<&[u8]> = vec![payload.as_slice(); batch];
                let mut left = per_producer;
                while left > 0 {
                    let n = left.min(batch as u64) as usize;
                    appender
                        .append_batch(&batch_payloads[..n])
                        .expect("append")
                        .wait()
                        .expect("durable");
                    left -= n as u64;
                }
            });
        }
    });
    let journal_s = started.elapsed().as_secs_f64();
    let syncs = journal.syncs();
    journal.close().expect("close");
    let written = (per_producer * producers as u64 * (record as u64 + 40)) as f64;
    let journal_mib_s = written / (1 << 20) as f64 / journal_s;
    println!(
        "journal (durable, {producers} producers, {record}-byte records in batches of {batch}): \
         {journal_mib_s:.0} MiB/s written ({:.0} records/s, {syncs} fdatasyncs) = {:.0}% of dd",
        (per_producer * producers as u64) as f64 / journal_s,
        100.0 * journal_mib_s / dd_mib_s
    );
    let _ = std::fs::remove_dir_all(&work);
}
