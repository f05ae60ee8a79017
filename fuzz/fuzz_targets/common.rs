//! Readers take paths: each input is written to one file per process, rewritten per run.

use std::path::PathBuf;

pub fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clearhouse-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// A sink that keeps nothing: the property is only "no panic, no hang".
pub struct Discard;

impl clearhouse_formats::trades::TradeSink for Discard {
    fn trade(&mut self, _line: u64, fields: &clearhouse_formats::model::TradeFields<'_>) {
        std::hint::black_box(fields);
    }
    fn bad_row(&mut self, error: clearhouse_formats::model::RowError) {
        std::hint::black_box(error.to_string());
    }
}
