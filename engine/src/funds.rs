//! Funds in and out (SPEC §2.6, §3): deposits allocated to members, freezes and releases,
//! withdrawals to bound accounts.
//!
//! Order within a batch: deposits, then freezes and unfreezes in file order (before netting and
//! the funding check, so frozen money cannot pay for trades), then after posting the
//! withdrawals in file order. Input: the day's fund events, what the ledger already holds
//! about them ([`FundHistory`]) and the book. Output: entries on the book and [`FundEffects`]:
//! the outside money per custody account, the refused requests, and what the ledger must
//! remember.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clearhouse_formats::model::{
    Deposit, DepositChannel, FreezeAction, FreezeEvent, Location, MemberStatus, RowError,
    Withdrawal,
};
use clearhouse_formats::money::AmountMinor;

use crate::book::{kind, Book, FreezeRefusal};
use crate::reference::RefData;
use crate::EngineError;

/// A deposit the ledger has booked, as far as telling a re-sent notification from a
/// conflicting one needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedDeposit {
    pub business_date: String,
    pub fingerprint: String,
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeRecord {
    pub member_id: String,
    pub currency: String,
    pub amount_minor: i64,
    pub released: bool,
}

/// What the ledger already holds about the ids of today's fund events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FundHistory {
    pub deposits: BTreeMap<String, BookedDeposit>,
    /// request id → business date it was paid on.
    pub withdrawals: BTreeMap<String, String>,
    pub freezes: BTreeMap<String, FreezeRecord>,
}

/// What a deposit's content is, for idempotency across days: the same `bank_ref` with the same
/// fingerprint is the same deposit.
pub fn deposit_fingerprint(d: &Deposit) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        d.bank,
        d.payer_bank,
        d.payer_account,
        d.payer_name,
        d.currency.code(),
        d.amount.0,
        d.memo,
        d.channel.as_str()
    )
}

/// A deposit booked today, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub deposit: Deposit,
    pub account: String,
    /// `bound_account`, `deposit_code` or `suspense`.
    pub matched_by: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedFreeze {
    pub freeze_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct FundEffects {
    pub allocations: Vec<Allocation>,
    /// Notifications of deposits booked earlier (today or before): counted once.
    pub duplicate_deposits: u64,
    /// `(member, currency)` → today's `online` deposits, not yet withdrawable.
    pub online_today: BTreeMap<(String, String), i64>,
    /// `(bank, currency)` → real money that entered (+) or left (−) the custody account.
    pub outside: BTreeMap<(String, String), i64>,
    pub freezes_applied: Vec<FreezeEvent>,
    pub freezes_released: Vec<ReleasedFreeze>,
    pub withdrawals_paid: Vec<Withdrawal>,
    /// Refused freezes, unfreezes and withdrawals: listed in rejects.csv, the batch goes on.
    pub refused: Vec<RowError>,
}

/// Invalid fund-event rows, which reject the day like any bad input: an unknown bank or
/// member, a deposit re-using a booked `bank_ref` with other content.
pub fn check_fund_events(
    refs: &RefData,
    history: &FundHistory,
    deposits: &[Deposit],
    withdrawals: &[Withdrawal],
    freezes: &[FreezeEvent],
    files: &FundFiles<'_>,
) -> Vec<RowError> {
    let mut errors = Vec::new();
    for d in deposits {
        let at = Location::new(files.deposits, d.line);
        if !refs.platform.banks.contains_key(&d.bank) {
            errors.push(RowError::new(
                at.clone(),
                &d.bank_ref,
                "bank",
                &d.bank,
                "is not a bank of platform.toml [banks]",
            ));
        }
        if let Some(booked) = history.deposits.get(&d.bank_ref) {
            if booked.fingerprint != deposit_fingerprint(d) {
                errors.push(RowError::new(
                    at,
                    &d.bank_ref,
                    "bank_ref",
                    &d.bank_ref,
                    format!("was booked on {} with other content", booked.business_date),
                ));
            }
        }
    }
    let mut member_check = |file: &Path, line: u64, id: &str, member: &str| {
        if refs.member_idx(member).is_none() {
            errors.push(RowError::new(
                Location::new(file, line),
                id,
                "member_id",
                member,
                "is not in members.csv",
            ));
        }
    };
    for w in withdrawals {
        member_check(files.withdrawals, w.line, &w.request_id, &w.member_id);
    }
    for f in freezes {
        member_check(files.freezes, f.line, &f.freeze_id, &f.member_id);
    }
    errors
}

/// The fund-event files, for the places in messages.
#[derive(Debug, Clone, Copy)]
pub struct FundFiles<'a> {
    pub deposits: &'a Path,
    pub withdrawals: &'a Path,
    pub freezes: &'a Path,
}

/// The words of a memo: maximal runs of id characters, so `ALP001` matches in
/// `"top-up ALP001, thanks"` but not in `"XALP001"`.
fn memo_words(memo: &str) -> impl Iterator<Item = &str> {
    memo.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| !w.is_empty())
}

/// Whom a deposit belongs to: the one member whose bound account sent it; else the one member
/// whose deposit code is a word of the memo; else the suspense account. Ambiguity (two members
/// bound to one account) is not guessed at: it goes to suspense. Closed members receive
/// nothing automatically.
pub fn allocate(refs: &RefData, d: &Deposit) -> (String, &'static str) {
    let eligible = |m: &&clearhouse_formats::model::Member| m.status != MemberStatus::Closed;
    let bound: Vec<_> = refs
        .members
        .iter()
        .filter(eligible)
        .filter(|m| m.bound_account == d.payer_account && m.bound_bank == d.payer_bank)
        .collect();
    if let [member] = bound.as_slice() {
        return (member.member_id.clone(), "bound_account");
    }
    if bound.is_empty() {
        let words: BTreeSet<&str> = memo_words(&d.memo).collect();
        let coded: Vec<_> = refs
            .members
            .iter()
            .filter(eligible)
            .filter(|m| m.deposit_code.as_deref().is_some_and(|c| words.contains(c)))
            .collect();
        if let [member] = coded.as_slice() {
            return (member.member_id.clone(), "deposit_code");
        }
    }
    (refs.platform.suspense_account.clone(), "suspense")
}

/// Books today's new deposits: `DEP-<bank_ref>`, the custody account at `bank` as the
/// external counter-leg.
pub fn apply_deposits(
    refs: &RefData,
    deposits: &[Deposit],
    history: &FundHistory,
    book: &mut Book,
    effects: &mut FundEffects,
) -> Result<(), EngineError> {
    for d in deposits {
        if history.deposits.contains_key(&d.bank_ref) {
            effects.duplicate_deposits += 1;
            continue;
        }
        let (account, matched_by) = allocate(refs, d);
        let currency = d.currency.code().to_string();
        let custody = refs.platform.banks[&d.bank].custody_account.clone();
        book.post(
            &format!("DEP-{}", d.bank_ref),
            kind::DEPOSIT,
            &[
                (account.clone(), currency.clone(), d.amount.0),
                (custody, currency.clone(), -d.amount.0),
            ],
        )?;
        *effects
            .outside
            .entry((d.bank.clone(), currency.clone()))
            .or_default() += d.amount.0;
        if d.channel == DepositChannel::Online {
            *effects
                .online_today
                .entry((account.clone(), currency))
                .or_default() += d.amount.0;
        }
        effects.allocations.push(Allocation {
            deposit: d.clone(),
            account,
            matched_by,
        });
    }
    Ok(())
}

/// Applies freezes and releases in file order. A refused one is listed and skipped.
pub fn apply_freezes(
    refs: &RefData,
    events: &[FreezeEvent],
    history: &FundHistory,
    book: &mut Book,
    effects: &mut FundEffects,
    file: &Path,
) {
    let mut today: BTreeMap<String, FreezeRecord> = BTreeMap::new();
    for e in events {
        let currency = e.currency.code().to_string();
        let format = |minor: i64| e.currency.format(AmountMinor(minor));
        let known = today
            .get(&e.freeze_id)
            .or_else(|| history.freezes.get(&e.freeze_id))
            .cloned();
        let refusal = match e.action {
            FreezeAction::Freeze => match known {
                Some(_) => Some("freeze_id is already used by another freeze".to_string()),
                None => match book.freeze(&e.member_id, &currency, e.amount.0) {
                    Ok(()) => None,
                    Err(FreezeRefusal::NotAvailable { available_minor }) => Some(format!(
                        "freeze of {} {currency} exceeds the available balance {}",
                        format(e.amount.0),
                        format(available_minor.max(0))
                    )),
                    Err(FreezeRefusal::NotFrozen { .. }) => Some("nothing to freeze".to_string()),
                },
            },
            FreezeAction::Unfreeze => match known {
                None => Some("unfreeze of an unknown freeze_id".to_string()),
                Some(r) if r.released => Some("freeze_id was already released".to_string()),
                Some(r)
                    if r.member_id != e.member_id
                        || r.currency != currency
                        || r.amount_minor != e.amount.0 =>
                {
                    Some(format!(
                        "unfreeze must name the freeze whole: {} {} {} was frozen",
                        r.member_id,
                        format(r.amount_minor),
                        r.currency
                    ))
                }
                Some(_) => match book.freeze(&e.member_id, &currency, -e.amount.0) {
                    Ok(()) => None,
                    Err(_) => Some("the frozen balance is smaller than the release".to_string()),
                },
            },
        };
        if let Some(reason) = refusal {
            effects.refused.push(RowError::new(
                Location::new(file, e.line),
                &e.freeze_id,
                "",
                "",
                reason,
            ));
            continue;
        }
        match e.action {
            FreezeAction::Freeze => {
                today.insert(
                    e.freeze_id.clone(),
                    FreezeRecord {
                        member_id: e.member_id.clone(),
                        currency,
                        amount_minor: e.amount.0,
                        released: false,
                    },
                );
                effects.freezes_applied.push(e.clone());
            }
            FreezeAction::Unfreeze => {
                if let Some(r) = today.get_mut(&e.freeze_id) {
                    r.released = true;
                } else {
                    let mut r = history.freezes[&e.freeze_id].clone();
                    r.released = true;
                    today.insert(e.freeze_id.clone(), r);
                }
                effects.freezes_released.push(ReleasedFreeze {
                    freeze_id: e.freeze_id.clone(),
                });
            }
        }
    }
    let _ = refs;
}

/// What a member may withdraw now: balance − frozen − today's online deposits, at least 0.
pub fn withdrawable_minor(
    book: &Book,
    effects: &FundEffects,
    account: &str,
    currency: &str,
) -> i64 {
    let online = effects
        .online_today
        .get(&(account.to_string(), currency.to_string()))
        .copied()
        .unwrap_or(0);
    (book.available(account, currency) - online).max(0)
}

/// Pays withdrawals in file order from the withdrawable balance after posting, whole or not at
/// all: `WDR-<request_id>`, the custody account at the member's settlement bank as the
/// external counter-leg.
pub fn apply_withdrawals(
    refs: &RefData,
    withdrawals: &[Withdrawal],
    history: &FundHistory,
    book: &mut Book,
    effects: &mut FundEffects,
    file: &Path,
) -> Result<(), EngineError> {
    for w in withdrawals {
        let currency = w.currency.code().to_string();
        let member = refs.member(
            refs.member_idx(&w.member_id)
                .expect("checked before posting"),
        );
        let refuse = |effects: &mut FundEffects, reason: String| {
            effects.refused.push(RowError::new(
                Location::new(file, w.line),
                &w.request_id,
                "",
                "",
                reason,
            ));
        };
        if let Some(date) = history.withdrawals.get(&w.request_id) {
            refuse(effects, format!("request_id was already paid on {date}"));
            continue;
        }
        let withdrawable = withdrawable_minor(book, effects, &w.member_id, &currency);
        if w.amount.0 > withdrawable {
            refuse(
                effects,
                format!(
                    "amount {} {currency} exceeds the withdrawable balance {}",
                    w.currency.format(w.amount),
                    w.currency.format(AmountMinor(withdrawable))
                ),
            );
            continue;
        }
        let bank = member.settlement_bank.clone();
        let custody = refs.platform.banks[&bank].custody_account.clone();
        book.post(
            &format!("WDR-{}", w.request_id),
            kind::WITHDRAWAL,
            &[
                (w.member_id.clone(), currency.clone(), -w.amount.0),
                (custody, currency.clone(), w.amount.0),
            ],
        )?;
        *effects.outside.entry((bank, currency)).or_default() -= w.amount.0;
        effects.withdrawals_paid.push(w.clone());
    }
    Ok(())
}
