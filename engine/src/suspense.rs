//! `clearhouse suspense assign BANK_REF MEMBER`: an unallocated deposit (booked to the
//! suspense account, 挂账) handed to its owner once someone has found out whose it is.
//!
//! One ledger transaction, on the version read: entry `SUS-<bank_ref>` of kind
//! `suspense_assign` (suspense −amount, member +amount), both balances, the deposit row
//! (`account` = the member, `matched_by` = `suspense_assign`) and an audit record in
//! `adjustments`. The entry is recorded under the ledger's last posted business date, whose
//! closing balances it changes.
//!
//! The suspense account is held at the delivery bank; the member's money may be held at
//! another bank. The assignment moves no real money itself: the next batch's bank nets
//! (`banks::aggregate`, Σ virtual balances per bank against the custody balances) include the
//! move and instruct it. Until then the custody invariant holds per currency across banks,
//! not per bank.

use std::path::Path;

use clearhouse_formats::money::{AmountMinor, Currency};

use crate::book::kind;
use crate::ledger::Ledger;
use crate::EngineError;

/// How an assignment ended; each maps to an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignStatus {
    /// Exit 0: posted.
    Assigned,
    /// Exit 0: this deposit was already assigned to this member; nothing changed.
    AlreadyAssigned,
    /// Exit 2: an unknown bank reference or member; nothing changed.
    Rejected { reason: String },
    /// Exit 4: the deposit is not in suspense (allocated on arrival, or assigned to someone
    /// else), or the suspense account no longer holds the amount; nothing changed.
    Conflict { reason: String },
}

impl AssignStatus {
    pub fn exit_code(&self) -> i32 {
        match self {
            AssignStatus::Assigned | AssignStatus::AlreadyAssigned => 0,
            AssignStatus::Rejected { .. } => 2,
            AssignStatus::Conflict { .. } => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignReport {
    pub status: AssignStatus,
    pub bank_ref: String,
    pub member: String,
    /// `50.00 CNY`, once the deposit is known.
    pub amount: Option<String>,
    pub from_account: Option<String>,
    pub from_bank: Option<String>,
    pub to_bank: Option<String>,
    /// The business date the entry is recorded under.
    pub business_date: Option<String>,
}

/// The deposit as booked.
struct Booked {
    business_date: String,
    bank: String,
    currency: String,
    amount_minor: i64,
    account: String,
    matched_by: String,
}

pub fn assign(data_dir: &Path, bank_ref: &str, member: &str) -> Result<AssignReport, EngineError> {
    let mut report = AssignReport {
        status: AssignStatus::Assigned,
        bank_ref: bank_ref.to_string(),
        member: member.to_string(),
        amount: None,
        from_account: None,
        from_bank: None,
        to_bank: None,
        business_date: None,
    };
    let mut ledger = Ledger::open(data_dir)?;
    let Some(conn) = ledger.connection() else {
        report.status = AssignStatus::Rejected {
            reason: format!(
                "no ledger in {}: nothing was ever posted there",
                data_dir.display()
            ),
        };
        return Ok(report);
    };
    let version = ledger.version()?;
    let e = |source| ledger.error(source);
    let booked: Option<Booked> = conn
        .query_opt(
            "SELECT business_date, bank, currency, amount_minor, account, matched_by
             FROM deposits WHERE bank_ref = ?1",
            &[&bank_ref],
        )
        .and_then(|row| {
            row.map(|r| {
                Ok(Booked {
                    business_date: r.get(0)?,
                    bank: r.get(1)?,
                    currency: r.get(2)?,
                    amount_minor: r.get(3)?,
                    account: r.get(4)?,
                    matched_by: r.get(5)?,
                })
            })
            .transpose()
        })
        .map_err(e)?;
    let Some(booked) = booked else {
        report.status = AssignStatus::Rejected {
            reason: format!("no deposit with bank_ref {bank_ref} was ever booked"),
        };
        return Ok(report);
    };
    let currency = Currency::from_code(&booked.currency).ok_or_else(|| {
        EngineError::Invariant(format!(
            "deposit {bank_ref} is in unknown currency {}",
            booked.currency
        ))
    })?;
    let amount = format!(
        "{} {}",
        currency.format(AmountMinor(booked.amount_minor)),
        booked.currency
    );
    report.amount = Some(amount.clone());
    // Every member is registered with its bank by each batch; platform accounts are not
    // members and cannot own a deposit.
    let to_bank: Option<String> = conn
        .query_opt(
            "SELECT a.bank FROM accounts a WHERE a.account = ?1
             AND NOT EXISTS (SELECT 1 FROM platform_accounts p WHERE p.account = a.account)",
            &[&member],
        )
        .and_then(|row| row.map(|r| r.get(0)).transpose())
        .map_err(e)?;
    let Some(to_bank) = to_bank else {
        report.status = AssignStatus::Rejected {
            reason: format!("{member} is not a member known to the ledger"),
        };
        return Ok(report);
    };
    report.to_bank = Some(to_bank.clone());
    if booked.matched_by == "suspense_assign" && booked.account == member {
        report.status = AssignStatus::AlreadyAssigned;
        return Ok(report);
    }
    if booked.matched_by != "suspense" {
        report.status = AssignStatus::Conflict {
            reason: format!(
                "deposit {bank_ref} is not in suspense: it was allocated to {} (by {})",
                booked.account, booked.matched_by
            ),
        };
        return Ok(report);
    }
    let suspense = booked.account.clone();
    let from_bank: String = conn
        .query_one("SELECT bank FROM accounts WHERE account = ?1", &[&suspense])
        .and_then(|r| r.get(0))
        .map_err(e)?;
    report.from_account = Some(suspense.clone());
    report.from_bank = Some(from_bank.clone());
    let available: i64 = conn
        .query_opt(
            "SELECT balance_minor - frozen_minor FROM balances
             WHERE account = ?1 AND currency = ?2",
            &[&suspense, &booked.currency],
        )
        .and_then(|row| row.map(|r| r.get(0)).transpose())
        .map_err(e)?
        .unwrap_or(0);
    if available < booked.amount_minor {
        report.status = AssignStatus::Conflict {
            reason: format!(
                "suspense account {suspense} holds {} {} available, less than the deposit's {amount}",
                currency.format(AmountMinor(available)),
                booked.currency
            ),
        };
        return Ok(report);
    }
    let date: String = conn
        .query_one("SELECT max(business_date) FROM batches", &[])
        .and_then(|r| r.get(0))
        .map_err(e)?;
    report.business_date = Some(date.clone());
    let entry_id = format!("SUS-{bank_ref}");
    let detail = format!(
        "deposit {bank_ref} of {amount} booked {} at {} to {suspense}@{from_bank}, assigned to \
         {member}@{to_bank}",
        booked.business_date, booked.bank
    );
    ledger.write(version, |tx| {
        let legs = [
            (suspense.as_str(), -booked.amount_minor),
            (member, booked.amount_minor),
        ];
        for (account, amount) in legs {
            tx.execute(
                "INSERT INTO entries (business_date, entry_id, kind, account, asset, amount)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[
                    &date,
                    &entry_id,
                    &kind::SUSPENSE_ASSIGN,
                    &account,
                    &booked.currency,
                    &amount,
                ],
            )?;
            tx.execute(
                "INSERT INTO balances (account, currency, balance_minor, frozen_minor)
                 VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT (account, currency) DO UPDATE
                 SET balance_minor = balances.balance_minor + excluded.balance_minor",
                &[&account, &booked.currency, &amount],
            )?;
        }
        tx.execute_one(
            "UPDATE deposits SET account = ?2, matched_by = 'suspense_assign'
             WHERE bank_ref = ?1 AND matched_by = 'suspense'",
            &[&bank_ref, &member],
        )?;
        tx.execute(
            "INSERT INTO adjustments (adjustment_id, kind, business_date, detail)
             VALUES (?1, ?2, ?3, ?4)",
            &[&entry_id, &kind::SUSPENSE_ASSIGN, &date, &detail],
        )?;
        Ok(())
    })?;
    Ok(report)
}
