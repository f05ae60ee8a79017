//! Posting: turns the nets into double-entry ledger entries on the book, and applies the
//! shortfall policy.
//!
//! Input: reference data, nets, shortfalls and the book before posting. Output: the book after
//! posting (its legs are postings.csv) and the defaults the guarantee account covered.
//! Entry ids are deterministic: `TRD-<currency>`, `FEE-<currency>`, `SEC-<instrument>`,
//! `COV-<currency>-<member>`, `WHD-<instrument>-<member>`, `OPEN-<bank>-<currency>`,
//! `OPENPOS-<instrument>`.

use std::collections::BTreeMap;

use clearhouse_formats::model::{OpeningBalance, OpeningPosition, ShortfallPolicy};

use crate::book::{kind, AccountId, AssetId, Book, Leg, LegIds};
use crate::funding::{Shortfall, ShortfallAsset, ShortfallKind};
use crate::netting::Nets;
use crate::reference::RefData;
use crate::EngineError;

/// A shortfall that the guarantee account covered under policy `cover` (defaults.csv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Default {
    pub shortfall: Shortfall,
    /// Securities: the member's bought quantity in the instrument, withheld from it.
    pub withheld_quantity: i64,
}

/// Why a batch cannot be posted under the platform's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostingRefusal {
    /// Policy `abort` and at least one shortfall.
    Shortfalls,
    /// Policy `cover`, but the guarantee account cannot pay all cash shortfalls in a currency.
    GuaranteeShort {
        currency: String,
        needed_minor: i64,
        available_minor: i64,
    },
}

/// Opening balances of a new ledger: outside money that arrives in the custody accounts.
/// One entry per bank and currency, the custody account as the counter-leg.
pub fn post_opening(
    refs: &RefData,
    balances: &[OpeningBalance],
    positions: &[OpeningPosition],
    book: &mut Book,
) -> Result<(), EngineError> {
    let mut by_bank: BTreeMap<(String, String), Vec<Leg>> = BTreeMap::new();
    for b in balances {
        let bank = refs.bank_of(&b.account).ok_or_else(|| {
            EngineError::Invariant(format!("opening balance of unknown account {}", b.account))
        })?;
        by_bank
            .entry((bank.to_string(), b.currency.code().to_string()))
            .or_default()
            .push((
                b.account.clone(),
                b.currency.code().to_string(),
                b.balance.0,
            ));
    }
    for ((bank, currency), mut legs) in by_bank {
        let custody = &refs.platform.banks[&bank].custody_account;
        let counter = counter_leg(&legs, || {
            format!("opening balances at {bank} in {currency}")
        })?;
        legs.push((custody.clone(), currency.clone(), counter));
        book.post(&format!("OPEN-{bank}-{currency}"), kind::OPENING, &legs)?;
    }
    let mut by_instrument: BTreeMap<&str, Vec<Leg>> = BTreeMap::new();
    for p in positions {
        by_instrument.entry(&p.instrument).or_default().push((
            p.member_id.clone(),
            p.instrument.clone(),
            p.quantity,
        ));
    }
    for (instrument, mut legs) in by_instrument {
        // Securities come from outside the ledger, from the depository: its external account
        // is the counter-leg, as the custody account is for money.
        let counter = counter_leg(&legs, || format!("opening positions in {instrument}"))?;
        legs.push((DEPOSITORY.to_string(), instrument.to_string(), counter));
        book.post(
            &format!("OPENPOS-{instrument}"),
            kind::OPENING_POSITION,
            &legs,
        )?;
    }
    Ok(())
}

/// The amount of the counter-leg that balances `legs`: minus their sum. `check_openings`
/// refuses openings whose totals overflow; this keeps the posting itself from ever wrapping
/// or panicking.
fn counter_leg(legs: &[Leg], what: impl Fn() -> String) -> Result<i64, EngineError> {
    legs.iter()
        .try_fold(0i64, |sum, l| sum.checked_add(l.2))
        .and_then(i64::checked_neg)
        .ok_or_else(|| EngineError::Overflow { what: what() })
}

/// The external counter-account of opening positions: the securities depository.
pub const DEPOSITORY: &str = "@DEPOSITORY";

/// Posts the day's nets. Under `abort`, any shortfall refuses the batch; under `cover`, the
/// guarantee account pays each cash shortfall and delivers each securities shortfall.
pub fn post_nets(
    refs: &RefData,
    nets: &Nets,
    shortfalls: &[Shortfall],
    book: &mut Book,
) -> Result<Result<Vec<Default>, PostingRefusal>, EngineError> {
    let policy = refs.platform.shortfall_policy;
    if !shortfalls.is_empty() && policy == ShortfallPolicy::Abort {
        return Ok(Err(PostingRefusal::Shortfalls));
    }
    if let Some(refusal) = guarantee_refusal(refs, shortfalls, book) {
        return Ok(Err(refusal));
    }
    // Accounts and assets by id: the securities entries of a large market have millions of
    // legs, and none of them should cost a string.
    let members: Vec<AccountId> = refs
        .members
        .iter()
        .map(|m| book.account_id(&m.member_id))
        .collect();
    let instruments: Vec<AssetId> = refs
        .instruments
        .iter()
        .map(|i| book.asset_id(&i.instrument))
        .collect();
    let fee_account = book.account_id(&refs.platform.fee_account);
    // Trade and fee legs per cash net (plus the fee account's), a leg per quantity net.
    book.reserve_legs(2 * nets.cash.len() + refs.currencies.len() + nets.qty.len());
    for (ci, currency) in refs.currencies.iter().enumerate() {
        let code = currency.code();
        let asset = book.asset_id(code);
        let rows = nets.cash.iter().filter(|n| n.currency.0 as usize == ci);
        let trade_legs: Vec<LegIds> = rows
            .clone()
            .map(|n| {
                (
                    members[n.member.0 as usize],
                    asset,
                    n.sold_minor - n.bought_minor,
                )
            })
            .collect();
        if trade_legs.is_empty() {
            continue;
        }
        book.post_ids(&format!("TRD-{code}"), kind::TRADE, &trade_legs)?;
        let mut fee_legs: Vec<LegIds> = rows
            .map(|n| (members[n.member.0 as usize], asset, -n.fees_minor))
            .collect();
        fee_legs.push((fee_account, asset, nets.fee_totals_minor[ci]));
        book.post_ids(&format!("FEE-{code}"), kind::FEE, &fee_legs)?;
    }
    let mut per_instrument = vec![0usize; refs.instruments.len()];
    for n in &nets.qty {
        per_instrument[n.instrument.0 as usize] += 1;
    }
    let mut by_instrument: Vec<Vec<LegIds>> =
        per_instrument.into_iter().map(Vec::with_capacity).collect();
    for n in &nets.qty {
        let i = n.instrument.0 as usize;
        by_instrument[i].push((members[n.member.0 as usize], instruments[i], n.net));
    }
    for (i, legs) in by_instrument.iter().enumerate() {
        if !legs.is_empty() {
            let entry_id = format!("SEC-{}", refs.instruments[i].instrument);
            book.post_ids(&entry_id, kind::SECURITIES, legs)?;
        }
    }
    let member_id = |idx| refs.member(idx).member_id.clone();
    let mut defaults = Vec::new();
    let guarantee = &refs.platform.guarantee_account;
    for s in shortfalls {
        let member = member_id(s.member);
        let (entry_id, entry_kind, asset, withheld) = match s.asset {
            ShortfallAsset::Currency(c) => {
                let code = refs.currency(c).code().to_string();
                (format!("COV-{code}-{member}"), kind::COVER, code, 0)
            }
            ShortfallAsset::Instrument(i) => {
                let instrument = refs.instrument(i).instrument.clone();
                let bought = nets
                    .qty
                    .iter()
                    .find(|n| n.member == s.member && n.instrument == i)
                    .map_or(0, |n| n.bought);
                (
                    format!("WHD-{instrument}-{member}"),
                    kind::WITHHOLD,
                    instrument,
                    bought,
                )
            }
        };
        book.post(
            &entry_id,
            entry_kind,
            &[
                (guarantee.clone(), asset.clone(), -s.shortfall),
                (member, asset, s.shortfall),
            ],
        )?;
        defaults.push(Default {
            shortfall: *s,
            withheld_quantity: withheld,
        });
    }
    check_no_overdraft(refs, nets, book, &members, &instruments)?;
    Ok(Ok(defaults))
}

/// Under `cover`, the guarantee account must hold enough available cash for every cash
/// shortfall of a currency; it cannot conjure money the custody accounts do not hold.
fn guarantee_refusal(
    refs: &RefData,
    shortfalls: &[Shortfall],
    book: &Book,
) -> Option<PostingRefusal> {
    let mut needed: BTreeMap<u32, i64> = BTreeMap::new();
    for s in shortfalls {
        if let (ShortfallKind::Cash, ShortfallAsset::Currency(c)) = (s.kind, s.asset) {
            *needed.entry(c.0).or_default() += s.shortfall;
        }
    }
    needed.into_iter().find_map(|(c, needed_minor)| {
        let currency = refs.currencies[c as usize].code().to_string();
        let available_minor = book.available(&refs.platform.guarantee_account, &currency);
        (available_minor < needed_minor).then_some(PostingRefusal::GuaranteeShort {
            currency,
            needed_minor,
            available_minor,
        })
    })
}

/// After posting, no member that traded may be left with less than its frozen money, nor
/// (with the securities check) a negative position: the funding check guarantees it, this
/// asserts it.
fn check_no_overdraft(
    refs: &RefData,
    nets: &Nets,
    book: &Book,
    members: &[AccountId],
    instruments: &[AssetId],
) -> Result<(), EngineError> {
    for n in &nets.cash {
        let member = &refs.member(n.member).member_id;
        let currency = refs.currency(n.currency);
        if book.available(member, currency.code()) < 0 {
            return Err(EngineError::Invariant(format!(
                "member {member} left overdrawn in {currency} after posting"
            )));
        }
    }
    if refs.platform.securities_check {
        for n in &nets.qty {
            let position = book.position_of(
                members[n.member.0 as usize],
                instruments[n.instrument.0 as usize],
            );
            if position < 0 {
                let member = &refs.member(n.member).member_id;
                let instrument = &refs.instrument(n.instrument).instrument;
                return Err(EngineError::Invariant(format!(
                    "member {member} left short in {instrument} after posting"
                )));
            }
        }
    }
    Ok(())
}
