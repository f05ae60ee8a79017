#![no_main]
//! Any bytes as each reference CSV file: parsed or reported, never a panic.

#[path = "common.rs"]
mod common;

use clearhouse_formats::reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("reference.csv", data);
    let _ = reference::read_members(&path);
    let _ = reference::read_instruments(&path);
    let _ = reference::read_opening_balances(&path);
    let _ = reference::read_opening_positions(&path);
});
