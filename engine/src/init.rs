//! `clearhouse init REF_DIR --data-dir D`: reference data into the data directory, and the
//! opening of a new ledger.
//!
//! REF_DIR is a day directory without trades: platform.toml (else the data directory's),
//! members.csv, instruments.csv, and for a new ledger opening_balances.csv and
//! opening_positions.csv. Everything is read and checked with the readers and checks of
//! `clearhouse run` (`day::load_reference`, `day::check_openings`, plus the `[[tokens]]` of
//! platform.toml); any problem changes nothing.
//!
//! Then, on a new ledger, the opening files are posted as the opening of the ledger with the
//! batch's own posting code (`posting::post_opening`: one `OPEN-<bank>-<currency>` entry per
//! bank and currency against the custody account, `OPENPOS-<instrument>` against the
//! depository), in one transaction, before any business date. The first session's batch then
//! starts from those balances, exactly as a `clearhouse run` day after it would. On a ledger
//! that holds anything, opening files are ignored (and reported): running `init` again
//! updates the reference data, never balances.
//!
//! Last, the three reference files are copied into the data directory (each atomically). The
//! next session opened takes them; an open session keeps the snapshot it was opened with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clearhouse_formats::model::{Location, RowError};
use clearhouse_formats::tokens::read_tokens;

use crate::book::Book;
use crate::datadir::{write_atomic, DataDir, REFERENCE_FILES};
use crate::day::{check_openings, load_reference, DayFiles, Openings};
use crate::ledger::{Ledger, OpeningWrite, Snapshot};
use crate::posting::{post_opening, DEPOSITORY};
use crate::reference::RefData;
use crate::EngineError;

/// What `init` did with the opening files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpeningOutcome {
    /// No opening file in REF_DIR.
    NoneGiven,
    /// Posted as the opening of the new ledger.
    Posted { balances: usize, positions: usize },
    /// The ledger already holds balances: the opening files were not applied.
    IgnoredLedgerInUse,
}

#[derive(Debug, Clone)]
pub struct InitReport {
    /// Every problem found; when not empty nothing was changed.
    pub rejects: Vec<RowError>,
    pub members: usize,
    pub instruments: usize,
    pub tokens: usize,
    pub opening: OpeningOutcome,
}

impl InitReport {
    pub fn is_ok(&self) -> bool {
        self.rejects.is_empty()
    }
}

/// Runs `init`; takes the data directory's lock for its duration.
pub fn init(ref_dir: &Path, data: &DataDir) -> Result<InitReport, EngineError> {
    let _lock = data.lock()?;
    let files = DayFiles::discover(ref_dir, data.root())?;
    let mut report = InitReport {
        rejects: Vec::new(),
        members: 0,
        instruments: 0,
        tokens: 0,
        opening: OpeningOutcome::NoneGiven,
    };
    let required = [
        (&files.platform, "platform.toml"),
        (&files.members, "members.csv"),
        (&files.instruments, "instruments.csv"),
    ];
    for (file, name) in required {
        if file.is_none() {
            report.rejects.push(RowError::new(
                Location::new(ref_dir.join(name), 0),
                "",
                "",
                "",
                format!("required file {name} is missing from the reference directory"),
            ));
        }
    }
    if !report.is_ok() {
        return Ok(report);
    }
    let (refs, openings) = match load_reference(&files)? {
        Ok(loaded) => loaded,
        Err(errors) => {
            report.rejects = errors;
            return Ok(report);
        }
    };
    report.rejects.extend(check_openings(&refs, &openings));
    let platform_path = files.platform.as_ref().expect("checked above");
    match read_tokens(platform_path)? {
        Ok(tokens) => report.tokens = tokens.len(),
        Err(errors) => report.rejects.extend(errors),
    }
    if !report.is_ok() {
        return Ok(report);
    }
    report.members = refs.members.len();
    report.instruments = refs.instruments.len();

    let given = openings.balances_file.is_some() || openings.positions_file.is_some();
    if given {
        let mut ledger = Ledger::open(data.root())?;
        if ledger.snapshot()?.is_new() {
            ledger.commit_opening(&opening_write(&refs, &openings)?)?;
            report.opening = OpeningOutcome::Posted {
                balances: openings.balances.len(),
                positions: openings.positions.len(),
            };
        } else {
            report.opening = OpeningOutcome::IgnoredLedgerInUse;
        }
    }
    let sources = [
        files.platform.as_ref(),
        files.members.as_ref(),
        files.instruments.as_ref(),
    ];
    for (name, from) in REFERENCE_FILES.iter().zip(sources) {
        let from = from.expect("checked above");
        let to = data.reference_file(name);
        if from == &to {
            continue;
        }
        let bytes = std::fs::read(from).map_err(|e| EngineError::io(from, e))?;
        write_atomic(&to, &bytes)?;
    }
    Ok(report)
}

/// The opening entries and the state they give, computed on an empty book with the batch's
/// posting code.
fn opening_write(refs: &RefData, openings: &Openings) -> Result<OpeningWrite, EngineError> {
    let mut external: BTreeSet<String> = refs
        .platform
        .banks
        .values()
        .map(|b| b.custody_account.clone())
        .collect();
    external.insert(DEPOSITORY.to_string());
    let mut book = Book::from_snapshot(&Snapshot::default(), external);
    post_opening(refs, &openings.balances, &openings.positions, &mut book)?;
    // The money is outside money that arrived in the custody accounts: each custody account
    // holds exactly the virtual balances at its bank (the custody invariant).
    let mut custody: BTreeMap<(String, String), i64> = BTreeMap::new();
    for b in &openings.balances {
        let bank = refs.bank_of(&b.account).ok_or_else(|| {
            EngineError::Invariant(format!("opening balance of unknown account {}", b.account))
        })?;
        let slot = custody
            .entry((bank.to_string(), b.currency.code().to_string()))
            .or_default();
        *slot = slot
            .checked_add(b.balance.0)
            .ok_or_else(|| EngineError::Overflow {
                what: format!("opening custody balance of bank {bank}"),
            })?;
    }
    let account_banks = refs
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.settlement_bank.clone()))
        .chain(
            refs.platform
                .platform_accounts()
                .iter()
                .map(|a| (a.to_string(), refs.platform.delivery_bank.clone())),
        )
        .collect();
    Ok(OpeningWrite {
        account_banks,
        balances: book.changed_balances(),
        positions: book.changed_positions(),
        custody,
        entries: book.into_legs(),
    })
}
