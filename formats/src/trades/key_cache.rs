//! The sink's keys for the ids a text file repeats, so that each row's instrument, buyer and
//! seller cost one probe of a small table instead of a syntax check and a look-up in the sink:
//! what a Parquet dictionary gives the Parquet reader for free.

use super::{KeyColumn, TradeSink};
use crate::fields::id_problem;

/// Beyond this many distinct ids per column, new ids are answered without being remembered: a
/// file of millions of made-up ids must not grow the table without bound.
const MAX_IDS: usize = 1 << 16;

#[derive(Default)]
pub(super) struct KeyCache {
    instruments: IdKeys,
    members: IdKeys,
}

impl KeyCache {
    /// `Some(key)` with the sink's answer for an id of `column` (the key itself may be `None`:
    /// an unknown id, which the sink refuses with its reason), or `None` when `text` is not an
    /// id at all (the caller's slow path words that).
    #[inline(always)]
    pub(super) fn key<S: TradeSink>(
        &mut self,
        column: KeyColumn,
        text: &str,
        sink: &mut S,
    ) -> Option<Option<u32>> {
        let table = match column {
            KeyColumn::Instrument => &mut self.instruments,
            KeyColumn::Member => &mut self.members,
        };
        let Some(packed) = Packed::of(text.as_bytes()) else {
            // Longer ids (and the empty text) are not remembered.
            if id_problem(text).is_some() {
                return None;
            }
            return Some(sink.key_of(column, text));
        };
        if let Some(key) = table.get(packed) {
            return Some(key);
        }
        if id_problem(text).is_some() {
            return None;
        }
        let key = sink.key_of(column, text);
        table.insert(packed, key);
        Some(key)
    }
}

/// An id of 1 to 16 bytes as two words and its length, which together determine its bytes
/// (the words overlap for lengths that are not 8 or 16, as in the reference index's hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    a: u64,
    b: u64,
    len: u64,
}

impl Packed {
    #[inline]
    fn of(id: &[u8]) -> Option<Packed> {
        let n = id.len();
        let word = |at: usize| {
            u64::from_le_bytes(
                id.get(at..at + 8)
                    .and_then(|w| w.try_into().ok())
                    .unwrap_or_default(),
            )
        };
        // The first four bytes of at least four: no bounds to check.
        let half = |from: &[u8]| {
            u64::from(u32::from_le_bytes(
                from.first_chunk::<4>().copied().unwrap_or_default(),
            ))
        };
        let (a, b) = match n {
            8..=16 => (word(0), word(n - 8)),
            4..=7 => (half(id) | (half(&id[n - 4..]) << 32), 0),
            1..=3 => (
                u64::from(id[0]) | (u64::from(id[n / 2]) << 8) | (u64::from(id[n - 1]) << 16),
                0,
            ),
            _ => return None,
        };
        Some(Packed {
            a,
            b,
            len: n as u64,
        })
    }

    #[inline]
    fn hash(self) -> u64 {
        (self.a ^ self.b.rotate_left(29) ^ self.len).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Open addressing, linear probing, at most half full. A slot's `meta` is 0 when empty, else
/// the id's length above bit 33, whether the sink had a key at bit 32, and the key below.
#[derive(Default)]
struct IdKeys {
    slots: Vec<Slot>,
    len: usize,
    /// 64 less the table's size in bits: a hash's top bits pick the slot.
    shift: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    a: u64,
    b: u64,
    meta: u64,
}

impl IdKeys {
    #[inline]
    fn get(&self, id: Packed) -> Option<Option<u32>> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = (id.hash() >> self.shift) as usize;
        loop {
            let slot = self.slots[i];
            if slot.meta == 0 {
                return None;
            }
            if slot.a == id.a && slot.b == id.b && slot.meta >> 33 == id.len {
                return Some(((slot.meta & (1 << 32)) != 0).then_some(slot.meta as u32));
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, id: Packed, key: Option<u32>) {
        if self.len >= MAX_IDS {
            return;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let meta = (id.len << 33) | key.map_or(0, |k| (1 << 32) | u64::from(k));
        self.place(Slot {
            a: id.a,
            b: id.b,
            meta,
        });
        self.len += 1;
    }

    fn grow(&mut self) {
        let bits = match self.slots.len() {
            0 => 10,
            len => len.trailing_zeros() + 1,
        };
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); 1 << bits]);
        self.shift = 64 - bits;
        for slot in old.into_iter().filter(|s| s.meta != 0) {
            self.place(slot);
        }
    }

    fn place(&mut self, slot: Slot) {
        let id = Packed {
            a: slot.a,
            b: slot.b,
            len: slot.meta >> 33,
        };
        let mask = self.slots.len() - 1;
        let mut i = (id.hash() >> self.shift) as usize;
        while self.slots[i].meta != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RowError, TradeFields};

    /// A sink that numbers ids by a rule and counts how often it is asked.
    #[derive(Default)]
    struct Numbering {
        asked: usize,
    }

    impl TradeSink for Numbering {
        fn trade(&mut self, _: u64, _: &TradeFields<'_>) {}
        fn bad_row(&mut self, _: RowError) {}
        fn key_of(&mut self, column: KeyColumn, id: &str) -> Option<u32> {
            self.asked += 1;
            expected(column, id)
        }
    }

    fn expected(column: KeyColumn, id: &str) -> Option<u32> {
        // Ids ending in 'x' are unknown; the others get a number from their bytes and column.
        if id.ends_with('x') {
            return None;
        }
        let sum = id
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31) ^ u32::from(b));
        Some(sum ^ u32::from(column == KeyColumn::Member))
    }

    proptest::proptest! {
        /// Every answer equals the sink's (or "not an id" exactly when the syntax check says
        /// so), and each distinct short id is asked about once.
        #[test]
        fn answers_as_the_sink_does_and_asks_once(
            ids in proptest::collection::vec("[A-Za-z0-9_x-]{0,20}|[a é\"]{1,3}", 1..400),
        ) {
            let mut cache = KeyCache::default();
            let mut sink = Numbering::default();
            let mut distinct = std::collections::HashSet::new();
            for (i, id) in ids.iter().enumerate() {
                let column = if i % 3 == 0 { KeyColumn::Instrument } else { KeyColumn::Member };
                let got = cache.key(column, id, &mut sink);
                let want = id_problem(id).is_none().then(|| expected(column, id));
                proptest::prop_assert_eq!(got, want, "{:?}", id);
                if want.is_some() && id.len() <= 16 {
                    distinct.insert((column == KeyColumn::Member, id.clone()));
                }
            }
            let long = ids.iter().filter(|id| id.len() > 16 && id_problem(id).is_none()).count();
            proptest::prop_assert!(sink.asked <= distinct.len() + long);
        }
    }

    /// Asks a fresh cache about every member id twice: each answer is the sink's, and the
    /// sink is asked about each id once. The cache is handed back for a look inside.
    fn asked_twice(ids: &[String]) -> KeyCache {
        let mut cache = KeyCache::default();
        let mut sink = Numbering::default();
        for _ in 0..2 {
            for id in ids {
                assert_eq!(
                    cache.key(KeyColumn::Member, id, &mut sink),
                    Some(expected(KeyColumn::Member, id))
                );
            }
        }
        assert_eq!(sink.asked, ids.len(), "each id asked about once");
        cache
    }

    #[test]
    fn thousands_of_ids_survive_the_table_growing() {
        let ids: Vec<String> = (0..5_000).map(|i| format!("M{i:05}")).collect();
        assert_eq!(asked_twice(&ids).members.slots.len(), 16_384);
    }

    #[test]
    fn ids_of_every_length_that_share_bytes_stay_apart() {
        let ids: Vec<String> = (1..=16)
            .flat_map(|n| ["a".repeat(n), format!("{}b", "a".repeat(n - 1))])
            .collect();
        asked_twice(&ids);
    }
}
