#![no_main]
//! Any bytes as a camt.052/053/054 file and as the confirmation CSV: never a panic.

#[path = "common.rs"]
mod common;

use clearhouse_formats::{camt, recon_csv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = camt::parse_camt(std::path::Path::new("camt.xml"), data);
    let path = common::scratch("recon.csv", data);
    let _ = recon_csv::read_recon_csv(&path);
});
