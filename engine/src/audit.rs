//! `clearhouse audit`: the ledger proven against its own history.
//!
//! Recomputes every balance and position from the posted entries (opening balances included:
//! they are entries too), every frozen amount from the active freezes, checks that each entry
//! balances per asset, that the custody invariant holds per bank and currency, and verifies the
//! CRCs and hash chain of every journal in the data directory. Each difference is named; none
//! is repaired.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::book::kind;
use crate::journal;
use crate::ledger::{Db, DbError, Ledger, Location};
use crate::EngineError;

/// What an audit found: one line per difference, and what it checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub batches: u64,
    pub entries: u64,
    pub balances_checked: u64,
    pub positions_checked: u64,
    pub banks_checked: u64,
    pub journals_verified: u64,
    pub journal_records: u64,
    pub differences: Vec<String>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

fn sql(path: &Path, e: impl Into<DbError>) -> EngineError {
    EngineError::Ledger(crate::ledger::LedgerError::Sql {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Rows of a two-key, one-value query.
fn keyed(
    conn: &Db,
    path: &Path,
    query: &str,
) -> Result<BTreeMap<(String, String), i64>, EngineError> {
    let rows = conn.query(query, &[]).map_err(|e| sql(path, e))?;
    rows.iter()
        .map(|r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .collect::<Result<_, DbError>>()
        .map_err(|e| sql(path, e))
}

/// The ledger to audit, opened so that nothing is written: a SQLite file read-only (a
/// schema-1 file is audited as it is, not migrated).
fn open_for_audit(data_dir: &Path) -> Result<(Db, std::path::PathBuf), EngineError> {
    let missing = |path: &Path| {
        EngineError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no ledger in this data directory",
            ),
        )
    };
    match Location::of(data_dir)? {
        Location::Sqlite(path) => {
            if !path.exists() {
                return Err(missing(&path));
            }
            let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| sql(&path, e))?;
            Ok((Db::Sqlite(conn), path))
        }
        location @ Location::Postgres(_) => {
            let mut ledger = Ledger::open_at(location)?;
            let path = ledger.path().to_path_buf();
            match ledger.take_connection() {
                Some(db) => Ok((db, path)),
                None => Err(missing(&path)),
            }
        }
    }
}

/// Compares recomputed values with stored ones; a key missing on one side counts as zero.
fn compare(
    what: &str,
    labels: (&str, &str),
    recomputed: &BTreeMap<(String, String), i64>,
    stored: &BTreeMap<(String, String), i64>,
    differences: &mut Vec<String>,
) -> u64 {
    let mut keys: Vec<&(String, String)> = recomputed.keys().chain(stored.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in &keys {
        let r = recomputed.get(*key).copied().unwrap_or(0);
        let s = stored.get(*key).copied().unwrap_or(0);
        if r != s {
            differences.push(format!(
                "{what} of {} in {}: {} {s}, {} {r}",
                key.0, key.1, labels.0, labels.1
            ));
        }
    }
    keys.len() as u64
}

const ENTRIES: (&str, &str) = ("stored", "entries give");

pub fn audit(data_dir: &Path) -> Result<AuditReport, EngineError> {
    let (conn, path) = open_for_audit(data_dir)?;
    // One read transaction: every table as of one version.
    let tx = conn.read_tx().map_err(|e| sql(&path, e))?;
    let conn = &*tx;
    let mut report = AuditReport::default();
    let count = |q: &str| -> Result<u64, EngineError> {
        conn.query_one(q, &[])
            .and_then(|r| r.get::<i64>(0))
            .map(|n| n as u64)
            .map_err(|e| sql(&path, e))
    };
    report.batches = count("SELECT count(*) FROM batches")?;
    // Every leg: rows of `entries` and the packed legs of `entry_sets` (schema 2; a schema-1
    // ledger not yet opened by a run has only `entries`, and `positions` as a table).
    let schema = count("SELECT value FROM meta WHERE key = 'schema'")?;
    let legs = if schema >= 2 {
        "all_entries"
    } else {
        "entries"
    };
    report.entries = count(&format!("SELECT count(*) FROM {legs}"))?;

    // Entries on virtual accounts (those in `accounts`); legs on custody accounts and the
    // depository are the outside world's side and hold no virtual balance.
    let rows = conn
        .query(
            &format!(
                "SELECT e.business_date, e.entry_id, e.kind, e.account, e.asset, e.amount,
                        CASE WHEN e.account IN (SELECT account FROM accounts) THEN 1 ELSE 0 END
                 FROM {legs} e"
            ),
            &[],
        )
        .map_err(|e| sql(&path, e))?;
    let mut cash: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut quantity: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut per_entry: BTreeMap<(String, String, String), i128> = BTreeMap::new();
    for r in &rows {
        let get = |i| r.get::<String>(i).map_err(|e| sql(&path, e));
        let (date, entry, entry_kind, account, asset) =
            (get(0)?, get(1)?, get(2)?, get(3)?, get(4)?);
        let amount: i64 = r.get(5).map_err(|e| sql(&path, e))?;
        let is_virtual: bool = r.get(6).map_err(|e| sql(&path, e))?;
        *per_entry.entry((date, entry, asset.clone())).or_default() += i128::from(amount);
        if is_virtual {
            let target = if kind::is_quantity(&entry_kind) {
                &mut quantity
            } else {
                &mut cash
            };
            let slot = target.entry((account.clone(), asset.clone())).or_default();
            *slot = slot
                .checked_add(amount)
                .ok_or_else(|| EngineError::Overflow {
                    what: format!("recomputed balance of {account} in {asset}"),
                })?;
        }
    }
    for ((date, entry, asset), sum) in &per_entry {
        if *sum != 0 {
            report.differences.push(format!(
                "entry {entry} of {date} does not balance in {asset}: {sum}"
            ));
        }
    }
    let stored = keyed(
        conn,
        &path,
        "SELECT account, currency, balance_minor FROM balances",
    )?;
    report.balances_checked = compare("balance", ENTRIES, &cash, &stored, &mut report.differences);
    let stored = keyed(
        conn,
        &path,
        "SELECT account, instrument, quantity FROM positions",
    )?;
    report.positions_checked = compare(
        "position",
        ENTRIES,
        &quantity,
        &stored,
        &mut report.differences,
    );
    let frozen = keyed(
        conn,
        &path,
        "SELECT member_id, currency, CAST(sum(amount_minor) AS BIGINT) FROM freezes
         WHERE released_on IS NULL GROUP BY member_id, currency",
    )?;
    let stored = keyed(
        conn,
        &path,
        "SELECT account, currency, frozen_minor FROM balances WHERE frozen_minor != 0",
    )?;
    compare(
        "frozen amount",
        ("stored", "active freezes give"),
        &frozen,
        &stored,
        &mut report.differences,
    );

    // The custody invariant: per bank and currency, Σ virtual balances = custody balance.
    let virtual_sum = keyed(
        conn,
        &path,
        "SELECT a.bank, b.currency, CAST(sum(b.balance_minor) AS BIGINT) FROM balances b
         JOIN accounts a ON a.account = b.account GROUP BY a.bank, b.currency",
    )?;
    let custody = keyed(
        conn,
        &path,
        "SELECT bank, currency, balance_minor FROM custody",
    )?;
    let before = report.differences.len();
    report.banks_checked = compare(
        "custody account",
        ("real balance", "Σ virtual balances"),
        &virtual_sum,
        &custody,
        &mut report.differences,
    );
    for d in &mut report.differences[before..] {
        d.push_str(": the custody invariant is broken");
    }
    let orphans =
        count("SELECT count(*) FROM balances WHERE account NOT IN (SELECT account FROM accounts)")?;
    if orphans > 0 {
        report.differences.push(format!(
            "{orphans} balance(s) belong to accounts held at no known bank"
        ));
    }
    verify_journals(data_dir, &mut report)?;
    Ok(report)
}

/// Verifies every `journal-*` directory of the data directory.
fn verify_journals(data_dir: &Path, report: &mut AuditReport) -> Result<(), EngineError> {
    let mut dirs: Vec<_> = std::fs::read_dir(data_dir)
        .map_err(|e| EngineError::io(data_dir, e))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal") && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        match journal::verify(&dir) {
            Ok(v) => {
                report.journals_verified += 1;
                report.journal_records += v.records;
            }
            Err(e) => report
                .differences
                .push(format!("journal {}: {e}", dir.display())),
        }
    }
    Ok(())
}
