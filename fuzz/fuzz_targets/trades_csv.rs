#![no_main]
//! Any bytes as a trades.csv file: rows are decoded or reported, never a panic.

#[path = "common.rs"]
mod common;

use clearhouse_formats::trades::{read_trades, TradeFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("trades.csv", data);
    let _ = read_trades(&path, TradeFormat::Csv, &mut common::Discard);
});
