//! The in-memory book of a batch: the ledger's balances and positions as the batch changes
//! them, and the double-entry legs that changed them.
//!
//! Every change goes through [`Book::post`], which takes a whole entry and refuses it unless
//! its legs sum to zero per asset: no stage can move money without a matching leg.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

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
    /// A failed pay-in or pay-out carried to the next cycle (reconciliation).
    pub const CARRY: &str = "carry";
    /// A withdrawal the bank returned, credited back to the member (reconciliation).
    pub const WITHDRAWAL_RETURN: &str = "withdrawal_return";

    /// Kinds whose amounts are quantities of an instrument rather than money.
    pub fn is_quantity(kind: &str) -> bool {
        matches!(kind, OPENING_POSITION | SECURITIES | WITHHOLD)
    }
}

/// One leg of an entry to post: `(account, asset, amount)`.
pub type Leg = (String, String, i64);

/// Strings numbered in order of first appearance, so that the book's maps are keyed by
/// integers: a day with a million positions must not compare string pairs on every lookup.
#[derive(Debug, Clone, Default)]
struct Interner {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// `(account, asset)` as interned ids.
type Key = (u32, u32);

#[derive(Debug, Clone, Default)]
pub struct Book {
    accounts: Interner,
    assets: Interner,
    balances: FxHashMap<Key, Balance>,
    positions: FxHashMap<Key, i64>,
    touched_balances: FxHashSet<Key>,
    touched_positions: FxHashSet<Key>,
    /// Accounts outside the virtual ledger (custody accounts): their legs record where outside
    /// money came from, they hold no virtual balance.
    external: BTreeSet<String>,
    legs: Vec<EntryLeg>,
}

impl Book {
    pub fn from_snapshot(snapshot: &Snapshot, external: BTreeSet<String>) -> Book {
        let mut book = Book {
            external,
            ..Book::default()
        };
        for ((account, asset), b) in &snapshot.balances {
            let key = book.intern(account, asset);
            book.balances.insert(key, *b);
        }
        for ((account, asset), q) in &snapshot.positions {
            let key = book.intern(account, asset);
            book.positions.insert(key, *q);
        }
        book
    }

    fn intern(&mut self, account: &str, asset: &str) -> Key {
        (self.accounts.intern(account), self.assets.intern(asset))
    }

    fn key(&self, account: &str, asset: &str) -> Option<Key> {
        Some((self.accounts.get(account)?, self.assets.get(asset)?))
    }

    fn names(&self, key: &Key) -> (String, String) {
        (
            self.accounts.name(key.0).to_string(),
            self.assets.name(key.1).to_string(),
        )
    }

    pub fn balance(&self, account: &str, currency: &str) -> Balance {
        self.key(account, currency)
            .and_then(|k| self.balances.get(&k))
            .copied()
            .unwrap_or_default()
    }

    /// `balance − frozen`.
    pub fn available(&self, account: &str, currency: &str) -> i64 {
        let b = self.balance(account, currency);
        b.balance_minor - b.frozen_minor
    }

    pub fn position(&self, account: &str, instrument: &str) -> i64 {
        self.key(account, instrument)
            .and_then(|k| self.positions.get(&k))
            .copied()
            .unwrap_or(0)
    }

    /// Every balance, sorted by account and currency.
    pub fn balances(&self) -> BTreeMap<(String, String), Balance> {
        self.balances
            .iter()
            .map(|(k, b)| (self.names(k), *b))
            .collect()
    }

    pub fn legs(&self) -> &[EntryLeg] {
        &self.legs
    }

    pub fn into_legs(self) -> Vec<EntryLeg> {
        self.legs
    }

    /// Balances changed by this batch (final values).
    pub fn changed_balances(&self) -> BTreeMap<(String, String), Balance> {
        self.touched_balances
            .iter()
            .map(|k| (self.names(k), self.balances[k]))
            .collect()
    }

    pub fn changed_positions(&self) -> BTreeMap<(String, String), i64> {
        self.touched_positions
            .iter()
            .map(|k| (self.names(k), self.positions[k]))
            .collect()
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
        let current = self.balance(account, currency);
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
        let key = self.intern(account, currency);
        self.balances.entry(key).or_default().frozen_minor += amount_minor;
        self.touched_balances.insert(key);
        Ok(())
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
            let current = if quantity {
                self.position(account, asset)
            } else {
                self.balance(account, asset).balance_minor
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
            let key = self.intern(account, asset);
            if quantity {
                *self.positions.entry(key).or_default() += amount;
                self.touched_positions.insert(key);
            } else {
                self.balances.entry(key).or_default().balance_minor += amount;
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
