#![no_main]
//! Any bytes as deposits.csv, withdrawals.csv and freezes.csv: never a panic.

#[path = "common.rs"]
mod common;

use clearhouse_formats::funds;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("funds.csv", data);
    let _ = funds::read_deposits(&path);
    let _ = funds::read_withdrawals(&path);
    let _ = funds::read_freezes(&path);
});
