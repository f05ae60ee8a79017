#![no_main]
//! Any bytes as a `POST /v1/trades` body (JSON array or NDJSON): refused or decoded, never a
//! panic.

#[path = "common.rs"]
mod common;

use clearhouse_formats::trades::read_json_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_json_body(data, std::path::Path::new("body"), 10_000, &mut common::Discard);
});
