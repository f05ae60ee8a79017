//! Reconciliation with the banks: `clearhouse reconcile DATE FILES...`.
//!
//! Input: the bank files (camt.052/053/054, the confirmation CSV; read by
//! `clearhouse_formats::bankfiles`) and what the ledger holds of a posted date: its
//! instructions with their statuses so far, the platform's accounts, the custody balances
//! the batch expected, the deposits it booked. Output: a status per instruction, the breaks,
//! `recon.csv`, and posted entries for what failed.
//!
//! Invariants:
//! - nothing is recorded unless every bank file reads cleanly (exit 2 otherwise);
//! - everything a run records (statuses, carries, returns, their audit records) is written in
//!   one ledger transaction on the version the run read, so a batch racing with it is run
//!   again rather than posted over it;
//! - idempotent: statuses only move forward, and an entry is posted only when an instruction
//!   *becomes* failed; the same files again record and post nothing;
//! - a failed pay-in, pay-out or in-book leg is **carried**: `CARRY-<id>` records it, and the
//!   next batch re-sends it as `<yyyymmdd>-P<phase>-<bank>-<currency>-C` ([`carried_instructions`]);
//!   members' posted results never change. A failed withdrawal is **returned**: `RET-<id>`
//!   credits the member back, and the custody balance the ledger expects rises with it.

mod matching;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clearhouse_formats::bankfiles::{read_bank_file, BankEntry, BankFile, StatementBalance};
use clearhouse_formats::model::{BusinessDate, Platform, RowError};
use clearhouse_formats::money::{AmountMinor, Currency};
use clearhouse_formats::table::{Cell, ColumnKind, CsvTableWriter, TableSpec};

use clearhouse_formats::model::DEFAULT_CHANNEL;

use crate::instructions::{Instruction, InstructionKind};
use crate::ledger::{InstructionRow, Ledger, PlatformAccountRow};
use crate::outputs;
use crate::EngineError;

pub use matching::{Break, Counts, Record, Resolution, Row, Status};

/// The file reconciliation writes.
pub const RECON_FILE: &str = "recon.csv";

pub const RECON: TableSpec = TableSpec {
    name: "recon",
    columns: &[
        ("record", ColumnKind::Text),
        ("id", ColumnKind::Text),
        ("status", ColumnKind::Text),
        ("break", ColumnKind::Text),
        ("matched_by", ColumnKind::Text),
        ("currency", ColumnKind::Text),
        ("expected", ColumnKind::Text),
        ("actual", ColumnKind::Text),
        ("account", ColumnKind::Text),
        ("bank_ref", ColumnKind::Text),
        ("source", ColumnKind::Text),
        ("action", ColumnKind::Text),
        ("detail", ColumnKind::Text),
    ],
};

#[derive(Debug, Clone)]
pub struct ReconOptions {
    pub date: BusinessDate,
    pub files: Vec<PathBuf>,
    pub data_dir: PathBuf,
    /// Default: `<data_dir>/out/<date>`.
    pub out_dir: Option<PathBuf>,
}

/// How a reconciliation ended; each maps to an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconStatus {
    /// Exit 0: every instruction settled, every entry and balance accounted for.
    Clean,
    /// Exit 5: recon.csv lists the breaks.
    Breaks { count: usize },
    /// Exit 2: a bank file is unreadable or the date was never posted; nothing recorded.
    Rejected { reason: String },
}

impl ReconStatus {
    pub fn exit_code(&self) -> i32 {
        match self {
            ReconStatus::Clean => 0,
            ReconStatus::Rejected { .. } => 2,
            ReconStatus::Breaks { .. } => 5,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReconReport {
    pub status: ReconStatus,
    pub date: BusinessDate,
    /// Each file read and its kind (`camt.054.001.04`, `csv`).
    pub files: Vec<(PathBuf, String)>,
    pub counts: Counts,
    /// Every row of recon.csv, in its order.
    pub rows: Vec<Row>,
    /// Adjustment ids posted by this run (`CARRY-…`, `RET-…`).
    pub posted: Vec<String>,
    pub recon_csv: Option<PathBuf>,
    /// Every problem of the bank files, when rejected.
    pub errors: Vec<RowError>,
}

impl ReconReport {
    pub fn breaks(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.break_kind.is_some())
    }

    fn rejected(opts: &ReconOptions, reason: String, errors: Vec<RowError>) -> ReconReport {
        ReconReport {
            status: ReconStatus::Rejected { reason },
            date: opts.date,
            files: Vec::new(),
            counts: Counts::default(),
            rows: Vec::new(),
            posted: Vec::new(),
            recon_csv: None,
            errors,
        }
    }
}

/// Reconciles a posted date with the bank files. Errors are failures to run at all (I/O, a
/// broken ledger: exit 1); every outcome of the files themselves is a [`ReconReport`].
pub fn run_reconcile(opts: &ReconOptions) -> Result<ReconReport, EngineError> {
    let mut files: Vec<BankFile> = Vec::with_capacity(opts.files.len());
    let mut errors = Vec::new();
    for path in &opts.files {
        match read_bank_file(path)? {
            Ok(file) => files.push(file),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        let reason = format!(
            "{} problem(s) in the bank files; nothing recorded",
            errors.len()
        );
        return Ok(ReconReport::rejected(opts, reason, errors));
    }
    let mut ledger = Ledger::open(&opts.data_dir)?;
    if !store::is_posted(&ledger, opts.date)? {
        let reason = format!(
            "business date {} is not posted in {}",
            opts.date,
            ledger.path().display()
        );
        return Ok(ReconReport::rejected(opts, reason, Vec::new()));
    }
    let entries: Vec<BankEntry> = files.iter().flat_map(|f| f.entries.clone()).collect();
    let balances: Vec<StatementBalance> = files.iter().flat_map(|f| f.balances.clone()).collect();
    let mut refs: Vec<&str> = entries
        .iter()
        .flat_map(|e| {
            [
                e.account_servicer_ref.as_deref(),
                e.entry_ref.as_deref(),
                e.end_to_end_id.as_deref(),
            ]
        })
        .flatten()
        .collect();
    refs.sort_unstable();
    refs.dedup();
    let state = store::load(&ledger, opts.date, &refs)?;
    let expected = matching::Expected {
        date: opts.date,
        instructions: &state.instructions,
        accounts: &state.accounts,
        custody: &state.custody,
        deposits: &state.deposits,
    };
    let outcome = matching::reconcile(&expected, &entries, &balances);
    let posted = if outcome.transitions.is_empty() {
        Vec::new()
    } else {
        store::record(&mut ledger, &state, opts.date, &outcome.transitions)?
    };
    let out_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| default_out_dir(&opts.data_dir, opts.date));
    let csv = render(&outcome.rows)?;
    outputs::write_files(&out_dir, &vec![(RECON_FILE.to_string(), csv)])?;
    let count = outcome.breaks().count();
    Ok(ReconReport {
        status: if count == 0 {
            ReconStatus::Clean
        } else {
            ReconStatus::Breaks { count }
        },
        date: opts.date,
        files: files
            .iter()
            .map(|f| (f.path.clone(), f.kind.to_string()))
            .collect(),
        counts: outcome.counts,
        rows: outcome.rows,
        posted,
        recon_csv: Some(out_dir.join(RECON_FILE)),
        errors: Vec::new(),
    })
}

fn amount_text(currency: &str, minor: Option<i64>) -> String {
    match (minor, Currency::from_code(currency)) {
        (None, _) => String::new(),
        (Some(m), Some(c)) => c.format(AmountMinor(m)),
        (Some(m), None) => m.to_string(),
    }
}

/// recon.csv: one row per instruction of the date, per unmatched (or mismatched) bank entry
/// and per statement closing balance.
pub fn render(rows: &[Row]) -> Result<Vec<u8>, EngineError> {
    let mut csv = CsvTableWriter::new(RECON);
    for r in rows {
        let expected = amount_text(&r.currency, r.expected_minor);
        let actual = amount_text(&r.currency, r.actual_minor);
        csv.row(&[
            Cell::Text(r.record.as_str()),
            Cell::Text(&r.id),
            Cell::Text(&r.status),
            Cell::Text(r.break_kind.map_or("", |b| b.as_str())),
            Cell::Text(&r.matched_by),
            Cell::Text(&r.currency),
            Cell::Text(&expected),
            Cell::Text(&actual),
            Cell::Text(&r.account),
            Cell::Text(&r.bank_ref),
            Cell::Text(&r.source),
            Cell::Text(&r.action),
            Cell::Text(&r.detail),
        ])
        .map_err(|e| EngineError::Output(e.to_string()))?;
    }
    Ok(csv.finish())
}

/// An instruction as the ledger keeps it.
pub fn instruction_row(i: &Instruction) -> InstructionRow {
    InstructionRow {
        instruction_id: i.instruction_id.clone(),
        phase: i.phase,
        kind: i.kind.as_str().to_string(),
        currency: i.currency.clone(),
        amount_minor: i.amount_minor,
        debit_bank: i.debit_bank.clone(),
        debit_account: i.debit_account.clone(),
        credit_bank: i.credit_bank.clone(),
        credit_account: i.credit_account.clone(),
    }
}

/// The platform's accounts and their roles, written with each batch.
pub fn platform_account_rows(platform: &Platform) -> Vec<PlatformAccountRow> {
    let delivery_bank = &platform.delivery_bank;
    let mut rows: Vec<PlatformAccountRow> = [
        (&platform.fee_account, "fee"),
        (&platform.guarantee_account, "guarantee"),
        (&platform.suspense_account, "suspense"),
        (&platform.delivery_account, "delivery"),
    ]
    .into_iter()
    .map(|(account, role)| PlatformAccountRow {
        account: account.clone(),
        bank: delivery_bank.clone(),
        role,
    })
    .collect();
    rows.extend(platform.banks.values().map(|b| PlatformAccountRow {
        account: b.custody_account.clone(),
        bank: b.id.clone(),
        role: "custody",
    }));
    rows
}

/// The failed pay-ins, pay-outs and in-book legs that reconciliation carried, re-sent by the
/// batch of `date`: one instruction per phase, bank, currency and pair of accounts, for the
/// sum of what failed, with id `<yyyymmdd>-P<phase>-<bank>-<currency>-C` (`-C2`, `-C3`, ...
/// should the accounts of one bank have changed). `bank` is the custody side's, as in the
/// batch's own ids; the phase is the failed one's, so the delivery account still never dips.
pub fn carried_instructions(
    date: BusinessDate,
    carries: &[InstructionRow],
) -> Result<Vec<Instruction>, EngineError> {
    type Group = (u8, String, String, String, String, String, String);
    let mut groups: BTreeMap<Group, i64> = BTreeMap::new();
    for c in carries {
        let key = (
            c.phase,
            c.kind.clone(),
            c.currency.clone(),
            c.debit_bank.clone(),
            c.debit_account.clone(),
            c.credit_bank.clone(),
            c.credit_account.clone(),
        );
        let total = groups.entry(key).or_default();
        *total = total
            .checked_add(c.amount_minor)
            .ok_or_else(|| EngineError::Overflow {
                what: format!("carried amount of {}", c.instruction_id),
            })?;
    }
    let mut taken: BTreeMap<String, u32> = BTreeMap::new();
    let mut out = Vec::with_capacity(groups.len());
    for ((phase, kind, currency, debit_bank, debit_account, credit_bank, credit_account), amount) in
        groups
    {
        let kind = match kind.as_str() {
            "pay_in" => InstructionKind::PayIn,
            "pay_out" => InstructionKind::PayOut,
            "in_book" => InstructionKind::InBook,
            other => {
                return Err(EngineError::Invariant(format!(
                    "a {other} instruction cannot be carried"
                )))
            }
        };
        let bank = if phase == 1 {
            &debit_bank
        } else {
            &credit_bank
        };
        let base = format!("{}-P{phase}-{bank}-{currency}-C", date.yyyymmdd());
        let n = taken.entry(base.clone()).or_default();
        *n += 1;
        let instruction_id = if *n == 1 { base } else { format!("{base}{n}") };
        out.push(Instruction {
            instruction_id,
            phase,
            kind,
            currency,
            amount_minor: amount,
            debit_bank,
            debit_account,
            credit_bank,
            credit_account,
            channel: DEFAULT_CHANNEL.to_string(),
            creditor_name: None,
        });
    }
    Ok(out)
}

/// The default place of recon.csv for a date.
pub fn default_out_dir(data_dir: &Path, date: BusinessDate) -> PathBuf {
    data_dir.join("out").join(date.to_string())
}

#[cfg(test)]
mod tests;
