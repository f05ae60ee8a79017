//! The intake path never reaches the batch (ARCHITECTURE.md, "The intake path never reaches
//! the instruction builder"). The instruction builder itself is private to `day` (the
//! compiler enforces that); this test keeps the intake-path modules from depending on any
//! module of the batch, so that no route from a request to an instruction can appear except
//! the operator's close.

use std::path::{Path, PathBuf};

/// Source files of the market-hours intake path, relative to the engine crate.
const INTAKE_PATH: &[&str] = &[
    "src/server/trades.rs",
    "src/server/auth.rs",
    "src/server/listener.rs",
    "src/server/metrics.rs",
    "src/session",
    "src/journal",
    "src/validate.rs",
    "src/dedup.rs",
    "src/dedup",
    "src/reference.rs",
    "src/datadir.rs",
];

/// Modules of the end-of-day batch (and its operator entry points).
const BATCH: &[&str] = &[
    "day::",
    "close::",
    "banks::",
    "channels::",
    "posting::",
    "instructions::",
    "payment_files::",
    "recon::",
    "funding::",
    "sessions::",
    "build_instructions",
    "withdrawal_instruction",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn intake_path_does_not_depend_on_the_batch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in INTAKE_PATH {
        let path = root.join(p);
        if path.exists() {
            rust_files(&path, &mut files);
        }
    }
    assert!(files.len() >= 10, "the intake path files moved: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for module in BATCH {
                if code.contains(module) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the intake path names the batch:\n{}",
        found.join("\n")
    );
}
