//! The in-memory book of a batch: the ledger's balances and positions as the batch changes
//! them, and the double-entry legs that changed them.
//!
//! Every change goes through [`Book::post`], which takes a whole entry and refuses it unless
//! its legs sum to zero per asset: no stage can move money without a matching leg.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::ledger::{Balance, EntryLeg, PositionSet, Snapshot};
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

    /// Each id's rank in name order, so that sorting by rank sorts by name.
    fn ranks(&self) -> Vec<u32> {
        ranks(self.names.iter().map(String::as_str))
    }
}

/// An account of the book, by number: see [`Book::account_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(u32);

impl AccountId {
    /// The account's index in [`Postings::accounts`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An asset (currency code or instrument) of the book, by number: see [`Book::asset_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetId(u32);

impl AssetId {
    /// The asset's index in [`Postings::assets`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One leg of an entry to post, by ids: `(account, asset, amount)`.
pub type LegIds = (AccountId, AssetId, i64);

/// One posted leg as the book keeps it: 24 bytes, names by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostedLeg {
    /// Index into the entries (`entry_id`, kind) of the [`Postings`].
    pub entry: u32,
    pub account: AccountId,
    pub asset: AssetId,
    pub amount: i64,
}

/// One posted leg with its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegRef<'a> {
    pub entry_id: &'a str,
    pub kind: &'static str,
    pub account: &'a str,
    pub asset: &'a str,
    pub amount: i64,
}

impl LegRef<'_> {
    pub fn to_entry_leg(&self) -> EntryLeg {
        EntryLeg {
            entry_id: self.entry_id.to_string(),
            kind: self.kind,
            account: self.account.to_string(),
            asset: self.asset.to_string(),
            amount: self.amount,
        }
    }
}

/// Every leg a book posted, in posting order, with the names its ids stand for: what the
/// ledger stores and postings.csv prints. Owned, so a batch can hand it to the ledger without
/// copying a million strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Postings {
    pub accounts: Vec<String>,
    pub assets: Vec<String>,
    /// `(entry_id, kind)` by entry number.
    pub entries: Vec<(String, &'static str)>,
    pub legs: Vec<PostedLeg>,
}

impl Postings {
    pub fn leg(&self, leg: &PostedLeg) -> LegRef<'_> {
        let (entry_id, kind) = &self.entries[leg.entry as usize];
        LegRef {
            entry_id,
            kind,
            account: &self.accounts[leg.account.0 as usize],
            asset: &self.assets[leg.asset.0 as usize],
            amount: leg.amount,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = LegRef<'_>> + '_ {
        self.legs.iter().map(|l| self.leg(l))
    }

    pub fn len(&self) -> usize {
        self.legs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// Each entry's rank by entry id (entries with the same id share one).
    pub fn entry_ranks(&self) -> Vec<u32> {
        ranks(self.entries.iter().map(|(id, _)| id.as_str()))
    }

    /// Each account's rank by name.
    pub fn account_ranks(&self) -> Vec<u32> {
        ranks(self.accounts.iter().map(String::as_str))
    }

    /// The legs in `(entry_id, account, asset)` order, as postings.csv lists them. Sorted by
    /// precomputed name ranks, so a million legs sort without comparing a string.
    pub fn sorted(&self) -> Vec<&PostedLeg> {
        let entries = self.entry_ranks();
        let accounts = self.account_ranks();
        let assets = ranks(self.assets.iter().map(String::as_str));
        // Each leg's ranks and its position packed into one integer, computed once: a sort by
        // a key closure looked the three ranks up again on every comparison (2M legs, ~40M
        // comparisons). The position last keeps legs with the same names in posting order.
        let Ok(count) = u32::try_from(self.legs.len()) else {
            let mut sorted: Vec<&PostedLeg> = self.legs.iter().collect();
            sorted.sort_by_key(|l| {
                (
                    entries[l.entry as usize],
                    accounts[l.account.0 as usize],
                    assets[l.asset.0 as usize],
                )
            });
            return sorted;
        };
        let mut keys: Vec<u128> = self
            .legs
            .iter()
            .zip(0..count)
            .map(|(l, i)| {
                u128::from(entries[l.entry as usize]) << 96
                    | u128::from(accounts[l.account.0 as usize]) << 64
                    | u128::from(assets[l.asset.0 as usize]) << 32
                    | u128::from(i)
            })
            .collect();
        // The keys are unique (the position is part of them), so a stable sort orders them as
        // an unstable one would; it finds the sorted runs the legs come in (each entry's legs
        // are posted in account order, the entries nearly in id order) and merges them, where
        // a quicksort of 2M keys was 1% of a 10M-trade run.
        keys.sort();
        keys.iter()
            .map(|k| &self.legs[(*k as u32) as usize])
            .collect()
    }
}

/// Each name's rank in sorted order (equal names share a rank), so that sorting by rank
/// sorts by name.
fn ranks<'a>(names: impl Iterator<Item = &'a str>) -> Vec<u32> {
    let names: Vec<&str> = names.collect();
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_by(|a, b| names[*a as usize].cmp(names[*b as usize]));
    let mut ranks = vec![0u32; order.len()];
    let mut rank = 0u32;
    for (i, id) in order.iter().enumerate() {
        if i > 0 && names[order[i - 1] as usize] != names[*id as usize] {
            rank += 1;
        }
        ranks[*id as usize] = rank;
    }
    ranks
}

/// `(account, asset)` as interned ids.
type Key = (u32, u32);

/// A position and whether this batch changed it: one map entry, one lookup per leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    quantity: i64,
    touched: bool,
}

/// Positions by asset, then by account. A securities entry (one instrument, a leg per member
/// holding it) then works in one instrument's small table instead of hopping over a table of
/// the whole market's positions: with 2M positions in one map every leg was a cache and TLB
/// miss, 60% of the posting stage.
#[derive(Debug, Clone, Default)]
struct Positions {
    by_asset: Vec<FxHashMap<u32, Position>>,
}

impl Positions {
    fn get(&self, (account, asset): Key) -> Option<&Position> {
        self.by_asset.get(asset as usize)?.get(&account)
    }

    /// The table of one asset, created on first use.
    fn of_asset(&mut self, asset: u32) -> &mut FxHashMap<u32, Position> {
        let i = asset as usize;
        if i >= self.by_asset.len() {
            self.by_asset.resize_with(i + 1, FxHashMap::default);
        }
        &mut self.by_asset[i]
    }

    fn insert(&mut self, (account, asset): Key, position: Position) {
        self.of_asset(asset).insert(account, position);
    }

    fn remove(&mut self, (account, asset): Key) {
        if let Some(table) = self.by_asset.get_mut(asset as usize) {
            table.remove(&account);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (Key, &Position)> {
        self.by_asset.iter().enumerate().flat_map(|(asset, table)| {
            table
                .iter()
                .map(move |(&account, p)| ((account, asset as u32), p))
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Book {
    accounts: Interner,
    assets: Interner,
    /// Per account id: outside the virtual ledger (a custody account or the depository).
    account_external: Vec<bool>,
    balances: FxHashMap<Key, Balance>,
    positions: Positions,
    touched_balances: FxHashSet<Key>,
    /// Accounts outside the virtual ledger (custody accounts): their legs record where outside
    /// money came from, they hold no virtual balance.
    external: BTreeSet<String>,
    entries: Vec<(String, &'static str)>,
    legs: Vec<PostedLeg>,
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
        for (account, set) in &snapshot.position_sets {
            let account = book.account_id(account).0;
            let assets = &mut book.assets;
            let positions = &mut book.positions;
            set.for_each(|instrument, quantity| {
                let position = Position {
                    quantity,
                    touched: false,
                };
                positions.insert((account, assets.intern(instrument)), position);
            });
        }
        book
    }

    /// Room for `additional` more posted legs: a market's securities entries post millions,
    /// and growing the list by doubling copies it and faults in its pages again each time.
    pub fn reserve_legs(&mut self, additional: usize) {
        self.legs.reserve(additional);
    }

    /// The id of an account, numbered on first use.
    pub fn account_id(&mut self, name: &str) -> AccountId {
        let id = self.accounts.intern(name);
        if id as usize == self.account_external.len() {
            self.account_external.push(self.external.contains(name));
        }
        AccountId(id)
    }

    /// The id of an asset (currency code or instrument), numbered on first use.
    pub fn asset_id(&mut self, name: &str) -> AssetId {
        AssetId(self.assets.intern(name))
    }

    fn intern(&mut self, account: &str, asset: &str) -> Key {
        (self.account_id(account).0, self.asset_id(asset).0)
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
            .and_then(|k| self.positions.get(k))
            .map_or(0, |p| p.quantity)
    }

    /// [`Book::position`] by ids.
    pub fn position_of(&self, account: AccountId, instrument: AssetId) -> i64 {
        self.positions
            .get((account.0, instrument.0))
            .map_or(0, |p| p.quantity)
    }

    /// The id of an account the book knows (one it has no id for holds nothing).
    pub fn account_of(&self, name: &str) -> Option<AccountId> {
        self.accounts.get(name).map(AccountId)
    }

    /// The id of an asset the book knows.
    pub fn asset_of(&self, name: &str) -> Option<AssetId> {
        self.assets.get(name).map(AssetId)
    }

    /// Every balance, sorted by account and currency.
    pub fn balances(&self) -> BTreeMap<(String, String), Balance> {
        self.balances
            .iter()
            .map(|(k, b)| (self.names(k), *b))
            .collect()
    }

    /// Every posted leg, with its names, in posting order.
    pub fn legs(&self) -> Vec<EntryLeg> {
        self.legs
            .iter()
            .map(|l| self.leg_ref(l).to_entry_leg())
            .collect()
    }

    pub fn into_legs(self) -> Vec<EntryLeg> {
        self.legs()
    }

    fn leg_ref(&self, leg: &PostedLeg) -> LegRef<'_> {
        let (entry_id, kind) = &self.entries[leg.entry as usize];
        LegRef {
            entry_id,
            kind,
            account: self.accounts.name(leg.account.0),
            asset: self.assets.name(leg.asset.0),
            amount: leg.amount,
        }
    }

    /// Moves the posted legs out of the book, compact (names by number), for postings.csv and
    /// the ledger; the book keeps its balances and positions.
    pub fn take_postings(&mut self) -> Postings {
        Postings {
            accounts: self.accounts.names.clone(),
            assets: self.assets.names.clone(),
            entries: std::mem::take(&mut self.entries),
            legs: std::mem::take(&mut self.legs),
        }
    }

    /// Balances changed by this batch (final values).
    pub fn changed_balances(&self) -> BTreeMap<(String, String), Balance> {
        self.touched_balances
            .iter()
            .map(|k| (self.names(k), self.balances[k]))
            .collect()
    }

    pub fn changed_positions(&self) -> BTreeMap<(String, String), i64> {
        self.positions
            .iter()
            .filter(|(_, p)| p.touched)
            .map(|(k, p)| (self.names(&k), p.quantity))
            .collect()
    }

    /// For each account with a position changed by this batch, all its positions after the
    /// batch (zeros left out), sorted by account and instrument: how the ledger stores them.
    pub fn changed_position_sets(&self) -> Vec<(String, PositionSet)> {
        let mut touched = vec![false; self.accounts.names.len()];
        for ((account, _), p) in self.positions.iter() {
            touched[account as usize] |= p.touched;
        }
        // Bucketed by asset rank first, then dealt to accounts in rank order: every account's
        // set comes out sorted by instrument without a sort per account.
        let asset_ranks = self.assets.ranks();
        let mut by_rank: Vec<Vec<(u32, i64)>> = vec![Vec::new(); asset_ranks.len()];
        for ((account, asset), p) in self.positions.iter() {
            if touched[account as usize] && p.quantity != 0 {
                by_rank[asset_ranks[asset as usize] as usize].push((account, p.quantity));
            }
        }
        let mut by_account: Vec<Vec<(u32, i64)>> = vec![Vec::new(); touched.len()];
        let mut rank_asset = vec![0u32; asset_ranks.len()];
        for (asset, rank) in asset_ranks.iter().enumerate() {
            rank_asset[*rank as usize] = asset as u32;
        }
        for (rank, bucket) in by_rank.iter().enumerate() {
            for &(account, quantity) in bucket {
                by_account[account as usize].push((rank_asset[rank], quantity));
            }
        }
        let mut sets: Vec<(String, PositionSet)> = by_account
            .into_iter()
            .enumerate()
            .filter(|(account, _)| touched[*account])
            .map(|(account, set)| {
                let set = PositionSet::from_sorted(
                    set.iter()
                        .map(|(asset, quantity)| (self.assets.name(*asset), *quantity)),
                );
                (self.accounts.name(account as u32).to_string(), set)
            })
            .collect();
        sets.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        sets
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
        let ids: Vec<LegIds> = legs
            .iter()
            .map(|(account, asset, amount)| {
                (self.account_id(account), self.asset_id(asset), *amount)
            })
            .collect();
        self.post_ids(entry_id, entry_kind, &ids)
    }

    /// [`Book::post`] with accounts and assets by id: the path for entries of a million legs.
    pub fn post_ids(
        &mut self,
        entry_id: &str,
        entry_kind: &'static str,
        legs: &[LegIds],
    ) -> Result<(), EngineError> {
        let mut sums: FxHashMap<AssetId, i128> = FxHashMap::default();
        for (_, asset, amount) in legs {
            *sums.entry(*asset).or_default() += i128::from(*amount);
        }
        let mut unbalanced: Vec<(&str, i128)> = sums
            .iter()
            .filter(|(_, s)| **s != 0)
            .map(|(asset, s)| (self.assets.name(asset.0), *s))
            .collect();
        unbalanced.sort_unstable();
        if let Some((asset, sum)) = unbalanced.first() {
            return Err(EngineError::Invariant(format!(
                "entry {entry_id} does not balance in {asset}: legs sum to {sum}"
            )));
        }
        let quantity = kind::is_quantity(entry_kind);
        if quantity {
            self.apply_quantities(legs)?;
        } else {
            self.check_money_legs(legs)?;
        }
        let entry = self.entries.len() as u32;
        self.entries.push((entry_id.to_string(), entry_kind));
        self.legs.reserve(legs.len());
        for &(account, asset, amount) in legs {
            if amount == 0 {
                continue;
            }
            self.legs.push(PostedLeg {
                entry,
                account,
                asset,
                amount,
            });
            if quantity || self.account_external[account.0 as usize] {
                continue;
            }
            let key = (account.0, asset.0);
            self.balances.entry(key).or_default().balance_minor += amount;
            self.touched_balances.insert(key);
        }
        Ok(())
    }

    fn overflow(&self, account: AccountId, asset: AssetId) -> EngineError {
        EngineError::Overflow {
            what: format!(
                "balance of {} in {}",
                self.accounts.name(account.0),
                self.assets.name(asset.0)
            ),
        }
    }

    /// Money legs are checked before any is applied, so a refused entry changes nothing.
    fn check_money_legs(&self, legs: &[LegIds]) -> Result<(), EngineError> {
        for (account, asset, amount) in legs {
            if self.account_external[account.0 as usize] {
                continue;
            }
            let key = (account.0, asset.0);
            let current = self.balances.get(&key).map_or(0, |b| b.balance_minor);
            current
                .checked_add(*amount)
                .ok_or_else(|| self.overflow(*account, *asset))?;
        }
        Ok(())
    }

    /// Applies the position legs of a balanced quantity entry, each checked as it is applied:
    /// one lookup per leg rather than a checking pass and an applying pass over millions of
    /// positions. A leg that would overflow undoes the legs before it, so a refused entry
    /// changes nothing.
    fn apply_quantities(&mut self, legs: &[LegIds]) -> Result<(), EngineError> {
        // Each applied leg's key and the position it replaced (`None`: there was none).
        let mut undo: Vec<(Key, Option<Position>)> = Vec::with_capacity(legs.len());
        let mut run_asset = None;
        for (i, &(account, asset, amount)) in legs.iter().enumerate() {
            if run_asset != Some(asset) {
                // An instrument's table would otherwise grow by rehashing, leg by leg, to
                // the thousand members holding it (a sixth of the posting stage).
                let run = legs[i..].iter().take_while(|l| l.1 == asset).count();
                self.positions.of_asset(asset.0).reserve(run);
                run_asset = Some(asset);
            }
            if amount == 0 || self.account_external[account.0 as usize] {
                continue;
            }
            let key = (account.0, asset.0);
            let slot = self.positions.of_asset(asset.0).entry(account.0);
            let before = match &slot {
                std::collections::hash_map::Entry::Occupied(o) => Some(*o.get()),
                std::collections::hash_map::Entry::Vacant(_) => None,
            };
            let position = slot.or_default();
            match position.quantity.checked_add(amount) {
                Some(quantity) => {
                    position.quantity = quantity;
                    position.touched = true;
                    undo.push((key, before));
                }
                None => {
                    if before.is_none() {
                        self.positions.remove(key);
                    }
                    for (key, before) in undo.into_iter().rev() {
                        match before {
                            Some(p) => self.positions.insert(key, p),
                            None => self.positions.remove(key),
                        }
                    }
                    return Err(self.overflow(account, asset));
                }
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
    use proptest::prelude::*;

    proptest! {
        /// The packed-key sort orders legs as a stable sort by their names does: entry id,
        /// account, asset, then posting order (entries may share an id, names may repeat).
        #[test]
        fn sorted_legs_are_a_stable_sort_by_names(
            accounts in proptest::collection::vec("[a-c]{0,2}", 1..5),
            assets in proptest::collection::vec("[x-z]{0,2}", 1..4),
            entry_ids in proptest::collection::vec("E[0-2]", 1..5),
            legs in proptest::collection::vec((0usize..100, 0usize..100, 0usize..100, any::<i64>()), 0..60),
        ) {
            let postings = Postings {
                entries: entry_ids.iter().map(|id| (id.clone(), kind::TRADE)).collect(),
                legs: legs
                    .iter()
                    .map(|&(e, a, s, amount)| PostedLeg {
                        entry: (e % entry_ids.len()) as u32,
                        account: AccountId((a % accounts.len()) as u32),
                        asset: AssetId((s % assets.len()) as u32),
                        amount,
                    })
                    .collect(),
                accounts,
                assets,
            };
            let names = |l: &PostedLeg| {
                let r = postings.leg(l);
                (r.entry_id.to_string(), r.account.to_string(), r.asset.to_string())
            };
            let mut expected: Vec<&PostedLeg> = postings.legs.iter().collect();
            expected.sort_by_key(|l| names(l));
            let got = postings.sorted();
            prop_assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                prop_assert!(std::ptr::eq(*g, *e));
            }
        }
    }

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
    fn a_quantity_entry_that_would_overflow_changes_nothing() {
        let mut book = Book::from_snapshot(&Snapshot::default(), ["@DEP".to_string()].into());
        book.post(
            "OPENPOS-X",
            kind::OPENING_POSITION,
            &[
                leg("A", "X", 5),
                leg("B", "X", i64::MAX - 5),
                leg("@DEP", "X", -i64::MAX),
            ],
        )
        .unwrap();
        let before = (book.changed_positions(), book.legs());
        let err = book
            .post(
                "SEC-X",
                kind::SECURITIES,
                &[
                    leg("C", "X", -1),
                    leg("A", "X", -4),
                    leg("B", "X", 6),
                    leg("D", "X", -1),
                ],
            )
            .unwrap_err();
        assert!(matches!(err, EngineError::Overflow { .. }), "{err}");
        assert_eq!((book.changed_positions(), book.legs()), before);
        assert_eq!(book.position("C", "X"), 0);
        assert_eq!(book.position("A", "X"), 5);
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
