//! In-process journal throughput: appends/s with 1 and 2 producer threads, buffered
//! (acknowledged once written to the OS) and durable (acknowledged after fdatasync, group
//! commit). Each measured iteration appends `iters` records split over the producers and ends
//! when the last one is acknowledged, so the figure is sustained end-to-end throughput, not
//! just the time to enqueue.
//!
//! Run: `cargo bench -p clearhouse-bench --bench journal`

use clearhouse_engine::journal::{Journal, JournalOptions, SyncMode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

/// Stand-in for an encoded trade.
const PAYLOAD_BYTES: usize = 64;

/// How producers wait for acknowledgements.
#[derive(Clone, Copy)]
enum Pattern {
    /// Append continuously, wait only for the last ticket (a stream of single appends).
    Stream,
    /// Append batches of this many records and wait for each (as the intake server does).
    Batch(usize),
}

fn run(journal: &Journal, producers: usize, records: u64, pattern: Pattern) -> Duration {
    let per_producer = records.div_ceil(producers as u64);
    let payload = [0x5Au8; PAYLOAD_BYTES];
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..producers {
            let appender = journal.appender();
            scope.spawn(move || match pattern {
                Pattern::Stream => {
                    let mut last = None;
                    for _ in 0..per_producer {
                        last = Some(appender.append(&payload).expect("append"));
                    }
                    if let Some(ticket) = last {
                        ticket.wait().expect("ack");
                    }
                }
                Pattern::Batch(size) => {
                    let batch = vec![&payload[..]; size];
                    let mut left = per_producer as usize;
                    while left > 0 {
                        let n = left.min(size);
                        appender
                            .append_batch(&batch[..n])
                            .expect("append")
                            .wait()
                            .expect("ack");
                        left -= n;
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn bench_journal(c: &mut Criterion) {
    let cases = [
        ("buffered", SyncMode::Buffered, Pattern::Stream),
        ("durable", SyncMode::Durable, Pattern::Stream),
        ("durable_batch1k", SyncMode::Durable, Pattern::Batch(1000)),
    ];
    let mut group = c.benchmark_group("journal_append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, sync, pattern) in cases {
        for producers in [1usize, 2] {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = JournalOptions {
                sync,
                ..JournalOptions::default()
            };
            let (journal, _) = Journal::open(dir.path(), options).expect("open");
            group.throughput(Throughput::Elements(1));
            group.bench_function(BenchmarkId::new(name, format!("{producers}p")), |b| {
                b.iter_custom(|iters| run(&journal, producers, iters, pattern));
            });
            journal.close().expect("close");
        }
    }
    group.finish();
}

criterion_group!(benches, bench_journal);
criterion_main!(benches);
