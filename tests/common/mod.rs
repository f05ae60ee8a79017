//! Shared helpers of the integration tests: run the real `clearhouse` binary in a fresh
//! temporary directory and compare its outputs with golden files.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample(name: &str) -> PathBuf {
    repo().join("samples").join(name)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn clearhouse(args: &[&str]) -> Run {
    clearhouse_env(args, &[])
}

pub fn clearhouse_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clearhouse"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the clearhouse binary runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `clearhouse run DAY --data-dir DATA [extra...]`.
pub fn run_day(day: &Path, data: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "run",
        day.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    clearhouse(&args)
}

/// Every file of a directory (not recursive), by name.
pub fn read_dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            files.insert(
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            );
        }
    }
    files
}

/// summary.json without the fields that legitimately differ between runs of the same trades
/// (`timings_ms`) or between encodings of them (`input_digest`).
pub fn stable_summary(bytes: &[u8]) -> String {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).expect("summary.json is JSON");
    let obj = value.as_object_mut().expect("summary.json is an object");
    obj.remove("timings_ms");
    obj.remove("input_digest");
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

/// The CSV outputs, the bank files (XML) and the stable summary of an output directory.
pub fn comparable_outputs(dir: &Path) -> BTreeMap<String, String> {
    read_dir_files(dir)
        .into_iter()
        .filter_map(|(name, bytes)| {
            if name == "summary.json" {
                Some((name, stable_summary(&bytes)))
            } else if name.ends_with(".csv") || name.ends_with(".xml") {
                Some((
                    name,
                    String::from_utf8(bytes).expect("CSV and XML outputs are UTF-8"),
                ))
            } else {
                None
            }
        })
        .collect()
}

/// Compares an output directory with `golden` (a directory of expected files). With
/// `UPDATE_GOLDEN=1` the golden directory is rewritten instead.
pub fn assert_golden(out: &Path, golden: &Path) {
    let actual = comparable_outputs(out);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(golden);
        std::fs::create_dir_all(golden).unwrap();
        for (name, text) in &actual {
            std::fs::write(golden.join(name), text).unwrap();
        }
        return;
    }
    let expected: BTreeMap<String, String> = read_dir_files(golden)
        .into_iter()
        .map(|(n, b)| (n, String::from_utf8(b).unwrap()))
        .collect();
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&actual),
        names(&expected),
        "output files differ from {}",
        golden.display()
    );
    for (name, text) in &expected {
        if &actual[name] != text {
            panic!(
                "{name} differs from golden {}\n--- expected\n{text}\n--- actual\n{}\n(UPDATE_GOLDEN=1 rewrites goldens)",
                golden.join(name).display(),
                actual[name]
            );
        }
    }
}

/// Everything in a data directory, recursively, for "nothing changed" checks.
pub fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

/// Reads a CSV output into rows of strings (header excluded).
pub fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// Balances, positions, custody, batches and the entry count of a ledger, as sorted text rows:
/// what "the ledger did not change" compares.
pub fn ledger_rows(data: &Path) -> Vec<String> {
    let path = data.join("ledger.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let db = rusqlite::Connection::open(path).unwrap();
    let mut rows = Vec::new();
    for query in [
        "SELECT account || ',' || currency || ',' || balance_minor || ',' || frozen_minor FROM balances ORDER BY 1",
        "SELECT account || ',' || instrument || ',' || quantity FROM positions ORDER BY 1",
        "SELECT bank || ',' || currency || ',' || balance_minor FROM custody ORDER BY 1",
        "SELECT business_date || ',' || input_digest FROM batches ORDER BY 1",
        "SELECT count(*) FROM all_entries",
    ] {
        let mut stmt = db.prepare(query).unwrap();
        let mut q = stmt.query([]).unwrap();
        while let Some(r) = q.next().unwrap() {
            let v: rusqlite::types::Value = r.get(0).unwrap();
            rows.push(format!("{v:?}"));
        }
    }
    rows
}

/// Copies the files (not sub-directories) of a day directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
