//! Where intake time goes on one day directory, single thread: decoding only, then with the
//! reference checks, the id record and netting added; then the real parallel intake.
//!
//! `cargo run --release -p clearhouse-bench --example intake_split -- DAY_DIR` (`ONLY=decode`
//! and so on: one figure alone; `ONLY=intake THREADS=2`: the parallel intake on two threads
//! alone, for `/usr/bin/time` or a profiler; `EACH=1`: every run's time, not only the best)

use std::path::PathBuf;
use std::time::Instant;

use clearhouse_engine::dedup::record::IdRecord;
use clearhouse_engine::netting::{NettingAccumulator, ValidTrade};
use clearhouse_engine::reference::{load_dir, RefData};
use clearhouse_engine::validate::{check_day, check_with_keys, key_of, DayDate};
use clearhouse_formats::model::{RowError, TradeFields};
use clearhouse_formats::trades::{read_trades, KeyColumn, TradeFormat, TradeKeys, TradeSink};

struct Sink<'r> {
    refs: &'r RefData,
    level: u8,
    day: Option<DayDate>,
    ids: IdRecord,
    net: NettingAccumulator,
    batch: Vec<ValidTrade>,
    rows: u64,
}

impl TradeSink for Sink<'_> {
    fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
        self.trade_keyed(line, t, TradeKeys::default());
    }

    fn key_of(&mut self, column: KeyColumn, id: &str) -> Option<u32> {
        key_of(self.refs, column, id)
    }

    fn trade_keyed(&mut self, line: u64, t: &TradeFields<'_>, keys: TradeKeys) {
        self.rows += 1;
        if self.level == 0 {
            return;
        }
        let checked = check_day(&mut self.day, std::path::Path::new("x"), line, t)
            .and_then(|()| check_with_keys(self.refs, t, keys));
        let Ok(valid) = checked else { return };
        if self.level >= 2 {
            self.ids.record(t.trade_id);
        }
        if self.level >= 3 {
            self.batch.push(valid);
            if self.batch.len() == 512 {
                self.net.push_all(&self.batch);
                self.batch.clear();
            }
        }
    }

    fn bad_row(&mut self, _error: RowError) {}
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: intake_split DAY_DIR"),
    );
    let refs = load_dir(&dir)
        .expect("readable")
        .expect("valid reference data");
    let mut files: Vec<(PathBuf, TradeFormat)> = std::fs::read_dir(&dir)
        .expect("a directory")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let format = TradeFormat::of_path(&path)?;
            name.starts_with("trades").then_some((path, format))
        })
        .collect();
    files.sort();
    // The machine is shared: each figure is the best of five runs, in wall time and in the
    // process's CPU time (which other processes disturb much less).
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                let cpu = process_cpu_seconds();
                let faults = minor_faults();
                f();
                let run = (start.elapsed().as_secs_f64(), process_cpu_seconds() - cpu);
                if std::env::var_os("EACH").is_some() {
                    let faults = minor_faults() - faults;
                    eprintln!(
                        "  one run: {:.3} s, cpu {:.3} s, {faults} page faults",
                        run.0, run.1
                    );
                }
                run
            })
            .fold((f64::INFINITY, f64::INFINITY), |(w, c), (w2, c2)| {
                (w.min(w2), c.min(c2))
            })
    };
    // `ONLY=decode` (or `+check`, `+ids`, `+net`, `intake`) runs one figure alone, to profile it.
    let only = std::env::var("ONLY").ok();
    let wanted = |what: &str| only.as_deref().is_none_or(|o| o == what);
    for (level, what) in ["decode", "+check", "+ids", "+net"].iter().enumerate() {
        if !wanted(what) {
            continue;
        }
        let mut rows = 0;
        let seconds = best(&mut || {
            let mut sink = Sink {
                refs: &refs,
                level: level as u8,
                day: None,
                ids: IdRecord::default(),
                net: NettingAccumulator::new(&refs),
                batch: Vec::new(),
                rows: 0,
            };
            for (path, format) in &files {
                read_trades(path, *format, &mut sink).expect("readable");
            }
            sink.net.push_all(&sink.batch);
            rows = sink.rows;
        });
        let (wall, cpu) = seconds;
        println!("{what:8} {wall:>8.3} s  cpu {cpu:.3} s  {rows} rows");
    }
    let thread_counts: Vec<usize> = match std::env::var("THREADS") {
        Ok(n) => vec![n.parse().expect("THREADS is a number")],
        Err(_) => vec![1, 2],
    };
    for threads in thread_counts {
        if !wanted("intake") {
            continue;
        }
        let mut netted = 0;
        let seconds = best(&mut || {
            let v = clearhouse_engine::intake::validate_files(&refs, &files, threads, None)
                .expect("readable");
            netted = v.counts.netted;
        });
        let (wall, cpu) = seconds;
        println!("intake, {threads} thread(s): {wall:.3} s, cpu {cpu:.3} s, {netted} netted");
    }
}

fn process_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write into.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt
}
