//! Trade-id de-duplication: the one piece of state that grows with the number of trades.
//!
//! Two forms. [`TradeIdSet`] answers at once, per row, for a stream read once (a session
//! journal, the sequential reference path). [`record`] is what the parallel intake of trade
//! files uses: a compact record of the ids seen, in about a bit per id, whose rare repeats are
//! settled exactly by a second read.
//!
//! In [`TradeIdSet`] an id is not kept as a heap string: it is kept as a 128-bit hash (collisions between
//! distinct ids are out of reach: ~10⁻²² for 10⁹ ids), mapped to a 64-bit hash of the trade's
//! content, so that "same id, same content" (a re-sent trade, counted once) and "same id,
//! other content" (invalid) are told apart in 24 bytes per trade.

pub mod record;

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use clearhouse_formats::model::TradeFields;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time this id is seen.
    New,
    /// The id was seen with exactly this content: the same trade sent again.
    Duplicate,
    /// The id was seen with other content.
    Conflict,
}

#[derive(Debug, Default, Clone)]
pub struct TradeIdSet {
    ids: FxHashMap<u128, u64>,
}

/// Hashes every field that makes a trade's content, with separators so that field boundaries
/// cannot shift (`"ab","c"` differs from `"a","bc"`). The price is hashed normalised, so
/// `21.540` and `21.54` are the same content.
pub fn content_hash(t: &TradeFields<'_>) -> u64 {
    let mut h = Xxh3::new();
    for field in [t.business_date, t.instrument, t.buyer, t.seller] {
        h.update(field.as_bytes());
        h.update(&[0xff]);
    }
    h.update(&t.price.mantissa.to_le_bytes());
    h.update(&t.price.scale.to_le_bytes());
    h.update(&t.quantity.to_le_bytes());
    match t.executed_at {
        Some(at) => {
            h.update(&[1]);
            h.update(at.as_bytes());
        }
        None => h.update(&[0]),
    }
    h.digest()
}

impl TradeIdSet {
    pub fn with_capacity(capacity: usize) -> TradeIdSet {
        TradeIdSet {
            ids: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
        }
    }

    pub fn check_and_insert(&mut self, trade_id: &str, content: u64) -> Seen {
        match self.ids.entry(xxh3_128(trade_id.as_bytes())) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(content);
                Seen::New
            }
            std::collections::hash_map::Entry::Occupied(slot) if *slot.get() == content => {
                Seen::Duplicate
            }
            std::collections::hash_map::Entry::Occupied(_) => Seen::Conflict,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clearhouse_formats::money::Decimal;

    fn trade<'a>(id: &'a str, price: &str, quantity: i64) -> TradeFields<'a> {
        TradeFields {
            trade_id: id,
            business_date: "2026-11-25",
            instrument: "X",
            buyer: "A",
            seller: "B",
            price: Decimal::parse(price).unwrap(),
            quantity,
            executed_at: None,
        }
    }

    #[test]
    fn tells_duplicates_from_conflicts() {
        let mut set = TradeIdSet::default();
        let t1 = trade("T1", "10.50", 100);
        assert_eq!(set.check_and_insert("T1", content_hash(&t1)), Seen::New);
        let same = trade("T1", "10.5", 100);
        assert_eq!(
            set.check_and_insert("T1", content_hash(&same)),
            Seen::Duplicate
        );
        let other = trade("T1", "10.5", 200);
        assert_eq!(
            set.check_and_insert("T1", content_hash(&other)),
            Seen::Conflict
        );
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn field_boundaries_matter() {
        let mut a = trade("T", "1", 1);
        let mut b = a;
        a.buyer = "AB";
        a.seller = "C";
        b.buyer = "A";
        b.seller = "BC";
        assert_ne!(content_hash(&a), content_hash(&b));
    }
}
