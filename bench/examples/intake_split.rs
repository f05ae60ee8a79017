//! Where intake time goes on one day directory: decode only, + reference checks, + de-dup,
//! + netting. `cargo run --release -p clearhouse-bench --example intake_split -- DAY_DIR`
use std::path::PathBuf;
use std::time::Instant;

use clearhouse_engine::dedup::{content_hash, TradeIdSet};
use clearhouse_engine::netting::NettingAccumulator;
use clearhouse_engine::reference::{load_dir, RefData};
use clearhouse_engine::validate::check_against_reference;
use clearhouse_formats::model::{RowError, TradeFields};
use clearhouse_formats::trades::{read_trades, TradeFormat, TradeSink};

struct Sink<'r> {
    refs: &'r RefData,
    level: u8,
    ids: TradeIdSet,
    net: NettingAccumulator,
    n: u64,
}

impl TradeSink for Sink<'_> {
    fn trade(&mut self, _line: u64, t: &TradeFields<'_>) {
        self.n += 1;
        if self.level == 0 {
            return;
        }
        let Ok(v) = check_against_reference(self.refs, t) else {
            return;
        };
        if self.level >= 2 {
            self.ids.check_and_insert(t.trade_id, content_hash(t));
        }
        if self.level >= 3 {
            self.net.push(self.refs, &v);
        }
    }
    fn bad_row(&mut self, _e: RowError) {}
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("DAY_DIR"));
    let refs = load_dir(&dir).unwrap().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_string();
            (name.starts_with("trades")).then_some(p)
        })
        .collect();
    files.sort();
    for level in 0..4u8 {
        let start = Instant::now();
        let mut sink = Sink {
            refs: &refs,
            level,
            ids: TradeIdSet::default(),
            net: NettingAccumulator::new(&refs),
            n: 0,
        };
        for f in &files {
            read_trades(f, TradeFormat::of_path(f).unwrap(), &mut sink).unwrap();
        }
        let what = ["decode", "+check", "+dedup", "+net"][level as usize];
        println!(
            "{what:8} {:>8.3} s  {} rows",
            start.elapsed().as_secs_f64(),
            sink.n
        );
    }
}
