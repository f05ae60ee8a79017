//! The intake path in process, without HTTP: a JSON array body decoded and checked into a
//! session batch, then committed (buffered journal), in batches of 10,000; prints the cost per
//! trade of each part. DAY_DIR is a `clearhouse gen --format jsonl --date 2026-11-25` output.
//!
//! `cargo run --release -p clearhouse-bench --example session_inprocess -- DAY_DIR`
use clearhouse_engine::datadir::{write_atomic, DataDir};
use clearhouse_engine::journal::SyncMode;
use clearhouse_engine::session::{Session, SessionOptions};
use clearhouse_formats::trades::read_json_body;
use std::path::Path;
use std::time::Instant;

fn main() {
    let day = Path::new(&std::env::args().nth(1).expect("gen dir")).to_path_buf();
    let work = std::env::temp_dir().join(format!("inproc-{}", std::process::id()));
    let data = DataDir::new(&work);
    for n in ["platform.toml", "members.csv", "instruments.csv"] {
        write_atomic(
            &data.reference_file(n),
            &std::fs::read(day.join(n)).unwrap(),
        )
        .unwrap();
    }
    let trades = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(trades).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let bodies: Vec<String> = lines
        .chunks(10_000)
        .map(|c| format!("[{}]", c.join(",")))
        .collect();
    let mut opts = SessionOptions::default();
    opts.journal.sync = SyncMode::Buffered;
    let date = clearhouse_formats::model::BusinessDate::parse("2026-11-25").unwrap();
    let (session, _) = Session::open(&data, date, opts).unwrap();
    let (mut t_decode, mut t_commit) = (0f64, 0f64);
    for body in &bodies {
        let t = Instant::now();
        let mut batch = session.start_batch(Path::new("req"));
        read_json_body(body.as_bytes(), Path::new("req"), 50_000, &mut batch).unwrap();
        t_decode += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let o = session.commit(batch).unwrap();
        assert!(o.accepted);
        t_commit += t.elapsed().as_secs_f64();
    }
    let n = lines.len() as f64;
    println!(
        "decode+check {:.0} ns/trade, commit {:.0} ns/trade, total {:.0} trades/s",
        t_decode / n * 1e9,
        t_commit / n * 1e9,
        n / (t_decode + t_commit)
    );
    let _ = std::fs::remove_dir_all(&work);
}
