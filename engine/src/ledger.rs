//! The virtual-account ledger, persisted in SQLite (WAL) in the data directory.
//!
//! Invariants:
//! - a business date is posted at most once: `batches.business_date` is the primary key and a
//!   batch is written in one transaction together with every balance, position and entry;
//! - a batch commits only on the ledger version it was computed from (`meta.version`), so two
//!   runs racing on one data directory cannot both post from the same snapshot;
//! - the rendered outputs of a batch are stored in the same transaction, so a run that died
//!   after posting can restore them byte for byte.
//!
//! A ledger file is created only by the first successful posting: a rejected first day leaves
//! the data directory as it was.
//!
//! Positions, quantity legs and outputs are stored packed ([`packed`]): one JSON object per
//! account or entry, outputs zstd-compressed. The views `positions` and `all_entries` show
//! them as rows.

mod packed;

pub use packed::PositionSet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use clearhouse_formats::model::BusinessDate;

use crate::book::{LegRef, Postings};
use crate::funds::{BookedDeposit, FreezeRecord, FundHistory};

/// The file name of the ledger inside the data directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// 2: position sets, entry sets, compressed outputs (a version-1 ledger is migrated on open).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE accounts (account TEXT PRIMARY KEY, bank TEXT NOT NULL);
CREATE TABLE balances (
    account TEXT NOT NULL, currency TEXT NOT NULL,
    balance_minor INTEGER NOT NULL, frozen_minor INTEGER NOT NULL,
    PRIMARY KEY (account, currency)) WITHOUT ROWID;
CREATE TABLE position_sets (account TEXT PRIMARY KEY, quantities TEXT NOT NULL);
CREATE VIEW positions AS
    SELECT s.account AS account, j.key AS instrument, j.value AS quantity
    FROM position_sets s, json_each(s.quantities) j;
CREATE TABLE custody (
    bank TEXT NOT NULL, currency TEXT NOT NULL, balance_minor INTEGER NOT NULL,
    PRIMARY KEY (bank, currency));
CREATE TABLE batches (
    business_date TEXT PRIMARY KEY, input_digest TEXT NOT NULL, summary TEXT NOT NULL);
CREATE INDEX batches_by_digest ON batches (input_digest);
CREATE TABLE entries (
    business_date TEXT NOT NULL, entry_id TEXT NOT NULL, kind TEXT NOT NULL,
    account TEXT NOT NULL, asset TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (business_date, entry_id, account, asset)) WITHOUT ROWID;
CREATE TABLE entry_sets (
    business_date TEXT NOT NULL, entry_id TEXT NOT NULL, kind TEXT NOT NULL,
    asset TEXT NOT NULL, amounts TEXT NOT NULL,
    PRIMARY KEY (business_date, entry_id, asset));
CREATE VIEW all_entries AS
    SELECT business_date, entry_id, kind, account, asset, amount FROM entries
    UNION ALL
    SELECT s.business_date, s.entry_id, s.kind, j.key, s.asset, j.value
    FROM entry_sets s, json_each(s.amounts) j;
CREATE TABLE deposits (
    bank_ref TEXT PRIMARY KEY, business_date TEXT NOT NULL, fingerprint TEXT NOT NULL,
    bank TEXT NOT NULL, currency TEXT NOT NULL, amount_minor INTEGER NOT NULL,
    account TEXT NOT NULL, matched_by TEXT NOT NULL, channel TEXT NOT NULL);
CREATE TABLE withdrawals (
    request_id TEXT PRIMARY KEY, business_date TEXT NOT NULL, member_id TEXT NOT NULL,
    currency TEXT NOT NULL, amount_minor INTEGER NOT NULL);
CREATE TABLE freezes (
    freeze_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL, frozen_on TEXT NOT NULL, released_on TEXT);
CREATE TABLE adjustments (
    adjustment_id TEXT PRIMARY KEY, kind TEXT NOT NULL, business_date TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE outputs (
    business_date TEXT NOT NULL, name TEXT NOT NULL, content BLOB NOT NULL,
    encoding TEXT NOT NULL DEFAULT 'identity',
    PRIMARY KEY (business_date, name));
CREATE TABLE platform_accounts (
    account TEXT PRIMARY KEY, bank TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE custody_history (
    business_date TEXT NOT NULL, bank TEXT NOT NULL, currency TEXT NOT NULL,
    balance_minor INTEGER NOT NULL, PRIMARY KEY (business_date, bank, currency));
CREATE TABLE instructions (
    instruction_id TEXT PRIMARY KEY, business_date TEXT NOT NULL, phase INTEGER NOT NULL,
    kind TEXT NOT NULL, currency TEXT NOT NULL, amount_minor INTEGER NOT NULL,
    debit_bank TEXT NOT NULL, debit_account TEXT NOT NULL,
    credit_bank TEXT NOT NULL, credit_account TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', matched_by TEXT NOT NULL DEFAULT '',
    bank_ref TEXT NOT NULL DEFAULT '', status_detail TEXT NOT NULL DEFAULT '',
    resolution TEXT NOT NULL DEFAULT '', carried_into TEXT);
CREATE INDEX instructions_by_date ON instructions (business_date);
";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("ledger {path}: changed by another run since this batch was computed; run again")]
    Raced { path: PathBuf },
    #[error("data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A balance of one account in one currency, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub balance_minor: i64,
    pub frozen_minor: i64,
}

/// Everything the batch reads from the ledger, taken at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: i64,
    /// `(account, currency code)`.
    pub balances: BTreeMap<(String, String), Balance>,
    /// Per account, its positions by instrument.
    pub position_sets: BTreeMap<String, PositionSet>,
    /// `(bank, currency code)`: the custody account's real balance as the ledger expects it.
    pub custody: BTreeMap<(String, String), i64>,
    /// The bank each account's money is held at.
    pub account_banks: BTreeMap<String, String>,
    pub last_posted: Option<BusinessDate>,
    /// Failed pay-ins and pay-outs that reconciliation carried to the next cycle and no
    /// batch has re-sent yet, sorted by instruction id.
    pub carries: Vec<InstructionRow>,
}

impl Snapshot {
    pub fn is_new(&self) -> bool {
        self.version == 0
    }
}

/// One leg of a double-entry ledger entry: all legs of an `entry_id` sum to zero per asset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryLeg {
    pub entry_id: String,
    pub kind: &'static str,
    pub account: String,
    /// A currency code (amount in minor units) or an instrument (amount in units).
    pub asset: String,
    pub amount: i64,
}

/// Everything one batch writes, as final values, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct BatchWrite {
    pub business_date: String,
    pub input_digest: String,
    pub summary_json: String,
    pub account_banks: BTreeMap<String, String>,
    pub balances: BTreeMap<(String, String), Balance>,
    /// Every position of each account whose positions the batch changed.
    pub positions: Vec<(String, PositionSet)>,
    pub custody: BTreeMap<(String, String), i64>,
    pub entries: Postings,
    pub outputs: Vec<(String, Vec<u8>)>,
    pub deposits: Vec<DepositRow>,
    pub withdrawals: Vec<WithdrawalRow>,
    pub freezes: Vec<FreezeRow>,
    pub released_freezes: Vec<String>,
    /// The platform's accounts and their roles, for reconciliation and suspense assignment.
    pub platform_accounts: Vec<PlatformAccountRow>,
    /// The batch's instructions, carried ones included, for reconciliation.
    pub instructions: Vec<InstructionRow>,
    /// Ids of the failed instructions this batch re-sends (`Snapshot::carries`).
    pub carried: Vec<String>,
}

/// An instruction as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstructionRow {
    pub instruction_id: String,
    pub phase: u8,
    /// `pay_in`, `pay_out`, `in_book` or `withdrawal`.
    pub kind: String,
    pub currency: String,
    /// Always > 0.
    pub amount_minor: i64,
    pub debit_bank: String,
    pub debit_account: String,
    pub credit_bank: String,
    pub credit_account: String,
}

/// One of the platform's accounts: a real account at a bank (`custody`, `delivery`) or a
/// virtual one (`fee`, `guarantee`, `suspense`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlatformAccountRow {
    pub account: String,
    pub bank: String,
    pub role: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositRow {
    pub bank_ref: String,
    pub fingerprint: String,
    pub bank: String,
    pub currency: String,
    pub amount_minor: i64,
    pub account: String,
    pub matched_by: String,
    pub channel: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalRow {
    pub request_id: String,
    pub member_id: String,
    pub currency: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeRow {
    pub freeze_id: String,
    pub member_id: String,
    pub currency: String,
    pub amount_minor: i64,
}

pub struct Ledger {
    path: PathBuf,
    conn: Option<Connection>,
}

impl Ledger {
    /// Opens the ledger of `data_dir` if it has one; a missing ledger is a new, empty one that
    /// is not created on disk until [`Ledger::commit`].
    pub fn open(data_dir: &Path) -> Result<Ledger, LedgerError> {
        let path = data_dir.join(LEDGER_FILE);
        let conn = if path.exists() {
            let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(|source| sql(&path, source))?;
            configure(&conn, &path)?;
            check_schema(&conn, &path)?;
            Some(conn)
        } else {
            None
        };
        Ok(Ledger { path, conn })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.conn.is_some()
    }

    /// The digest a business date was posted with, if it was.
    pub fn posted_digest(&self, date: BusinessDate) -> Result<Option<String>, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        conn.query_row(
            "SELECT input_digest FROM batches WHERE business_date = ?1",
            [date.to_string()],
            |row| row.get(0),
        )
        .optional()
        .map_err(|source| sql(&self.path, source))
    }

    /// The business date posted with exactly this input digest, if any.
    pub fn posted_date_of_digest(&self, digest: &str) -> Result<Option<BusinessDate>, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        let text: Option<String> = conn
            .query_row(
                "SELECT business_date FROM batches WHERE input_digest = ?1",
                [digest],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| sql(&self.path, source))?;
        text.map(|t| {
            BusinessDate::parse(&t).ok_or_else(|| LedgerError::Corrupt {
                path: self.path.clone(),
                message: format!("batches holds a malformed business date {t:?}"),
            })
        })
        .transpose()
    }

    /// The stored outputs of a posted business date, by file name.
    pub fn outputs(&self, date: BusinessDate) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(Vec::new());
        };
        let mut stmt = conn
            .prepare(
                "SELECT name, encoding, content FROM outputs WHERE business_date = ?1
                 ORDER BY name",
            )
            .map_err(|source| sql(&self.path, source))?;
        let rows: Vec<(String, String, Vec<u8>)> = stmt
            .query_map([date.to_string()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|source| sql(&self.path, source))?;
        rows.into_iter()
            .map(|(name, encoding, content)| {
                let content =
                    packed::decode_output(&name, &encoding, content).map_err(|message| {
                        LedgerError::Corrupt {
                            path: self.path.clone(),
                            message,
                        }
                    })?;
                Ok((name, content))
            })
            .collect()
    }

    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(Snapshot::default());
        };
        let p = &self.path;
        let version: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .map_err(|source| sql(p, source))?;
        let mut snap = Snapshot {
            version,
            ..Snapshot::default()
        };
        let run = |query: &str, f: &mut dyn FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>| {
            let mut stmt = conn.prepare(query)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                f(row)?;
            }
            Ok(())
        };
        run(
            "SELECT account, currency, balance_minor, frozen_minor FROM balances",
            &mut |r| {
                snap.balances.insert(
                    (r.get(0)?, r.get(1)?),
                    Balance {
                        balance_minor: r.get(2)?,
                        frozen_minor: r.get(3)?,
                    },
                );
                Ok(())
            },
        )
        .map_err(|source| sql(p, source))?;
        run("SELECT account, quantities FROM position_sets", &mut |r| {
            let set = PositionSet::from_json(r.get(1)?);
            snap.position_sets.insert(r.get(0)?, set);
            Ok(())
        })
        .map_err(|source| sql(p, source))?;
        for (account, set) in &snap.position_sets {
            set.try_for_each(|_, _| {})
                .map_err(|message| LedgerError::Corrupt {
                    path: p.clone(),
                    message: format!("positions of {account}: {message}"),
                })?;
        }
        run(
            "SELECT bank, currency, balance_minor FROM custody",
            &mut |r| {
                snap.custody.insert((r.get(0)?, r.get(1)?), r.get(2)?);
                Ok(())
            },
        )
        .map_err(|source| sql(p, source))?;
        run("SELECT account, bank FROM accounts", &mut |r| {
            snap.account_banks.insert(r.get(0)?, r.get(1)?);
            Ok(())
        })
        .map_err(|source| sql(p, source))?;
        let last: Option<String> = conn
            .query_row("SELECT max(business_date) FROM batches", [], |r| r.get(0))
            .map_err(|source| sql(p, source))?;
        snap.carries = read_instructions(
            conn,
            "WHERE status = 'failed' AND resolution = 'carried' AND carried_into IS NULL",
            [],
        )
        .map_err(|source| sql(p, source))?;
        snap.last_posted = match last {
            None => None,
            Some(text) => Some(
                BusinessDate::parse(&text).ok_or_else(|| LedgerError::Corrupt {
                    path: p.clone(),
                    message: format!("batches holds a malformed business date {text:?}"),
                })?,
            ),
        };
        Ok(snap)
    }

    /// What the ledger holds about the ids of a day's fund events.
    pub fn fund_history(
        &self,
        bank_refs: &[&str],
        request_ids: &[&str],
        freeze_ids: &[&str],
    ) -> Result<FundHistory, LedgerError> {
        let mut history = FundHistory::default();
        let Some(conn) = &self.conn else {
            return Ok(history);
        };
        let p = &self.path;
        let mut stmt = conn
            .prepare("SELECT business_date, fingerprint, account FROM deposits WHERE bank_ref = ?1")
            .map_err(|source| sql(p, source))?;
        for r in bank_refs {
            let found = stmt
                .query_row([r], |row| {
                    Ok(BookedDeposit {
                        business_date: row.get(0)?,
                        fingerprint: row.get(1)?,
                        account: row.get(2)?,
                    })
                })
                .optional()
                .map_err(|source| sql(p, source))?;
            if let Some(d) = found {
                history.deposits.insert(r.to_string(), d);
            }
        }
        let mut stmt = conn
            .prepare("SELECT business_date FROM withdrawals WHERE request_id = ?1")
            .map_err(|source| sql(p, source))?;
        for r in request_ids {
            let found: Option<String> = stmt
                .query_row([r], |row| row.get(0))
                .optional()
                .map_err(|source| sql(p, source))?;
            if let Some(date) = found {
                history.withdrawals.insert(r.to_string(), date);
            }
        }
        let mut stmt = conn
            .prepare(
                "SELECT member_id, currency, amount_minor, released_on IS NOT NULL
                 FROM freezes WHERE freeze_id = ?1",
            )
            .map_err(|source| sql(p, source))?;
        for r in freeze_ids {
            let found = stmt
                .query_row([r], |row| {
                    Ok(FreezeRecord {
                        member_id: row.get(0)?,
                        currency: row.get(1)?,
                        amount_minor: row.get(2)?,
                        released: row.get(3)?,
                    })
                })
                .optional()
                .map_err(|source| sql(p, source))?;
            if let Some(f) = found {
                history.freezes.insert(r.to_string(), f);
            }
        }
        Ok(history)
    }

    /// Posts a batch: every write in one transaction, on the version `based_on` only.
    pub fn commit(&mut self, based_on: i64, batch: &BatchWrite) -> Result<(), LedgerError> {
        if self.conn.is_none() {
            self.create()?;
        }
        let path = self.path.clone();
        // Compressed before the transaction, which should hold the write lock only to write.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stored_outputs = packed::encode_outputs(&batch.outputs, threads);
        let conn = self.conn.as_mut().expect("created above");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| sql(&path, source))?;
        let version: i64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .map_err(|source| sql(&path, source))?;
        if version != based_on {
            return Err(LedgerError::Raced { path });
        }
        write_batch(&tx, batch, &stored_outputs).map_err(|source| sql(&path, source))?;
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'version'",
            [],
        )
        .map_err(|source| sql(&path, source))?;
        crate::faults::point("posting:before-commit");
        tx.commit().map_err(|source| sql(&path, source))
    }

    /// The open connection, for the read queries of reconciliation and suspense assignment;
    /// `None` while the ledger is new.
    pub(crate) fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    /// The ledger's version (0 while it is new): every committed write increments it.
    pub fn version(&self) -> Result<i64, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(0);
        };
        conn.query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .map_err(|source| sql(&self.path, source))
    }

    /// Runs `write` in one transaction on the version `based_on` only (the version the caller
    /// read its state at), increments the version and commits. Outside the batch this is how
    /// reconciliation and suspense assignment post: a batch computed from an older version
    /// then races and is run again, never committed over them.
    pub(crate) fn write<T>(
        &mut self,
        based_on: i64,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let path = self.path.clone();
        let Some(conn) = self.conn.as_mut() else {
            return Err(LedgerError::Corrupt {
                path,
                message: "no ledger here yet: post a business date first".to_string(),
            });
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| sql(&path, source))?;
        let version: i64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .map_err(|source| sql(&path, source))?;
        if version != based_on {
            return Err(LedgerError::Raced { path });
        }
        let out = write(&tx).map_err(|source| sql(&path, source))?;
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'version'",
            [],
        )
        .map_err(|source| sql(&path, source))?;
        tx.commit().map_err(|source| sql(&path, source))?;
        Ok(out)
    }

    /// A query failure of this ledger as a [`LedgerError`].
    pub(crate) fn error(&self, source: rusqlite::Error) -> LedgerError {
        sql(&self.path, source)
    }

    /// Posts the opening of a new ledger (`clearhouse init`): the opening entries and the
    /// balances, positions, custody balances and account banks they give, in one transaction
    /// on version 0 only, so that it can never land on a ledger that holds anything. No batch
    /// row is written: the first business date is still to be posted.
    pub fn commit_opening(&mut self, opening: &OpeningWrite) -> Result<(), LedgerError> {
        if self.conn.is_none() {
            self.create()?;
        }
        self.write(0, |tx| write_opening(tx, opening))
    }

    fn create(&mut self) -> Result<(), LedgerError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Build under a temporary name and rename, so a crash never leaves a half-made ledger
        // that the next run would mistake for a real one.
        let tmp = self.path.with_extension("sqlite.tmp");
        let _ = std::fs::remove_file(&tmp);
        {
            let conn = Connection::open(&tmp).map_err(|source| sql(&tmp, source))?;
            // One transaction: one sync instead of one per table.
            conn.execute_batch(&format!("BEGIN; {SCHEMA} COMMIT;"))
                .map_err(|source| sql(&tmp, source))?;
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('version', 0)",
                [SCHEMA_VERSION],
            )
            .map_err(|source| sql(&tmp, source))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|source| LedgerError::Io {
            path: self.path.clone(),
            source,
        })?;
        let conn = Connection::open(&self.path).map_err(|source| sql(&self.path, source))?;
        configure(&conn, &self.path)?;
        self.conn = Some(conn);
        Ok(())
    }
}

/// The `business_date` of the opening entries in `entries`: not a date, so it can never be
/// taken for one, and it sorts before every date.
pub const OPENING_DATE: &str = "0000-opening";

/// What `clearhouse init` writes into a new ledger.
#[derive(Debug, Clone, Default)]
pub struct OpeningWrite {
    pub account_banks: BTreeMap<String, String>,
    pub balances: BTreeMap<(String, String), Balance>,
    pub positions: BTreeMap<(String, String), i64>,
    pub custody: BTreeMap<(String, String), i64>,
    pub entries: Vec<EntryLeg>,
}

fn write_opening(tx: &rusqlite::Transaction<'_>, o: &OpeningWrite) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare("INSERT INTO accounts (account, bank) VALUES (?1, ?2)")?;
    for (account, bank) in &o.account_banks {
        stmt.execute(params![account, bank])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO balances (account, currency, balance_minor, frozen_minor)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for ((account, currency), b) in &o.balances {
        stmt.execute(params![account, currency, b.balance_minor, b.frozen_minor])?;
    }
    packed::write_position_sets(tx, &position_sets(&o.positions))?;
    let mut stmt =
        tx.prepare("INSERT INTO custody (bank, currency, balance_minor) VALUES (?1, ?2, ?3)")?;
    for ((bank, currency), balance) in &o.custody {
        stmt.execute(params![bank, currency, balance])?;
    }
    let legs = o.entries.iter().map(|leg| LegRef {
        entry_id: &leg.entry_id,
        kind: leg.kind,
        account: &leg.account,
        asset: &leg.asset,
        amount: leg.amount,
    });
    packed::write_legs(tx, OPENING_DATE, legs, || {})
}

/// `(account, instrument) → quantity` as one set per account.
fn position_sets(positions: &BTreeMap<(String, String), i64>) -> Vec<(String, PositionSet)> {
    let mut sets = Vec::new();
    let mut rest = positions.iter().peekable();
    while let Some(((account, _), _)) = rest.peek() {
        let account = account.clone();
        let mut pairs = Vec::new();
        while let Some(((_, instrument), quantity)) = rest.next_if(|((a, _), _)| *a == account) {
            if *quantity != 0 {
                pairs.push((instrument.as_str(), *quantity));
            }
        }
        sets.push((account, PositionSet::from_sorted(pairs.into_iter())));
    }
    sets
}

/// `stored_outputs`: `batch.outputs` compressed ([`packed::encode_outputs`]).
fn write_batch(
    tx: &rusqlite::Transaction<'_>,
    batch: &BatchWrite,
    stored_outputs: &[Vec<u8>],
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO batches (business_date, input_digest, summary) VALUES (?1, ?2, ?3)",
        params![batch.business_date, batch.input_digest, batch.summary_json],
    )?;
    let mut stmt = tx.prepare(
        "INSERT INTO accounts (account, bank) VALUES (?1, ?2)
         ON CONFLICT (account) DO UPDATE SET bank = excluded.bank",
    )?;
    for (account, bank) in &batch.account_banks {
        stmt.execute(params![account, bank])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO balances (account, currency, balance_minor, frozen_minor)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account, currency) DO UPDATE
         SET balance_minor = excluded.balance_minor, frozen_minor = excluded.frozen_minor",
    )?;
    for ((account, currency), b) in &batch.balances {
        stmt.execute(params![account, currency, b.balance_minor, b.frozen_minor])?;
    }
    packed::write_position_sets(tx, &batch.positions)?;
    let mut stmt = tx.prepare(
        "INSERT INTO custody (bank, currency, balance_minor) VALUES (?1, ?2, ?3)
         ON CONFLICT (bank, currency) DO UPDATE SET balance_minor = excluded.balance_minor",
    )?;
    for ((bank, currency), balance) in &batch.custody {
        stmt.execute(params![bank, currency, balance])?;
    }
    packed::write_legs(tx, &batch.business_date, batch.entries.iter(), || {
        crate::faults::point("posting:middle")
    })?;
    write_fund_events(tx, batch)?;
    write_settlement(tx, batch)?;
    let mut stmt = tx.prepare(
        "INSERT INTO outputs (business_date, name, encoding, content)
         VALUES (?1, ?2, 'zstd', ?3)",
    )?;
    for ((name, _), content) in batch.outputs.iter().zip(stored_outputs) {
        stmt.execute(params![batch.business_date, name, content])?;
    }
    Ok(())
}

/// Deposits booked, withdrawals paid, freezes made and released: what makes tomorrow's
/// re-sent notification a duplicate and tomorrow's unfreeze valid.
fn write_fund_events(tx: &rusqlite::Transaction<'_>, batch: &BatchWrite) -> rusqlite::Result<()> {
    let date = &batch.business_date;
    let mut stmt = tx.prepare(
        "INSERT INTO deposits (bank_ref, business_date, fingerprint, bank, currency,
         amount_minor, account, matched_by, channel) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for d in &batch.deposits {
        stmt.execute(params![
            d.bank_ref,
            date,
            d.fingerprint,
            d.bank,
            d.currency,
            d.amount_minor,
            d.account,
            d.matched_by,
            d.channel
        ])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO withdrawals (request_id, business_date, member_id, currency, amount_minor)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for w in &batch.withdrawals {
        stmt.execute(params![
            w.request_id,
            date,
            w.member_id,
            w.currency,
            w.amount_minor
        ])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO freezes (freeze_id, member_id, currency, amount_minor, frozen_on)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for f in &batch.freezes {
        stmt.execute(params![
            f.freeze_id,
            f.member_id,
            f.currency,
            f.amount_minor,
            date
        ])?;
    }
    let mut stmt = tx.prepare(
        "UPDATE freezes SET released_on = ?2 WHERE freeze_id = ?1 AND released_on IS NULL",
    )?;
    for id in &batch.released_freezes {
        // Exactly one active freeze is released, or the batch is wrong and must not commit.
        if stmt.execute(params![id, date])? != 1 {
            return Err(rusqlite::Error::StatementChangedRows(0));
        }
    }
    Ok(())
}

/// What reconciliation needs of a batch: the platform's accounts, the custody balances
/// expected once its instructions settle, the instructions themselves, and which carried
/// instructions it re-sent.
fn write_settlement(tx: &rusqlite::Transaction<'_>, batch: &BatchWrite) -> rusqlite::Result<()> {
    let date = &batch.business_date;
    let mut stmt = tx.prepare(
        "INSERT INTO platform_accounts (account, bank, role) VALUES (?1, ?2, ?3)
         ON CONFLICT (account) DO UPDATE SET bank = excluded.bank, role = excluded.role",
    )?;
    for a in &batch.platform_accounts {
        stmt.execute(params![a.account, a.bank, a.role])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO custody_history (business_date, bank, currency, balance_minor)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for ((bank, currency), balance) in &batch.custody {
        stmt.execute(params![date, bank, currency, balance])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO instructions (instruction_id, business_date, phase, kind, currency,
         amount_minor, debit_bank, debit_account, credit_bank, credit_account)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for i in &batch.instructions {
        stmt.execute(params![
            i.instruction_id,
            date,
            i.phase,
            i.kind,
            i.currency,
            i.amount_minor,
            i.debit_bank,
            i.debit_account,
            i.credit_bank,
            i.credit_account
        ])?;
    }
    let mut stmt = tx.prepare(
        "UPDATE instructions SET carried_into = ?2
         WHERE instruction_id = ?1 AND resolution = 'carried' AND carried_into IS NULL",
    )?;
    for id in &batch.carried {
        // Each carry is re-sent exactly once, or the batch is wrong and must not commit.
        if stmt.execute(params![id, date])? != 1 {
            return Err(rusqlite::Error::StatementChangedRows(0));
        }
    }
    Ok(())
}

/// Instructions matching a `WHERE` clause, sorted by id.
pub(crate) fn read_instructions(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<InstructionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT instruction_id, phase, kind, currency, amount_minor, debit_bank, debit_account,
         credit_bank, credit_account FROM instructions {filter} ORDER BY instruction_id"
    ))?;
    let rows = stmt.query_map(args, |r| {
        Ok(InstructionRow {
            instruction_id: r.get(0)?,
            phase: r.get(1)?,
            kind: r.get(2)?,
            currency: r.get(3)?,
            amount_minor: r.get(4)?,
            debit_bank: r.get(5)?,
            debit_account: r.get(6)?,
            credit_bank: r.get(7)?,
            credit_account: r.get(8)?,
        })
    })?;
    rows.collect()
}

fn configure(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    // WAL for concurrent readers; FULL sync so a commit that returned survives power loss.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000; PRAGMA cache_size = -262144;",
    )
    .map_err(|source| sql(path, source))
}

fn check_schema(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let schema: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|source| LedgerError::Corrupt {
            path: path.to_path_buf(),
            message: format!("not a Clearhouse ledger ({source})"),
        })?;
    match schema {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(1) => conn
            .execute_batch(packed::MIGRATE_1_TO_2)
            .map_err(|source| sql(path, source)),
        other => Err(LedgerError::Corrupt {
            path: path.to_path_buf(),
            message: format!("schema version {other:?}, this build reads {SCHEMA_VERSION}"),
        }),
    }
}

fn sql(path: &Path, source: rusqlite::Error) -> LedgerError {
    LedgerError::Sql {
        path: path.to_path_buf(),
        source,
    }
}
