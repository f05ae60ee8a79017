//! Shared helpers of the integration tests: run the real `clearhouse` binary in a fresh
//! temporary directory and compare its outputs with golden files.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

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
    // On PostgreSQL, each data directory's ledger is its own database.
    if let Some(url) = data_dir_arg(args).and_then(|d| ledger_url(Path::new(d))) {
        cmd.arg("--ledger").arg(url);
    }
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
/// what "the ledger did not change" compares. Empty while there is no ledger.
pub fn ledger_rows(data: &Path) -> Vec<String> {
    if !ledger_exists(data) {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for query in [
        "SELECT account || ',' || currency || ',' || balance_minor || ',' || frozen_minor FROM balances ORDER BY 1",
        "SELECT account || ',' || instrument || ',' || quantity FROM positions ORDER BY 1",
        "SELECT bank || ',' || currency || ',' || balance_minor FROM custody ORDER BY 1",
        "SELECT business_date || ',' || input_digest FROM batches ORDER BY 1",
        "SELECT count(*) FROM all_entries",
    ] {
        rows.extend(ledger_query(data, query).into_iter().map(|r| r.join(",")));
    }
    rows
}

/// `--data-dir`'s value in a command line.
fn data_dir_arg<'a>(args: &[&'a str]) -> Option<&'a str> {
    let at = args.iter().position(|a| *a == "--data-dir")?;
    args.get(at + 1).copied()
}

/// The PostgreSQL server of the `_on_postgres` tests: a URL with the right to create
/// databases (`postgres://user@host:port/postgres`).
pub const TEST_POSTGRES: &str = "CLEARHOUSE_TEST_POSTGRES";

/// A test's PostgreSQL databases: one per data directory, made on first use.
struct PgContext {
    server: String,
    test: String,
    databases: BTreeMap<PathBuf, String>,
}

thread_local! {
    static POSTGRES: RefCell<Option<PgContext>> = const { RefCell::new(None) };
}

static DATABASES_MADE: AtomicU32 = AtomicU32::new(0);

/// Whether this test thread runs against PostgreSQL.
pub fn on_postgres_now() -> bool {
    POSTGRES.with(|p| p.borrow().is_some())
}

/// Runs `body` (a whole test) with every ledger in PostgreSQL: each data directory the test
/// uses gets a fresh database, dropped afterwards (kept with `CLEARHOUSE_TEST_KEEP_DB=1`).
/// Without `CLEARHOUSE_TEST_POSTGRES`, says the test is skipped and passes.
pub fn on_postgres(test: &str, body: impl FnOnce()) {
    let Ok(server) = std::env::var(TEST_POSTGRES) else {
        eprintln!("skipped: {TEST_POSTGRES} not set ({test} on PostgreSQL)");
        return;
    };
    POSTGRES.with(|p| {
        *p.borrow_mut() = Some(PgContext {
            server: server.clone(),
            test: test.to_string(),
            databases: BTreeMap::new(),
        })
    });
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let Some(ctx) = POSTGRES.with(|p| p.borrow_mut().take()) else {
                return;
            };
            if std::env::var_os("CLEARHOUSE_TEST_KEEP_DB").is_some() || std::thread::panicking() {
                for (dir, db) in &ctx.databases {
                    eprintln!("{}: kept database {db} of {}", ctx.test, dir.display());
                }
                return;
            }
            if let Ok(mut admin) = postgres::Client::connect(&ctx.server, postgres::NoTls) {
                let unique: std::collections::BTreeSet<&String> = ctx.databases.values().collect();
                for db in unique {
                    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"));
                }
            }
        }
    }
    let _cleanup = Cleanup;
    body();
}

/// `server` with its database replaced by `database`.
fn with_database(server: &str, database: &str) -> String {
    let (scheme, rest) = server.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("{scheme}://{authority}/{database}{query}")
}

/// On PostgreSQL, the ledger URL of a data directory (its database created on first use);
/// `None` on SQLite.
pub fn ledger_url(data: &Path) -> Option<String> {
    POSTGRES.with(|p| {
        let mut p = p.borrow_mut();
        let ctx = p.as_mut()?;
        let key = data.to_path_buf();
        if !ctx.databases.contains_key(&key) {
            let n = DATABASES_MADE.fetch_add(1, Ordering::Relaxed);
            let db = format!("clearhouse_test_{}_{n}", std::process::id());
            let mut admin = postgres::Client::connect(&ctx.server, postgres::NoTls)
                .unwrap_or_else(|e| panic!("{TEST_POSTGRES}={}: {e}", ctx.server));
            // Two calls: several statements in one would be one transaction, which
            // DROP/CREATE DATABASE refuse.
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .unwrap();
            ctx.databases.insert(key.clone(), db);
        }
        Some(with_database(&ctx.server, &ctx.databases[&key]))
    })
}

/// On PostgreSQL, makes `to` use the same ledger database as `from`: two data directories
/// (two hosts, say) posting to one ledger.
pub fn share_ledger(from: &Path, to: &Path) {
    ledger_url(from).expect("share_ledger runs on PostgreSQL");
    POSTGRES.with(|p| {
        let mut p = p.borrow_mut();
        let ctx = p.as_mut().expect("on PostgreSQL");
        let db = ctx.databases[from].clone();
        ctx.databases.insert(to.to_path_buf(), db);
    });
}

/// On PostgreSQL, the database of a data directory's ledger.
pub fn ledger_database(data: &Path) -> Option<String> {
    ledger_url(data)?;
    POSTGRES.with(|p| p.borrow().as_ref().map(|ctx| ctx.databases[data].clone()))
}

/// Whether the data directory's ledger holds anything (SQLite: the file exists).
pub fn ledger_exists(data: &Path) -> bool {
    match ledger_url(data) {
        None => data.join("ledger.sqlite").exists(),
        Some(url) => {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let row = db
                .query_one(
                    "SELECT count(*) FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_name = 'meta'",
                    &[],
                )
                .unwrap();
            row.get::<_, i64>(0) > 0
        }
    }
}

/// Every row of a query on the data directory's ledger, each column as text (`NULL` for
/// null), whichever backend the test runs on.
pub fn ledger_query(data: &Path, query: &str) -> Vec<Vec<String>> {
    match ledger_url(data) {
        None => {
            let db = rusqlite::Connection::open(data.join("ledger.sqlite")).unwrap();
            let mut stmt = db.prepare(query).unwrap();
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            let mut out = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                out.push(
                    (0..columns)
                        .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                            rusqlite::types::Value::Text(t) => t,
                            rusqlite::types::Value::Integer(i) => i.to_string(),
                            rusqlite::types::Value::Null => "NULL".to_string(),
                            other => format!("{other:?}"),
                        })
                        .collect(),
                );
            }
            out
        }
        Some(url) => {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            db.simple_query(query)
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_string())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        }
    }
}

/// One value of a query on the ledger, as an integer.
pub fn ledger_count(data: &Path, query: &str) -> i64 {
    let rows = ledger_query(data, query);
    rows[0][0].parse().unwrap()
}

/// Runs statements on the data directory's ledger (tampering, for the tests that must see it
/// found); returns the rows changed.
pub fn ledger_execute(data: &Path, statements: &str) -> u64 {
    match ledger_url(data) {
        None => {
            let db = rusqlite::Connection::open(data.join("ledger.sqlite")).unwrap();
            db.execute(statements, []).unwrap() as u64
        }
        Some(url) => {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            db.execute(statements, &[]).unwrap()
        }
    }
}

/// `on_postgres` variants of tests: `postgres_variants!(a, b)` adds `on_postgres::a` and
/// `on_postgres::b`, each running the test of that name against PostgreSQL.
#[macro_export]
macro_rules! postgres_variants {
    ($($name:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    $crate::common::on_postgres(stringify!($name), super::$name);
                }
            )*
        }
    };
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
