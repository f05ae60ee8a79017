//! The virtual-account ledger: by default an SQLite file (WAL) in the data directory, or a
//! PostgreSQL database named by `ledger = "postgres://..."` in the data directory's
//! platform.toml or by `--ledger URL` ([`Location`]). Both hold the same tables and answer
//! the same queries ([`db`]); what is said here holds for both.
//!
//! Invariants:
//! - a business date is posted at most once: `batches.business_date` is the primary key, and
//!   its row is the first a batch's transaction writes, so a second poster of the date (a
//!   racing run included) is refused by the key itself ([`LedgerError::AlreadyPosted`]), not
//!   only by an earlier read; the batch is written in one transaction together with every
//!   balance, position and entry;
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

pub mod db;
mod packed;

pub use db::{Db, DbError, Dialect, Row};
pub use packed::{encode_output, PositionSet, CSV_OF_PARQUET, ZSTD};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::{Connection, OpenFlags};

use clearhouse_formats::model::BusinessDate;

use crate::book::{LegRef, Postings};
use crate::funds::{BookedDeposit, FreezeRecord, FundHistory};

/// The file name of the ledger inside the data directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// 2: position sets, entry sets, compressed outputs (a version-1 ledger is migrated on open).
const SCHEMA_VERSION: i64 = 2;

/// The tables, in SQLite's types; [`postgres_schema`] maps them for PostgreSQL.
const TABLES: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE accounts (account TEXT PRIMARY KEY, bank TEXT NOT NULL);
CREATE TABLE balances (
    account TEXT NOT NULL, currency TEXT NOT NULL,
    balance_minor INTEGER NOT NULL, frozen_minor INTEGER NOT NULL,
    PRIMARY KEY (account, currency)) WITHOUT ROWID;
CREATE TABLE position_sets (account TEXT PRIMARY KEY, quantities TEXT NOT NULL);
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

/// The views that unpack [`packed`] sets into rows, as SQLite writes them.
const SQLITE_VIEWS: &str = "
CREATE VIEW positions AS
    SELECT s.account AS account, j.key AS instrument, j.value AS quantity
    FROM position_sets s, json_each(s.quantities) j;
CREATE VIEW all_entries AS
    SELECT business_date, entry_id, kind, account, asset, amount FROM entries
    UNION ALL
    SELECT s.business_date, s.entry_id, s.kind, j.key, s.asset, j.value
    FROM entry_sets s, json_each(s.amounts) j;
";

/// The same views in PostgreSQL: the sets stay TEXT (their bytes are what was written), parsed
/// as `json` only to unpack them.
const POSTGRES_VIEWS: &str = "
CREATE VIEW positions AS
    SELECT s.account AS account, j.key COLLATE \"C\" AS instrument,
           CAST(j.value AS BIGINT) AS quantity
    FROM position_sets s, json_each_text(CAST(s.quantities AS json)) j;
CREATE VIEW all_entries AS
    SELECT business_date, entry_id, kind, account, asset, amount FROM entries
    UNION ALL
    SELECT s.business_date, s.entry_id, s.kind, j.key COLLATE \"C\", s.asset,
           CAST(j.value AS BIGINT)
    FROM entry_sets s, json_each_text(CAST(s.amounts AS json)) j;
";

/// [`TABLES`] in PostgreSQL's types: BIGINT for every integer (money is i64 minor units),
/// BYTEA for blobs, and byte order for text, so that `ORDER BY` and `max()` agree with
/// SQLite's and the rendered outputs are the same bytes from both.
fn postgres_schema() -> String {
    let tables = TABLES
        .replace(" INTEGER", " BIGINT")
        .replace(" TEXT", " TEXT COLLATE \"C\"")
        .replace(" BLOB", " BYTEA")
        .replace(") WITHOUT ROWID;", ");");
    format!("{tables}{POSTGRES_VIEWS}")
}

/// The URL given by `--ledger`, which overrides platform.toml for the whole process.
static LEDGER_URL: OnceLock<String> = OnceLock::new();

/// Sets the ledger of every data directory this process opens (`--ledger URL`); the first
/// call wins.
pub fn set_url(url: &str) -> Result<(), LedgerError> {
    Location::parse(url)?;
    let _ = LEDGER_URL.set(url.to_string());
    Ok(())
}

/// Where a data directory's ledger is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The default: `<data-dir>/ledger.sqlite`.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Location {
    /// `--ledger` if given, else the `ledger` key of the data directory's platform.toml,
    /// else the SQLite file in the data directory.
    pub fn of(data_dir: &Path) -> Result<Location, LedgerError> {
        if let Some(url) = LEDGER_URL.get() {
            return Location::parse(url);
        }
        let toml = data_dir.join("platform.toml");
        if toml.exists() {
            let url = clearhouse_formats::reference::read_ledger_url(&toml).map_err(|message| {
                LedgerError::Config {
                    path: toml,
                    message,
                }
            })?;
            if let Some(url) = url {
                return Location::parse(&url);
            }
        }
        Ok(Location::Sqlite(data_dir.join(LEDGER_FILE)))
    }

    pub fn parse(url: &str) -> Result<Location, LedgerError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url.to_string()))
        } else {
            Err(LedgerError::Config {
                path: PathBuf::from("--ledger"),
                message: format!(
                    "{:?} is not a postgres:// or postgresql:// URL",
                    redact(url)
                ),
            })
        }
    }

    /// How errors name the ledger: the file, or the URL without its password.
    pub fn label(&self) -> PathBuf {
        match self {
            Location::Sqlite(path) => path.clone(),
            Location::Postgres(url) => PathBuf::from(redact(url)),
        }
    }
}

/// A URL with the password of its `user:password@` part replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sql {
        /// The SQLite file, or the PostgreSQL URL without its password.
        path: PathBuf,
        #[source]
        source: DbError,
    },
    #[error("ledger {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("ledger {path}: changed by another run since this batch was computed; run again")]
    Raced { path: PathBuf },
    /// The batch's key (its business date) was taken by another run's commit.
    #[error("ledger {path}: business date {business_date} was posted by another run")]
    AlreadyPosted {
        path: PathBuf,
        business_date: String,
    },
    #[error("{path}: ledger: {message}")]
    Config { path: PathBuf, message: String },
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
    pub account_banks: BTreeMap<String, String>,
    pub balances: BTreeMap<(String, String), Balance>,
    /// Every position of each account whose positions the batch changed.
    pub positions: Vec<(String, PositionSet)>,
    pub custody: BTreeMap<(String, String), i64>,
    pub entries: std::sync::Arc<Postings>,
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

impl InstructionRow {
    /// The columns [`InstructionRow::from_row`] reads, in its order, for a `SELECT` that may
    /// read more after them.
    pub(crate) const COLUMNS: &'static str = "instruction_id, phase, kind, currency, \
        amount_minor, debit_bank, debit_account, credit_bank, credit_account";

    /// An instruction from the first columns of a row selected with [`InstructionRow::COLUMNS`].
    pub(crate) fn from_row(r: &db::Row) -> Result<InstructionRow, DbError> {
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
    }
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
    location: Location,
    /// How errors name the ledger ([`Location::label`]).
    path: PathBuf,
    /// `None` while the ledger is new (nothing posted yet).
    conn: Option<Db>,
    /// The business date of a batch begun and not yet finished ([`Ledger::begin_batch`]).
    pending: Option<String>,
}

impl Ledger {
    /// Opens the ledger of `data_dir` ([`Location::of`]) if it has one; a missing ledger is a
    /// new, empty one that is not created until [`Ledger::commit`].
    pub fn open(data_dir: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_at(Location::of(data_dir)?)
    }

    pub fn open_at(location: Location) -> Result<Ledger, LedgerError> {
        let path = location.label();
        let conn = match &location {
            Location::Sqlite(file) if file.exists() => {
                let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_WRITE)
                    .map_err(|source| sql(&path, source.into()))?;
                configure(&conn, &path)?;
                check_schema(&conn, &path)?;
                Some(Db::Sqlite(conn))
            }
            Location::Sqlite(_) => None,
            Location::Postgres(url) => {
                let db = Db::postgres(url).map_err(|source| sql(&path, source))?;
                if postgres_has_ledger(&db).map_err(|source| sql(&path, source))? {
                    check_postgres_schema(&db, &path)?;
                    Some(db)
                } else {
                    None
                }
            }
        };
        Ok(Ledger {
            location,
            path,
            conn,
            pending: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn exists(&self) -> bool {
        self.conn.is_some()
    }

    /// The digest a business date was posted with, if it was.
    pub fn posted_digest(&self, date: BusinessDate) -> Result<Option<String>, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        conn.query_opt(
            "SELECT input_digest FROM batches WHERE business_date = ?1",
            &[&date.to_string()],
        )
        .and_then(|row| row.map(|r| r.get(0)).transpose())
        .map_err(|source| sql(&self.path, source))
    }

    /// The business date posted with exactly this input digest, if any.
    pub fn posted_date_of_digest(&self, digest: &str) -> Result<Option<BusinessDate>, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        let text: Option<String> = conn
            .query_opt(
                "SELECT business_date FROM batches WHERE input_digest = ?1",
                &[&digest],
            )
            .and_then(|row| row.map(|r| r.get(0)).transpose())
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
        let rows: Vec<(String, String, Vec<u8>)> = conn
            .query(
                "SELECT name, encoding, content FROM outputs WHERE business_date = ?1
                 ORDER BY name",
                &[&date.to_string()],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .map_err(|source| sql(&self.path, source))?;
        packed::decode_outputs(rows).map_err(|message| LedgerError::Corrupt {
            path: self.path.clone(),
            message,
        })
    }

    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(Snapshot::default());
        };
        let p = &self.path;
        // One read transaction: every table as of one version.
        let tx = conn.read_tx().map_err(|source| sql(p, source))?;
        let snap = read_snapshot(&tx, p)?;
        drop(tx);
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
        let e = |source| sql(p, source);
        for r in bank_refs {
            let found = conn
                .query_opt(
                    "SELECT business_date, fingerprint, account FROM deposits WHERE bank_ref = ?1",
                    &[r],
                )
                .map_err(e)?;
            if let Some(row) = found {
                let d = BookedDeposit {
                    business_date: row.get(0).map_err(e)?,
                    fingerprint: row.get(1).map_err(e)?,
                    account: row.get(2).map_err(e)?,
                };
                history.deposits.insert(r.to_string(), d);
            }
        }
        for r in request_ids {
            let found = conn
                .query_opt(
                    "SELECT business_date FROM withdrawals WHERE request_id = ?1",
                    &[r],
                )
                .map_err(e)?;
            if let Some(row) = found {
                history
                    .withdrawals
                    .insert(r.to_string(), row.get(0).map_err(e)?);
            }
        }
        for r in freeze_ids {
            let found = conn
                .query_opt(
                    "SELECT member_id, currency, amount_minor,
                     CASE WHEN released_on IS NULL THEN 0 ELSE 1 END
                     FROM freezes WHERE freeze_id = ?1",
                    &[r],
                )
                .map_err(e)?;
            if let Some(row) = found {
                let f = FreezeRecord {
                    member_id: row.get(0).map_err(e)?,
                    currency: row.get(1).map_err(e)?,
                    amount_minor: row.get(2).map_err(e)?,
                    released: row.get(3).map_err(e)?,
                };
                history.freezes.insert(r.to_string(), f);
            }
        }
        Ok(history)
    }

    /// Posts a batch: every write in one transaction, on the version `based_on` only.
    /// [`Ledger::begin_batch`] then [`Ledger::finish_batch`].
    pub fn commit(
        &mut self,
        based_on: i64,
        batch: &BatchWrite,
        summary_json: &str,
        outputs: &[(String, Vec<u8>)],
    ) -> Result<(), LedgerError> {
        self.begin_batch(based_on, batch)?;
        self.finish_batch(summary_json, outputs)
    }

    /// Opens the batch's transaction and writes everything but its summary and outputs, which
    /// the end-of-day run renders meanwhile on the other core. Nothing is visible until
    /// [`Ledger::finish_batch`] commits; [`Ledger::abort_batch`] (or closing the ledger) rolls
    /// it back. On an error nothing is left open.
    ///
    /// The batch's row goes first: if another run took the business date, the primary key
    /// refuses it ([`LedgerError::AlreadyPosted`]) before anything else is written; if another
    /// run committed anything since `based_on`, [`LedgerError::Raced`].
    pub fn begin_batch(&mut self, based_on: i64, batch: &BatchWrite) -> Result<(), LedgerError> {
        assert!(self.pending.is_none(), "one batch at a time");
        if self.conn.is_none() {
            self.create()?;
        }
        let path = self.path.clone();
        let Some(conn) = self.conn.as_ref() else {
            return Err(no_ledger(path));
        };
        let tx = conn.write_tx().map_err(|source| sql(&path, source))?;
        // The summary, with the stage timings of the rendering still under way, is filled in
        // by `finish_batch`.
        let inserted = tx.execute(
            "INSERT INTO batches (business_date, input_digest, summary) VALUES (?1, ?2, '')",
            &[&batch.business_date, &batch.input_digest],
        );
        match inserted {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {
                return Err(LedgerError::AlreadyPosted {
                    path,
                    business_date: batch.business_date.clone(),
                })
            }
            Err(e) => return Err(classify(&path, e)),
        }
        check_version(&tx, based_on, &path)?;
        write_batch(&tx, batch).map_err(|source| classify(&path, source))?;
        tx.keep_open();
        self.pending = Some(batch.business_date.clone());
        Ok(())
    }

    /// Stores the begun batch's summary and outputs (compressed on every core), increments
    /// the version and commits. On an error the batch is rolled back.
    pub fn finish_batch(
        &mut self,
        summary_json: &str,
        outputs: &[(String, Vec<u8>)],
    ) -> Result<(), LedgerError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stored = packed::encode_outputs(outputs, threads);
        let named: Vec<(&str, &str, &[u8])> = outputs
            .iter()
            .zip(&stored)
            .map(|((name, _), content)| (name.as_str(), ZSTD, content.as_slice()))
            .collect();
        self.finish_batch_stored(summary_json, &named)
    }

    /// [`Ledger::finish_batch`] with the outputs already in their stored form: `(name,
    /// encoding, stored bytes)`, the encoding [`ZSTD`] ([`encode_output`]) or
    /// [`CSV_OF_PARQUET`]. The end-of-day run compresses each output on the thread that
    /// rendered it, while this one writes the batch.
    pub fn finish_batch_stored(
        &mut self,
        summary_json: &str,
        stored: &[(&str, &str, &[u8])],
    ) -> Result<(), LedgerError> {
        let business_date = self.pending.take().expect("a batch was begun");
        let path = self.path.clone();
        let conn = self.conn.as_ref().expect("a begun batch has a connection");
        let tx = conn.resume_tx();
        let write = || -> Result<(), DbError> {
            tx.execute(
                "UPDATE batches SET summary = ?2 WHERE business_date = ?1",
                &[&business_date, &summary_json],
            )?;
            for (name, encoding, content) in stored {
                tx.execute(
                    "INSERT INTO outputs (business_date, name, encoding, content)
                     VALUES (?1, ?2, ?3, ?4)",
                    &[&business_date, name, encoding, content],
                )?;
            }
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'version'",
                &[],
            )?;
            Ok(())
        };
        write().map_err(|source| classify(&path, source))?;
        crate::faults::point("posting:before-commit");
        // SQLite: the batch goes to the WAL only; copying it into the ledger file is left
        // to a checkpoint the caller can overlap with writing the outputs
        // ([`Ledger::checkpointer`]). Durable either way: a committed WAL is the ledger.
        let defer = tx.dialect() == Dialect::Sqlite;
        if defer {
            tx.batch("PRAGMA wal_autocheckpoint = 0")
                .map_err(|source| classify(&path, source))?;
        }
        let committed = tx.commit().map_err(|source| classify(&path, source));
        if defer {
            // Later writes of this connection checkpoint as SQLite does by default.
            let restored = conn.batch("PRAGMA wal_autocheckpoint = 1000");
            committed?;
            return restored.map_err(|source| sql(&path, source));
        }
        committed
    }

    /// Rolls back a begun batch (its outputs could not be rendered).
    pub fn abort_batch(&mut self) {
        if self.pending.take().is_some() {
            if let Some(conn) = &self.conn {
                drop(conn.resume_tx());
            }
        }
    }

    /// A checkpoint of this ledger's WAL that can run on another thread.
    pub fn checkpointer(&self) -> Option<Checkpointer> {
        match &self.location {
            Location::Sqlite(file) if self.conn.is_some() => {
                Some(Checkpointer { file: file.clone() })
            }
            _ => None,
        }
    }

    /// The open connection, for the read queries of reconciliation, suspense assignment and
    /// the server; `None` while the ledger is new.
    pub fn connection(&self) -> Option<&Db> {
        self.conn.as_ref()
    }

    /// The open connection, taken out of the ledger (`None` while the ledger is new).
    pub fn take_connection(&mut self) -> Option<Db> {
        self.conn.take()
    }

    /// The ledger's version (0 while it is new): every committed write increments it.
    pub fn version(&self) -> Result<i64, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(0);
        };
        conn.query_one("SELECT value FROM meta WHERE key = 'version'", &[])
            .and_then(|r| r.get(0))
            .map_err(|source| sql(&self.path, source))
    }

    /// Runs `write` in one transaction on the version `based_on` only (the version the caller
    /// read its state at), increments the version and commits. Outside the batch this is how
    /// reconciliation and suspense assignment post: a batch computed from an older version
    /// then races and is run again, never committed over them.
    pub(crate) fn write<T>(
        &mut self,
        based_on: i64,
        write: impl FnOnce(&Db) -> Result<T, DbError>,
    ) -> Result<T, LedgerError> {
        let path = self.path.clone();
        let Some(conn) = self.conn.as_ref() else {
            return Err(no_ledger(path));
        };
        let tx = conn.write_tx().map_err(|source| sql(&path, source))?;
        check_version(&tx, based_on, &path)?;
        let out = write(&tx).map_err(|source| classify(&path, source))?;
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'version'",
            &[],
        )
        .map_err(|source| classify(&path, source))?;
        tx.commit().map_err(|source| classify(&path, source))?;
        Ok(out)
    }

    /// A query failure of this ledger as a [`LedgerError`].
    pub(crate) fn error(&self, source: DbError) -> LedgerError {
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
        match self.location.clone() {
            Location::Sqlite(file) => self.create_sqlite(&file),
            Location::Postgres(url) => self.create_postgres(&url),
        }
    }

    fn create_sqlite(&mut self, file: &Path) -> Result<(), LedgerError> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Build under a temporary name and rename, so a crash never leaves a half-made ledger
        // that the next run would mistake for a real one.
        let tmp = file.with_extension("sqlite.tmp");
        let _ = std::fs::remove_file(&tmp);
        {
            let conn = Connection::open(&tmp).map_err(|source| sql(&tmp, source.into()))?;
            // One transaction: one sync instead of one per table.
            conn.execute_batch(&format!("BEGIN; {TABLES}{SQLITE_VIEWS} COMMIT;"))
                .map_err(|source| sql(&tmp, source.into()))?;
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('version', 0)",
                [SCHEMA_VERSION],
            )
            .map_err(|source| sql(&tmp, source.into()))?;
        }
        std::fs::rename(&tmp, file).map_err(|source| LedgerError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(file).map_err(|source| sql(&self.path, source.into()))?;
        configure(&conn, &self.path)?;
        self.conn = Some(Db::Sqlite(conn));
        Ok(())
    }

    /// Creates the tables in one transaction (PostgreSQL's DDL is transactional: a crash
    /// leaves none), under an advisory lock so that two first runs cannot both create them.
    fn create_postgres(&mut self, url: &str) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let e = |source| sql(&path, source);
        let db = Db::postgres(url).map_err(e)?;
        {
            // READ COMMITTED: after the lock, the check must see what the lock holder made.
            db.batch("BEGIN").map_err(e)?;
            let created = (|| {
                db.batch(&format!("SELECT pg_advisory_xact_lock({CREATE_LOCK_KEY})"))?;
                if !postgres_has_ledger(&db)? {
                    db.batch(&postgres_schema())?;
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('version', 0)",
                        &[&SCHEMA_VERSION],
                    )?;
                }
                db.batch("COMMIT")
            })();
            if let Err(source) = created {
                let _ = db.batch("ROLLBACK");
                return Err(e(source));
            }
        }
        check_postgres_schema(&db, &path)?;
        self.conn = Some(db);
        Ok(())
    }
}

/// Copies a committed batch from the WAL into the ledger file on its own connection, so that
/// it can overlap other work.
pub struct Checkpointer {
    file: PathBuf,
}

impl Checkpointer {
    /// Best effort: the batch is durable in the WAL already, and a checkpoint that does not
    /// run (or fails) is done by the next commit or by the last connection to close.
    pub fn run(self) {
        if let Ok(conn) = Connection::open_with_flags(&self.file, OpenFlags::SQLITE_OPEN_READ_WRITE)
        {
            let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }
}

/// The advisory lock `create_postgres` holds while it creates the tables ("CLRHOUSE").
const CREATE_LOCK_KEY: i64 = 0x434c_5248_4f55_5345;

fn no_ledger(path: PathBuf) -> LedgerError {
    LedgerError::Corrupt {
        path,
        message: "no ledger here yet: post a business date first".to_string(),
    }
}

/// Inside a write transaction: the version must still be `based_on`. PostgreSQL also locks
/// the version row here, so concurrent writers queue on it; one that lost the race gets a
/// serialization failure, reported as [`LedgerError::Raced`].
fn check_version(tx: &Db, based_on: i64, path: &Path) -> Result<(), LedgerError> {
    let query = match tx.dialect() {
        Dialect::Sqlite => "SELECT value FROM meta WHERE key = 'version'",
        Dialect::Postgres => "SELECT value FROM meta WHERE key = 'version' FOR UPDATE",
    };
    let version: i64 = tx
        .query_one(query, &[])
        .and_then(|r| r.get(0))
        .map_err(|source| classify(path, source))?;
    if version != based_on {
        return Err(LedgerError::Raced {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A failed write: lost to a concurrent transaction ([`LedgerError::Raced`]) or an error.
fn classify(path: &Path, source: DbError) -> LedgerError {
    if source.is_serialization_failure() {
        LedgerError::Raced {
            path: path.to_path_buf(),
        }
    } else {
        sql(path, source)
    }
}

fn read_snapshot(conn: &Db, p: &Path) -> Result<Snapshot, LedgerError> {
    let e = |source| sql(p, source);
    let version: i64 = conn
        .query_one("SELECT value FROM meta WHERE key = 'version'", &[])
        .and_then(|r| r.get(0))
        .map_err(e)?;
    let mut snap = Snapshot {
        version,
        ..Snapshot::default()
    };
    for r in conn
        .query(
            "SELECT account, currency, balance_minor, frozen_minor FROM balances",
            &[],
        )
        .map_err(e)?
    {
        snap.balances.insert(
            (r.get(0).map_err(e)?, r.get(1).map_err(e)?),
            Balance {
                balance_minor: r.get(2).map_err(e)?,
                frozen_minor: r.get(3).map_err(e)?,
            },
        );
    }
    for r in conn
        .query("SELECT account, quantities FROM position_sets", &[])
        .map_err(e)?
    {
        let set = PositionSet::from_json(r.get(1).map_err(e)?);
        snap.position_sets.insert(r.get(0).map_err(e)?, set);
    }
    for (account, set) in &snap.position_sets {
        set.try_for_each(|_, _| {})
            .map_err(|message| LedgerError::Corrupt {
                path: p.to_path_buf(),
                message: format!("positions of {account}: {message}"),
            })?;
    }
    for r in conn
        .query("SELECT bank, currency, balance_minor FROM custody", &[])
        .map_err(e)?
    {
        snap.custody.insert(
            (r.get(0).map_err(e)?, r.get(1).map_err(e)?),
            r.get(2).map_err(e)?,
        );
    }
    for r in conn
        .query("SELECT account, bank FROM accounts", &[])
        .map_err(e)?
    {
        snap.account_banks
            .insert(r.get(0).map_err(e)?, r.get(1).map_err(e)?);
    }
    let last: Option<String> = conn
        .query_one("SELECT max(business_date) FROM batches", &[])
        .and_then(|r| r.get(0))
        .map_err(e)?;
    snap.carries = read_instructions(
        conn,
        "WHERE status = 'failed' AND resolution = 'carried' AND carried_into IS NULL",
        &[],
    )
    .map_err(e)?;
    snap.last_posted = match last {
        None => None,
        Some(text) => Some(
            BusinessDate::parse(&text).ok_or_else(|| LedgerError::Corrupt {
                path: p.to_path_buf(),
                message: format!("batches holds a malformed business date {text:?}"),
            })?,
        ),
    };
    Ok(snap)
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

fn write_opening(tx: &Db, o: &OpeningWrite) -> Result<(), DbError> {
    for (account, bank) in &o.account_banks {
        tx.execute(
            "INSERT INTO accounts (account, bank) VALUES (?1, ?2)",
            &[account, bank],
        )?;
    }
    for ((account, currency), b) in &o.balances {
        tx.execute(
            "INSERT INTO balances (account, currency, balance_minor, frozen_minor)
             VALUES (?1, ?2, ?3, ?4)",
            &[account, currency, &b.balance_minor, &b.frozen_minor],
        )?;
    }
    packed::write_position_sets(tx, &position_sets(&o.positions))?;
    for ((bank, currency), balance) in &o.custody {
        tx.execute(
            "INSERT INTO custody (bank, currency, balance_minor) VALUES (?1, ?2, ?3)",
            &[bank, currency, balance],
        )?;
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

/// Everything of a batch but its row, summary and outputs.
fn write_batch(tx: &Db, batch: &BatchWrite) -> Result<(), DbError> {
    for (account, bank) in &batch.account_banks {
        tx.execute(
            "INSERT INTO accounts (account, bank) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET bank = excluded.bank",
            &[account, bank],
        )?;
    }
    for ((account, currency), b) in &batch.balances {
        tx.execute(
            "INSERT INTO balances (account, currency, balance_minor, frozen_minor)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account, currency) DO UPDATE
             SET balance_minor = excluded.balance_minor, frozen_minor = excluded.frozen_minor",
            &[account, currency, &b.balance_minor, &b.frozen_minor],
        )?;
    }
    packed::write_position_sets(tx, &batch.positions)?;
    for ((bank, currency), balance) in &batch.custody {
        tx.execute(
            "INSERT INTO custody (bank, currency, balance_minor) VALUES (?1, ?2, ?3)
             ON CONFLICT (bank, currency) DO UPDATE SET balance_minor = excluded.balance_minor",
            &[bank, currency, balance],
        )?;
    }
    packed::write_postings(tx, &batch.business_date, &batch.entries, || {
        crate::faults::point("posting:middle")
    })?;
    write_fund_events(tx, batch)?;
    write_settlement(tx, batch)?;
    Ok(())
}

/// Deposits booked, withdrawals paid, freezes made and released: what makes tomorrow's
/// re-sent notification a duplicate and tomorrow's unfreeze valid.
fn write_fund_events(tx: &Db, batch: &BatchWrite) -> Result<(), DbError> {
    let date = &batch.business_date;
    for d in &batch.deposits {
        tx.execute(
            "INSERT INTO deposits (bank_ref, business_date, fingerprint, bank, currency,
             amount_minor, account, matched_by, channel)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &[
                &d.bank_ref,
                date,
                &d.fingerprint,
                &d.bank,
                &d.currency,
                &d.amount_minor,
                &d.account,
                &d.matched_by,
                &d.channel,
            ],
        )?;
    }
    for w in &batch.withdrawals {
        tx.execute(
            "INSERT INTO withdrawals (request_id, business_date, member_id, currency,
             amount_minor) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                &w.request_id,
                date,
                &w.member_id,
                &w.currency,
                &w.amount_minor,
            ],
        )?;
    }
    for f in &batch.freezes {
        tx.execute(
            "INSERT INTO freezes (freeze_id, member_id, currency, amount_minor, frozen_on)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                &f.freeze_id,
                &f.member_id,
                &f.currency,
                &f.amount_minor,
                date,
            ],
        )?;
    }
    for id in &batch.released_freezes {
        // Exactly one active freeze is released, or the batch is wrong and must not commit.
        tx.execute_one(
            "UPDATE freezes SET released_on = ?2 WHERE freeze_id = ?1 AND released_on IS NULL",
            &[id, date],
        )?;
    }
    Ok(())
}

/// What reconciliation needs of a batch: the platform's accounts, the custody balances
/// expected once its instructions settle, the instructions themselves, and which carried
/// instructions it re-sent.
fn write_settlement(tx: &Db, batch: &BatchWrite) -> Result<(), DbError> {
    let date = &batch.business_date;
    for a in &batch.platform_accounts {
        tx.execute(
            "INSERT INTO platform_accounts (account, bank, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (account) DO UPDATE SET bank = excluded.bank, role = excluded.role",
            &[&a.account, &a.bank, &a.role],
        )?;
    }
    for ((bank, currency), balance) in &batch.custody {
        tx.execute(
            "INSERT INTO custody_history (business_date, bank, currency, balance_minor)
             VALUES (?1, ?2, ?3, ?4)",
            &[date, bank, currency, balance],
        )?;
    }
    for i in &batch.instructions {
        tx.execute(
            "INSERT INTO instructions (instruction_id, business_date, phase, kind, currency,
             amount_minor, debit_bank, debit_account, credit_bank, credit_account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            &[
                &i.instruction_id,
                date,
                &i.phase,
                &i.kind,
                &i.currency,
                &i.amount_minor,
                &i.debit_bank,
                &i.debit_account,
                &i.credit_bank,
                &i.credit_account,
            ],
        )?;
    }
    for id in &batch.carried {
        // Each carry is re-sent exactly once, or the batch is wrong and must not commit.
        tx.execute_one(
            "UPDATE instructions SET carried_into = ?2
             WHERE instruction_id = ?1 AND resolution = 'carried' AND carried_into IS NULL",
            &[id, date],
        )?;
    }
    Ok(())
}

/// Instructions matching a `WHERE` clause, sorted by id.
pub(crate) fn read_instructions(
    conn: &Db,
    filter: &str,
    args: db::Params<'_>,
) -> Result<Vec<InstructionRow>, DbError> {
    let rows = conn.query(
        &format!(
            "SELECT {} FROM instructions {filter} ORDER BY instruction_id",
            InstructionRow::COLUMNS
        ),
        args,
    )?;
    rows.iter().map(InstructionRow::from_row).collect()
}

/// Whether the connected PostgreSQL database holds a ledger (its `meta` table).
fn postgres_has_ledger(db: &Db) -> Result<bool, DbError> {
    db.query_one(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name = 'meta'",
        &[],
    )
    .and_then(|r| r.get::<i64>(0))
    .map(|n| n > 0)
}

fn check_postgres_schema(db: &Db, path: &Path) -> Result<(), LedgerError> {
    let schema: Option<i64> = db
        .query_opt("SELECT value FROM meta WHERE key = 'schema'", &[])
        .and_then(|r| r.map(|r| r.get(0)).transpose())
        .map_err(|source| sql(path, source))?;
    match schema {
        Some(SCHEMA_VERSION) => Ok(()),
        other => Err(LedgerError::Corrupt {
            path: path.to_path_buf(),
            message: format!("schema version {other:?}, this build reads {SCHEMA_VERSION}"),
        }),
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    // WAL for concurrent readers; FULL sync so a commit that returned survives power loss.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000; PRAGMA cache_size = -262144;",
    )
    .map_err(|source| sql(path, source.into()))
}

fn check_schema(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let schema: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(|source| LedgerError::Corrupt {
            path: path.to_path_buf(),
            message: format!("not a Clearhouse ledger ({source})"),
        })?;
    match schema {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(1) => conn
            .execute_batch(packed::MIGRATE_1_TO_2)
            .map_err(|source| sql(path, source.into())),
        other => Err(LedgerError::Corrupt {
            path: path.to_path_buf(),
            message: format!("schema version {other:?}, this build reads {SCHEMA_VERSION}"),
        }),
    }
}

fn sql(path: &Path, source: DbError) -> LedgerError {
    LedgerError::Sql {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(date: &str, digest: &str) -> BatchWrite {
        BatchWrite {
            business_date: date.to_string(),
            input_digest: digest.to_string(),
            ..BatchWrite::default()
        }
    }

    /// A second posting of a date on the current version (so the version check passes) is
    /// refused by the primary key, and leaves the ledger as it was.
    #[test]
    fn the_batch_key_refuses_a_second_posting_of_a_date() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open_at(Location::Sqlite(dir.path().join(LEDGER_FILE))).unwrap();
        ledger
            .commit(0, &batch("2026-11-25", "a"), "{}", &[])
            .unwrap();
        let version = ledger.version().unwrap();
        let again = ledger.commit(version, &batch("2026-11-25", "b"), "{}", &[]);
        assert!(
            matches!(again, Err(LedgerError::AlreadyPosted { ref business_date, .. })
                if business_date == "2026-11-25"),
            "{again:?}"
        );
        assert_eq!(ledger.version().unwrap(), version);
        let date = BusinessDate::parse("2026-11-25").unwrap();
        assert_eq!(ledger.posted_digest(date).unwrap().as_deref(), Some("a"));
        ledger
            .commit(version, &batch("2026-11-26", "c"), "{}", &[])
            .unwrap();
    }

    #[test]
    fn a_postgres_schema_is_the_sqlite_one_in_postgres_types() {
        let schema = postgres_schema();
        assert!(!schema.contains("INTEGER") && !schema.contains("BLOB"));
        assert!(!schema.contains("WITHOUT ROWID"));
        assert_eq!(
            schema.matches("CREATE TABLE").count(),
            TABLES.matches("CREATE TABLE").count()
        );
        assert!(schema.contains("content BYTEA NOT NULL"));
        assert!(schema.contains("balance_minor BIGINT NOT NULL"));
    }

    #[test]
    fn urls_are_named_without_their_password() {
        assert_eq!(
            redact("postgres://ch:s3cret@db.example:5432/ledger?sslmode=disable"),
            "postgres://ch:***@db.example:5432/ledger?sslmode=disable"
        );
        assert_eq!(redact("postgres://db/ledger"), "postgres://db/ledger");
        assert_eq!(redact("postgres://ch@db/ledger"), "postgres://ch@db/ledger");
        assert!(Location::parse("mysql://x").is_err());
        assert!(matches!(
            Location::parse("postgresql://h/d"),
            Ok(Location::Postgres(_))
        ));
    }
}
