#![no_main]
//! Any bytes as a trades.parquet file: read or refused with a reason, never a panic.

#[path = "common.rs"]
mod common;

use clearhouse_formats::trades::{read_trades, TradeFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("trades.parquet", data);
    let _ = read_trades(&path, TradeFormat::Parquet, &mut common::Discard);
});
