//! One criterion benchmark per end-of-day stage, on a generated day of 200,000 trades over
//! the benchmark market (1,000 members, 2,000 instruments, 5 banks, CNY and USD):
//! - `parse`: decoding the trade file (Parquet and CSV) into rows, nothing else;
//! - `validate`: decoding plus the checks of every row against the reference data;
//! - `net`: the netting accumulator over the valid trades (already decoded);
//! - `intake`: the whole parallel intake (decode, check, de-duplicate, net) on 1 and 2 threads;
//! - `post`: the nets posted to a book (one entry per currency and kind, one per instrument);
//! - `instruct`: the bank nets of the posted book, what the instructions are built from.
//!
//! Run: `cargo bench -p clearhouse-bench --bench stages`. The end-to-end comparison with DuckDB
//! and Polars is `bench/run.sh`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use clearhouse_engine::banks::aggregate;
use clearhouse_engine::book::Book;
use clearhouse_engine::gen::{generate, GenOptions};
use clearhouse_engine::intake::validate_files;
use clearhouse_engine::ledger::{Balance, Snapshot};
use clearhouse_engine::netting::{Nets, NettingAccumulator, ValidTrade};
use clearhouse_engine::posting::post_nets;
use clearhouse_engine::reference::{load_dir, RefData};
use clearhouse_engine::validate::check_against_reference;
use clearhouse_formats::model::{BusinessDate, RowError, TradeFields};
use clearhouse_formats::money::Currency;
use clearhouse_formats::trades::{read_trades, TradeFormat, TradeSink};

const TRADES: u64 = 200_000;

fn day(dir: &Path, format: TradeFormat, files: u32) -> (RefData, Vec<(PathBuf, TradeFormat)>) {
    generate(
        &GenOptions {
            out_dir: dir.to_path_buf(),
            trades: TRADES,
            members: 1_000,
            instruments: 2_000,
            banks: 5,
            currencies: vec![
                Currency::from_code("CNY").unwrap(),
                Currency::from_code("USD").unwrap(),
            ],
            seed: 1,
            format,
            business_date: BusinessDate::parse("2026-11-25").unwrap(),
            files,
        },
        |_| {},
    )
    .unwrap();
    let refs = load_dir(dir).unwrap().unwrap();
    let mut trades: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_string();
            (name.starts_with("trades")).then_some((path, format))
        })
        .collect();
    trades.sort();
    (refs, trades)
}

/// Counts rows; with `refs`, checks each and keeps the valid ones.
struct Sink<'r> {
    refs: Option<&'r RefData>,
    rows: u64,
    valid: Vec<ValidTrade>,
}

impl TradeSink for Sink<'_> {
    fn trade(&mut self, _line: u64, t: &TradeFields<'_>) {
        self.rows += 1;
        if let Some(refs) = self.refs {
            if let Ok(v) = check_against_reference(refs, t) {
                self.valid.push(v);
            }
        }
    }
    fn bad_row(&mut self, _error: RowError) {}
}

fn read<'r>(files: &[(PathBuf, TradeFormat)], refs: Option<&'r RefData>) -> Sink<'r> {
    let mut sink = Sink {
        refs,
        rows: 0,
        valid: Vec::new(),
    };
    for (path, format) in files {
        read_trades(path, *format, &mut sink).unwrap();
    }
    sink
}

fn nets_of(refs: &RefData, valid: &[ValidTrade]) -> Nets {
    let mut acc = NettingAccumulator::new(refs);
    acc.push_all(valid);
    acc.finish(refs).unwrap()
}

fn rich_book(refs: &RefData) -> Book {
    let mut snapshot = Snapshot {
        version: 1,
        ..Snapshot::default()
    };
    for m in &refs.members {
        for c in &refs.currencies {
            let b = Balance {
                balance_minor: 1 << 50,
                frozen_minor: 0,
            };
            snapshot
                .balances
                .insert((m.member_id.clone(), c.code().to_string()), b);
            *snapshot
                .custody
                .entry((m.settlement_bank.clone(), c.code().to_string()))
                .or_default() += 1 << 50;
        }
    }
    let external: BTreeSet<String> = refs
        .platform
        .banks
        .values()
        .map(|b| b.custody_account.clone())
        .collect();
    Book::from_snapshot(&snapshot, external)
}

fn stages(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("stages");
    group.sample_size(10);
    group.throughput(Throughput::Elements(TRADES));
    for (format, name) in [(TradeFormat::Parquet, "parquet"), (TradeFormat::Csv, "csv")] {
        let (refs, files) = day(&tmp.path().join(name), format, 1);
        group.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| read(&files, None).rows)
        });
        group.bench_function(BenchmarkId::new("validate", name), |b| {
            b.iter(|| read(&files, Some(&refs)).valid.len())
        });
    }
    let (refs, files) = day(&tmp.path().join("parquet-2"), TradeFormat::Parquet, 2);
    for threads in [1, 2] {
        group.bench_function(BenchmarkId::new("intake/parquet-2-files", threads), |b| {
            b.iter(|| {
                validate_files(&refs, &files, threads, None)
                    .unwrap()
                    .counts
                    .netted
            })
        });
    }
    let valid = read(&files, Some(&refs)).valid;
    group.bench_function("net", |b| b.iter(|| nets_of(&refs, &valid).qty.len()));
    let nets = nets_of(&refs, &valid);
    group.throughput(Throughput::Elements(nets.qty.len() as u64));
    group.bench_function("post", |b| {
        b.iter_batched(
            || rich_book(&refs),
            |mut book| post_nets(&refs, &nets, &[], &mut book).unwrap().unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    let mut book = rich_book(&refs);
    post_nets(&refs, &nets, &[], &mut book).unwrap().unwrap();
    let custody = rich_book(&refs);
    let before: std::collections::BTreeMap<(String, String), i64> = custody
        .balances()
        .into_iter()
        .filter_map(|((account, currency), b)| {
            let bank = refs.bank_of(&account)?.to_string();
            Some(((bank, currency), b.balance_minor))
        })
        .fold(Default::default(), |mut m, (k, v)| {
            *m.entry(k).or_default() += v;
            m
        });
    group.bench_function("instruct", |b| {
        b.iter(|| {
            let bank_of = |a: &str| refs.bank_of(a).map(str::to_string);
            aggregate(&book, bank_of, &before, &Default::default())
                .unwrap()
                .nets
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
