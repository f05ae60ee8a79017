//! The in-memory book of a batch: the ledger's balances and positions as the batch changes
//! them, and the double-entry legs that changed them.
//!
//! Every change goes through [`Book::post`], which takes a whole entry and refuses it unless
//! its legs sum to zero per asset: no stage can move money without a matching leg.

use std::collections::{BTreeMap, BTreeSet};

use crate::ledger::{Balance, EntryLeg, Snapshot};
use crate::EngineError;

/// What an entry moves: money (minor units of a currency) or quantities of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    Cash,
    Quantity,
}

/// Entry kinds, as they appear in postings.csv.
pub mod kind {
    pub const OPENING: &str = "opening";
    pub const OPENING_POSITION: &str = "opening_position";
    pub const TRADE: &str = "trade";
    pub const FEE: &str = "fee";
    pub const SECURITIES: &str = "securities";
    pub const COVER: &str = "cover";
    pub const WITHHOLD: &str = "withhold";
    pub const DEPOSIT: &str = "deposit";
    pub const WITHDRAWAL: &str = "withdrawal";
    pub const SUSPENSE_ASSIGN: &str = "suspense_assign";

    /// Kinds whose amounts are quantities of an instrument rather than money.
    pub fn is_quantity(kind: &str) -> bool {
        matches!(kind, OPENING_POSITION | SECURITIES | WITHHOLD)
    }
}

/// One leg of an entry to post: `(account, asset, amount)`.
pub type Leg = (String, String, i64);

#[derive(Debug, Clone, Default)]
pub struct Book {
    balances: BTreeMap<(String, String), Balance>,
    positions: BTreeMap<(String, String), i64>,
    touched_balances: BTreeSet<(String, String)>,
    touched_positions: BTreeSet<(String, String)>,
    /// Accounts outside the virtual ledger (custody accounts): their legs record where outside
    /// money came from, they hold no virtual balance.
    external: BTreeSet<String>,
    legs: Vec<EntryLeg>,
}

impl Book {
    pub fn from_snapshot(snapshot: &Snapshot, external: BTreeSet<String>) -> Book {
        Book {
            balances: snapshot.balances.clone(),
            positions: snapshot.positions.clone(),
            external,
            ..Book::default()
        }
    }

    pub fn balance(&self, account: &str, currency: &str) -> Balance {
        self.balances
            .get(&(account.to_string(), currency.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// `balance − frozen`.
    pub fn available(&self, account: &str, currency: &str) -> i64 {
        let b = self.balance(account, currency);
        b.balance_minor - b.frozen_minor
    }

    pub fn position(&self, account: &str, instrument: &str) -> i64 {
        self.positions
            .get(&(account.to_string(), instrument.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn balances(&self) -> &BTreeMap<(String, String), Balance> {
        &self.balances
    }

    pub fn positions(&self) -> &BTreeMap<(String, String), i64> {
        &self.positions
    }

    pub fn legs(&self) -> &[EntryLeg] {
        &self.legs
    }

    pub fn into_legs(self) -> Vec<EntryLeg> {
        self.legs
    }

    /// Moves `amount_minor` of an account's balance into (> 0) or out of (< 0) its frozen
    /// part. The balance itself does not change: frozen money is still the member's, only not
    /// available. Refused (nothing changes) if it would freeze more than is available or
    /// release more than is frozen.
    pub fn freeze(
        &mut self,
        account: &str,
        currency: &str,
        amount_minor: i64,
    ) -> Result<(), FreezeRefusal> {
        let key = (account.to_string(), currency.to_string());
        let current = self.balances.get(&key).copied().unwrap_or_default();
        let available = current.balance_minor - current.frozen_minor;
        if amount_minor > available {
            return Err(FreezeRefusal::NotAvailable {
                available_minor: available,
            });
        }
        if -amount_minor > current.frozen_minor {
            return Err(FreezeRefusal::NotFrozen {
                frozen_minor: current.frozen_minor,
            });
        }
        self.balances.entry(key.clone()).or_default().frozen_minor += amount_minor;
        self.touched_balances.insert(key);
        Ok(())
    }

    /// Balances changed by this batch (final values).
    pub fn changed_balances(&self) -> BTreeMap<(String, String), Balance> {
        self.touched_balances
            .iter()
            .map(|key| (key.clone(), self.balances[key]))
            .collect()
    }

    pub fn changed_positions(&self) -> BTreeMap<(String, String), i64> {
        self.touched_positions
            .iter()
            .map(|key| (key.clone(), self.positions[key]))
            .collect()
    }

    /// Posts one entry: `legs` of `(account, asset, amount)`, which must sum to zero per asset.
    /// Zero legs are dropped. Nothing is applied if the entry is refused.
    pub fn post(
        &mut self,
        entry_id: &str,
        entry_kind: &'static str,
        legs: &[Leg],
    ) -> Result<(), EngineError> {
        let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
        for (_, asset, amount) in legs {
            *sums.entry(asset).or_default() += i128::from(*amount);
        }
        if let Some((asset, sum)) = sums.iter().find(|(_, s)| **s != 0) {
            return Err(EngineError::Invariant(format!(
                "entry {entry_id} does not balance in {asset}: legs sum to {sum}"
            )));
        }
        let quantity = kind::is_quantity(entry_kind);
        // Check every leg before applying any, so a refused entry changes nothing.
        for (account, asset, amount) in legs {
            if self.external.contains(account) {
                continue;
            }
            let key = (account.clone(), asset.clone());
            let current = if quantity {
                self.positions.get(&key).copied().unwrap_or(0)
            } else {
                self.balances.get(&key).map_or(0, |b| b.balance_minor)
            };
            current
                .checked_add(*amount)
                .ok_or_else(|| EngineError::Overflow {
                    what: format!("balance of {account} in {asset}"),
                })?;
        }
        for (account, asset, amount) in legs {
            if *amount == 0 {
                continue;
            }
            self.legs.push(EntryLeg {
                entry_id: entry_id.to_string(),
                kind: entry_kind,
                account: account.clone(),
                asset: asset.clone(),
                amount: *amount,
            });
            if self.external.contains(account) {
                continue;
            }
            let key = (account.clone(), asset.clone());
            if quantity {
                *self.positions.entry(key.clone()).or_default() += amount;
                self.touched_positions.insert(key);
            } else {
                self.balances.entry(key.clone()).or_default().balance_minor += amount;
                self.touched_balances.insert(key);
            }
        }
        Ok(())
    }
}

/// Why a freeze or release did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeRefusal {
    NotAvailable { available_minor: i64 },
    NotFrozen { frozen_minor: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(account: &str, asset: &str, amount: i64) -> (String, String, i64) {
        (account.to_string(), asset.to_string(), amount)
    }

    #[test]
    fn refuses_unbalanced_entries_and_changes_nothing() {
        let mut book = Book::default();
        let err = book
            .post(
                "E1",
                kind::TRADE,
                &[leg("A", "CNY", 100), leg("B", "CNY", -99)],
            )
            .unwrap_err();
        assert!(err.to_string().contains("does not balance"));
        assert!(book.balances().is_empty());
        assert!(book.legs().is_empty());
    }

    #[test]
    fn external_legs_are_recorded_but_hold_no_balance() {
        let mut book = Book::from_snapshot(&Snapshot::default(), ["CUS-B01".to_string()].into());
        book.post(
            "OPEN",
            kind::OPENING,
            &[leg("A", "CNY", 100), leg("CUS-B01", "CNY", -100)],
        )
        .unwrap();
        assert_eq!(book.balance("A", "CNY").balance_minor, 100);
        assert_eq!(book.balance("CUS-B01", "CNY").balance_minor, 0);
        assert_eq!(book.legs().len(), 2);
    }
}
