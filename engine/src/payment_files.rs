//! The batch's instructions as files a bank's gateway takes: ISO 20022 pacs.009 for the
//! pay-in, pay-out and in-book legs, pain.001 for withdrawals; one file per debtor bank and
//! phase (`pacs009-P1-B02.xml`, `pain001-P3-B01.xml`), so an operator can release phase 2 only
//! once phase 1 is confirmed.
//!
//! Input: the instructions after channel assignment, in their output order. Output: files
//! added to the batch's [`Files`], so they are stored in the ledger with the batch and a
//! re-run, or `clearhouse instructions DATE --phase N` ([`reemit`]), gives them back byte for
//! byte. The XML itself is `clearhouse_formats::iso20022`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clearhouse_formats::iso20022::{Agent, Message, Scheme, Transfer};
use clearhouse_formats::model::{BusinessDate, Platform};
use clearhouse_formats::money::{AmountMinor, Currency};

use crate::instructions::{Instruction, InstructionKind};
use crate::ledger::Ledger;
use crate::outputs::{self, Files};
use crate::EngineError;

/// The phases an instruction can have: 1 pay-in, 2 pay-out, 3 withdrawal.
pub const PHASES: std::ops::RangeInclusive<u8> = 1..=3;

fn scheme_of(kind: InstructionKind) -> Scheme {
    match kind {
        InstructionKind::Withdrawal => Scheme::Pain001,
        InstructionKind::PayIn | InstructionKind::PayOut | InstructionKind::InBook => {
            Scheme::Pacs009
        }
    }
}

/// A bank as the files name it: with its BIC when platform.toml gives one. A member's bound
/// bank is looked up among the platform's banks too, by id.
fn agent(platform: &Platform, bank: &str) -> Agent {
    Agent {
        id: bank.to_string(),
        bic: platform.banks.get(bank).and_then(|b| b.bic.clone()),
    }
}

fn transfer(platform: &Platform, i: &Instruction) -> Result<Transfer, EngineError> {
    let currency = Currency::from_code(&i.currency).ok_or_else(|| {
        EngineError::Invariant(format!(
            "instruction {} has the unknown currency {}",
            i.instruction_id, i.currency
        ))
    })?;
    Ok(Transfer {
        instruction_id: i.instruction_id.clone(),
        kind: i.kind.as_str().to_string(),
        // Without declared channels the bank's default applies: nothing is requested.
        channel: platform.channels.as_ref().map(|_| i.channel.clone()),
        currency,
        amount: AmountMinor(i.amount_minor),
        debtor_agent: agent(platform, &i.debit_bank),
        debtor_account: i.debit_account.clone(),
        creditor_agent: agent(platform, &i.credit_bank),
        creditor_account: i.credit_account.clone(),
        creditor_name: i.creditor_name.clone(),
    })
}

/// Renders one file per (scheme, phase, debtor bank) and adds them to `files`. Transfers keep
/// the order of `instructions`.
pub fn render(
    date: BusinessDate,
    platform: &Platform,
    instructions: &[Instruction],
    files: &mut Files,
) -> Result<(), EngineError> {
    let mut groups: BTreeMap<(Scheme, u8, &str), Vec<Transfer>> = BTreeMap::new();
    for i in instructions {
        assert!(
            PHASES.contains(&i.phase),
            "instruction {} has phase {}",
            i.instruction_id,
            i.phase
        );
        groups
            .entry((scheme_of(i.kind), i.phase, i.debit_bank.as_str()))
            .or_default()
            .push(transfer(platform, i)?);
    }
    for ((scheme, phase, bank), transfers) in groups {
        let message = Message {
            business_date: date,
            phase,
            debtor_agent: agent(platform, bank),
            initiating_party: platform.name.clone(),
            transfers,
        };
        files.push((scheme.file_name(phase, bank), scheme.write(&message)?));
    }
    Ok(())
}

/// What [`reemit`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reemitted {
    pub out_dir: PathBuf,
    /// File names, sorted; empty when the phase had no instruction.
    pub files: Vec<String>,
    /// The batch has instructions but stored no bank file: it was posted before bank files
    /// existed, and there is nothing to re-emit.
    pub posted_without_bank_files: bool,
}

/// `clearhouse instructions DATE --phase N`: writes the bank files of phase `phase` of a posted
/// batch to `out_dir` (default `<data_dir>/out/<date>`), exactly as the batch stored them.
pub fn reemit(
    data_dir: &Path,
    date: BusinessDate,
    phase: u8,
    out_dir: Option<&Path>,
) -> Result<Reemitted, EngineError> {
    assert!(
        PHASES.contains(&phase),
        "phase {phase} is checked by the caller"
    );
    let ledger = Ledger::open(data_dir)?;
    if ledger.posted_digest(date)?.is_none() {
        return Err(EngineError::NotPosted {
            date: date.to_string(),
            ledger: ledger.path().to_path_buf(),
        });
    }
    let stored = ledger.outputs(date)?;
    let has_bank_files = PHASES.clone().any(|p| {
        stored
            .iter()
            .any(|(name, _)| Scheme::is_file_of_phase(name, p))
    });
    // instructions.csv: a header line, then one line per instruction (ids hold no newline).
    let has_instructions = stored.iter().any(|(name, bytes)| {
        name == "instructions.csv"
            && bytes
                .split(|&b| b == b'\n')
                .nth(1)
                .is_some_and(|row| !row.is_empty())
    });
    let selected: Files = stored
        .into_iter()
        .filter(|(name, _)| Scheme::is_file_of_phase(name, phase))
        .collect();
    let out_dir = out_dir.map_or_else(
        || data_dir.join("out").join(date.to_string()),
        Path::to_path_buf,
    );
    if !selected.is_empty() {
        outputs::write_files(&out_dir, &selected)?;
    }
    Ok(Reemitted {
        out_dir,
        files: selected.into_iter().map(|(name, _)| name).collect(),
        posted_without_bank_files: has_instructions && !has_bank_files,
    })
}
