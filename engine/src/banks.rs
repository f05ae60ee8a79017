//! Bank aggregation (SPEC §3, bank net): per bank and currency, how much real money must move
//! between the platform's custody account there and the delivery account so that the custody
//! invariant (Σ virtual balances held at a bank = the custody account's real balance) holds
//! again after the batch.
//!
//! Input: the book after posting, the custody balances before the batch and the outside money
//! that reached the custody accounts during it (opening balances, deposits, withdrawals).
//! Output: the non-zero bank nets, sorted by bank and currency, and the custody balances the
//! ledger expects once the instructions settle.

use std::collections::BTreeMap;

use crate::book::Book;
use crate::EngineError;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BankNet {
    pub bank: String,
    /// Currency code.
    pub currency: String,
    /// > 0: the bank's custody account receives (pay-out); < 0: it pays in.
    pub net_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAggregation {
    pub nets: Vec<BankNet>,
    /// `(bank, currency)` → expected real custody balance after settlement.
    pub custody_after: BTreeMap<(String, String), i64>,
}

/// `bank_of` names the bank holding an account's money; `outside` is the real money that
/// entered (+) or left (−) each custody account during the batch.
pub fn aggregate(
    book: &Book,
    bank_of: impl Fn(&str) -> Option<String>,
    custody_before: &BTreeMap<(String, String), i64>,
    outside: &BTreeMap<(String, String), i64>,
) -> Result<BankAggregation, EngineError> {
    let mut virtual_total: BTreeMap<(String, String), i128> = BTreeMap::new();
    for ((account, currency), balance) in &book.balances() {
        let bank = bank_of(account).ok_or_else(|| {
            EngineError::Invariant(format!("account {account} is held at no known bank"))
        })?;
        *virtual_total.entry((bank, currency.clone())).or_default() +=
            i128::from(balance.balance_minor);
    }
    let mut keys: Vec<&(String, String)> = virtual_total.keys().collect();
    keys.extend(custody_before.keys());
    keys.extend(outside.keys());
    keys.sort();
    keys.dedup();
    let mut nets = Vec::new();
    let mut custody_after = BTreeMap::new();
    for key in keys {
        let after = virtual_total.get(key).copied().unwrap_or(0);
        let before = i128::from(custody_before.get(key).copied().unwrap_or(0));
        let flows = i128::from(outside.get(key).copied().unwrap_or(0));
        let net = after - before - flows;
        let overflow = || EngineError::Overflow {
            what: format!("bank net of {} in {}", key.0, key.1),
        };
        let net_minor = i64::try_from(net).map_err(|_| overflow())?;
        custody_after.insert(key.clone(), i64::try_from(after).map_err(|_| overflow())?);
        if net_minor != 0 {
            nets.push(BankNet {
                bank: key.0.clone(),
                currency: key.1.clone(),
                net_minor,
            });
        }
    }
    check_delivery_nets_to_zero(&nets)?;
    Ok(BankAggregation {
        nets,
        custody_after,
    })
}

/// Money only moves between members inside the ledger, so per currency the bank nets sum to
/// zero: what some banks pay in, the others are paid out, and the delivery account ends
/// where it started.
fn check_delivery_nets_to_zero(nets: &[BankNet]) -> Result<(), EngineError> {
    let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
    for n in nets {
        *sums.entry(&n.currency).or_default() += i128::from(n.net_minor);
    }
    match sums.iter().find(|(_, s)| **s != 0) {
        Some((currency, sum)) => Err(EngineError::Invariant(format!(
            "bank nets in {currency} sum to {sum}, not 0: the delivery account would not net to zero"
        ))),
        None => Ok(()),
    }
}
