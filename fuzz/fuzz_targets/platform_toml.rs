#![no_main]
//! Any bytes as platform.toml: parsed or reported with a place, never a panic.

#[path = "common.rs"]
mod common;

use clearhouse_formats::reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("platform.toml", data);
    let _ = reference::read_platform(&path);
});
