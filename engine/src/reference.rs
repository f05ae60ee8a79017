//! Reference data checked across files, and the dense indexes the hot path works with.
//!
//! Input: the platform, members and instruments as the readers parsed them. Output: a
//! [`RefData`] where members, instruments and currencies are sorted by id and numbered
//! `0..n`, so that netting aggregates into plain arrays and output order is the id order.

use xxhash_rust::xxh3::xxh3_64;

use clearhouse_formats::model::{Instrument, Location, Member, MemberStatus, Platform, RowError};
use clearhouse_formats::money::{AmountMinor, Currency, DecimalError};
use clearhouse_formats::{reference, FormatError};

/// Reads `dir/platform.toml`, `dir/members.csv` and `dir/instruments.csv` with the readers of a
/// day directory and checks them together ([`RefData::build`]). `Ok(Err(_))` lists every
/// problem; `Err` is a failure to read a file.
pub fn load_dir(dir: &std::path::Path) -> Result<Result<RefData, Vec<RowError>>, FormatError> {
    let mut errors = Vec::new();
    let platform = match reference::read_platform(&dir.join("platform.toml"))? {
        Ok(p) => Some(p),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let members_file = dir.join("members.csv");
    let members = reference::read_members(&members_file)?;
    let instruments = reference::read_instruments(&dir.join("instruments.csv"))?;
    errors.extend(members.errors);
    errors.extend(instruments.errors);
    match platform {
        Some(platform) if errors.is_empty() => Ok(RefData::build(
            platform,
            members.rows,
            instruments.rows,
            &members_file,
        )),
        _ => Ok(Err(errors)),
    }
}

/// Index of a member in [`RefData::members`] (sorted by member id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberIdx(pub u32);

/// Index of an instrument in [`RefData::instruments`] (sorted by instrument id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstrumentIdx(pub u32);

/// Index of a currency in [`RefData::currencies`] (sorted by code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CurrencyIdx(pub u32);

#[derive(Debug, Clone)]
pub struct RefData {
    pub platform: Platform,
    pub members: Vec<Member>,
    pub instruments: Vec<Instrument>,
    /// Distinct currencies of the instruments, sorted by code.
    pub currencies: Vec<Currency>,
    /// Per instrument, the index of its currency.
    pub instrument_currency: Vec<CurrencyIdx>,
    /// `min_fee` of each member in each currency's minor units: `[member * currencies + cur]`.
    min_fee_minor: Vec<AmountMinor>,
    member_index: IdIndex,
    instrument_index: IdIndex,
    /// Per member: `status == active`, the one status check of every trade.
    member_active: Vec<bool>,
    /// Per instrument, what every trade in it is checked against, packed together away from
    /// the instrument's strings.
    trade_rules: Vec<TradeRules>,
}

/// The per-trade rules of one instrument.
#[derive(Debug, Clone, Copy)]
pub struct TradeRules {
    pub price_scale: u32,
    pub lot: MultipleOf,
    /// Decimals of the instrument's currency.
    pub minor_digits: u32,
}

/// Tests whether a number is a multiple of a divisor fixed in advance without dividing: a
/// `%` by a divisor known only at run time is among the slowest instructions, and every
/// trade's quantity is checked against its lot size.
///
/// For `d = 2^k × odd`, `n` is a multiple of `d` exactly when its low `k` bits are zero and
/// `(n >> k) × odd⁻¹ mod 2^64 ≤ (2^64 − 1) / odd` (multiplication by the inverse of `odd`
/// maps the multiples of `odd` onto `0..=(2^64 − 1) / odd` and everything else above it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipleOf {
    shift: u32,
    inverse: u64,
    limit: u64,
}

impl MultipleOf {
    /// The test for multiples of `divisor` (> 0).
    pub fn new(divisor: u64) -> MultipleOf {
        assert!(divisor > 0, "a multiple of zero is undefined");
        let shift = divisor.trailing_zeros();
        let odd = divisor >> shift;
        // Newton's iteration for the inverse modulo 2^64: `odd` is its own inverse modulo 8
        // (3 bits), and each step doubles the correct bits (6, 12, 24, 48, 96).
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        debug_assert_eq!(odd.wrapping_mul(inverse), 1);
        MultipleOf {
            shift,
            inverse,
            limit: u64::MAX / odd,
        }
    }

    #[inline]
    pub fn divides(&self, n: u64) -> bool {
        let low_bits = (1u64 << self.shift) - 1;
        n & low_bits == 0 && (n >> self.shift).wrapping_mul(self.inverse) <= self.limit
    }
}

/// Ids to dense indexes, for the lookups of every trade row (an instrument and two members).
///
/// Open addressing, at most half full, each slot holding the full 64-bit hash: a probe
/// compares the hash and, on a match, the key once. A general-purpose map with FxHash spent
/// most of its time comparing keys, because ids like `I00001`…`I02000` differ in few bits and
/// its probe tags collide. Keys live in one buffer, next to each other.
#[derive(Debug, Clone)]
struct IdIndex {
    /// `(hash, index + 1)`; 0 marks an empty slot.
    slots: Vec<(u64, u32)>,
    /// Per index, `(start, len)` of its key in `bytes`.
    spans: Vec<(u32, u32)>,
    bytes: Vec<u8>,
}

/// The hash of an id: for ids of up to 16 bytes, two overlapping word loads (which with the
/// length determine the id) through a strong 64-bit mixer; xxh3 for longer ones.
#[inline]
fn hash_id(id: &[u8]) -> u64 {
    let n = id.len();
    let word = |at: usize| u64::from_le_bytes(id[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u64::from(u32::from_le_bytes(id[at..at + 4].try_into().expect("4")));
    let (a, b) = match n {
        17.. => return xxh3_64(id),
        8..=16 => (word(0), word(n - 8)),
        4..=7 => (half(0), half(n - 4)),
        1..=3 => (
            u64::from(id[0]) | u64::from(id[n / 2]) << 8 | u64::from(id[n - 1]) << 16,
            0,
        ),
        0 => (0, 0),
    };
    // splitmix64's finaliser over the words and the length.
    let mut h = (a ^ b.rotate_left(32) ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 29)
}

impl IdIndex {
    /// Numbers the ids `0..n` in the order given; of equal ids the last one's number wins, as
    /// it would collecting into a map.
    fn new<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> IdIndex {
        let size = (ids.len() * 2).next_power_of_two().max(8);
        let mut index = IdIndex {
            slots: vec![(0, 0); size],
            spans: Vec::with_capacity(ids.len()),
            bytes: Vec::new(),
        };
        let mask = size - 1;
        for id in ids {
            index
                .spans
                .push((index.bytes.len() as u32, id.len() as u32));
            index.bytes.extend_from_slice(id.as_bytes());
            let number = index.spans.len() as u32;
            let hash = hash_id(id.as_bytes());
            let mut i = hash as usize & mask;
            loop {
                let (h, slot) = index.slots[i];
                let same = slot != 0 && h == hash && index.key(slot - 1) == id.as_bytes();
                if slot == 0 || same {
                    index.slots[i] = (hash, number);
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        index
    }

    #[inline]
    fn key(&self, index: u32) -> &[u8] {
        let (start, len) = self.spans[index as usize];
        &self.bytes[start as usize..(start + len) as usize]
    }

    #[inline]
    fn get(&self, id: &str) -> Option<u32> {
        let hash = hash_id(id.as_bytes());
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let (h, slot) = self.slots[i];
            if slot == 0 {
                return None;
            }
            if h == hash && same_bytes(self.key(slot - 1), id.as_bytes()) {
                return Some(slot - 1);
            }
            i = (i + 1) & mask;
        }
    }
}

/// `a == b`, with word loads for the short ids of reference data instead of a `memcmp` call.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        // The first and last words overlap when n < 16: together they cover every byte.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

impl RefData {
    /// Checks what no single file can: settlement banks exist in platform.toml, member ids do
    /// not collide with the platform's own accounts, and each `min_fee` fits the minor unit of
    /// every currency the member may trade in. Every problem is reported.
    pub fn build(
        platform: Platform,
        mut members: Vec<Member>,
        mut instruments: Vec<Instrument>,
        members_file: &std::path::Path,
    ) -> Result<RefData, Vec<RowError>> {
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        instruments.sort_by(|a, b| a.instrument.cmp(&b.instrument));
        let mut currencies: Vec<Currency> = instruments.iter().map(|i| i.currency).collect();
        currencies.sort();
        currencies.dedup();

        let mut errors = Vec::new();
        let platform_accounts = platform.platform_accounts();
        let mut min_fee_minor = Vec::with_capacity(members.len() * currencies.len());
        for member in &members {
            let at = Location::new(members_file, member.line);
            if !platform.banks.contains_key(&member.settlement_bank) {
                errors.push(RowError::new(
                    at.clone(),
                    &member.member_id,
                    "settlement_bank",
                    &member.settlement_bank,
                    "is not a bank of platform.toml [banks]",
                ));
            }
            if platform_accounts.contains(&member.member_id.as_str()) {
                errors.push(RowError::new(
                    at.clone(),
                    &member.member_id,
                    "member_id",
                    &member.member_id,
                    "is one of the platform's own accounts in platform.toml",
                ));
            }
            for currency in &currencies {
                match member.min_fee.to_minor(currency.minor_digits()) {
                    Ok(minor) => min_fee_minor.push(minor),
                    Err(err) => {
                        let reason = match err {
                            DecimalError::TooManyDecimals { .. } => format!(
                                "has more decimals than {} allows ({})",
                                currency,
                                currency.minor_digits()
                            ),
                            other => other.to_string(),
                        };
                        errors.push(RowError::new(
                            at.clone(),
                            &member.member_id,
                            "min_fee",
                            &member.min_fee.to_text(),
                            reason,
                        ));
                        min_fee_minor.push(AmountMinor::ZERO);
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let instrument_currency = instruments
            .iter()
            .map(|i| {
                let pos = currencies.binary_search(&i.currency).unwrap_or(0);
                CurrencyIdx(pos as u32)
            })
            .collect();
        let member_index = IdIndex::new(members.iter().map(|m| m.member_id.as_str()));
        let instrument_index = IdIndex::new(instruments.iter().map(|x| x.instrument.as_str()));
        let member_active = members
            .iter()
            .map(|m| m.status == MemberStatus::Active)
            .collect();
        let trade_rules = instruments
            .iter()
            .map(|i| TradeRules {
                price_scale: i.price_scale,
                // Lot sizes are validated > 0 when instruments.csv is read.
                lot: MultipleOf::new(i.lot_size.unsigned_abs().max(1)),
                minor_digits: i.currency.minor_digits(),
            })
            .collect();
        Ok(RefData {
            platform,
            members,
            instruments,
            currencies,
            instrument_currency,
            min_fee_minor,
            member_index,
            instrument_index,
            member_active,
            trade_rules,
        })
    }

    #[inline]
    pub fn trade_rules(&self, idx: InstrumentIdx) -> &TradeRules {
        &self.trade_rules[idx.0 as usize]
    }

    #[inline]
    pub fn member_idx(&self, id: &str) -> Option<MemberIdx> {
        self.member_index.get(id).map(MemberIdx)
    }

    #[inline]
    pub fn instrument_idx(&self, id: &str) -> Option<InstrumentIdx> {
        self.instrument_index.get(id).map(InstrumentIdx)
    }

    pub fn member(&self, idx: MemberIdx) -> &Member {
        &self.members[idx.0 as usize]
    }

    pub fn instrument(&self, idx: InstrumentIdx) -> &Instrument {
        &self.instruments[idx.0 as usize]
    }

    pub fn currency(&self, idx: CurrencyIdx) -> Currency {
        self.currencies[idx.0 as usize]
    }

    pub fn currency_idx(&self, currency: Currency) -> Option<CurrencyIdx> {
        self.currencies
            .binary_search(&currency)
            .ok()
            .map(|i| CurrencyIdx(i as u32))
    }

    pub fn min_fee(&self, member: MemberIdx, currency: CurrencyIdx) -> AmountMinor {
        self.min_fee_minor[member.0 as usize * self.currencies.len() + currency.0 as usize]
    }

    #[inline]
    pub fn is_active(&self, member: MemberIdx) -> bool {
        self.member_active[member.0 as usize]
    }

    /// The bank whose custody account holds `account`: a member's settlement bank, or the
    /// delivery bank for the platform's own accounts. `None` for an unknown account.
    pub fn bank_of(&self, account: &str) -> Option<&str> {
        if let Some(idx) = self.member_idx(account) {
            return Some(&self.member(idx).settlement_bank);
        }
        self.platform
            .platform_accounts()
            .contains(&account)
            .then_some(self.platform.delivery_bank.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_index_finds_every_id_and_nothing_else() {
        let ids: Vec<String> = (0..3000)
            .map(|i| format!("{}{i:05}", ["I", "M", "Long-member-id-"][i % 3]))
            .chain(["", "a", "ab", "abcdefgh", "abcdefghijklmnopq"].map(String::from))
            .collect();
        let index = IdIndex::new(ids.iter().map(String::as_str));
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(i as u32), "{id}");
        }
        for miss in ["I99999", "abcdefgi", "abcdefghijklmnopr", "abc", "M0000"] {
            assert_eq!(index.get(miss), None, "{miss}");
        }
        let dup = IdIndex::new(["x", "y", "x"].into_iter());
        assert_eq!((dup.get("x"), dup.get("y")), (Some(2), Some(1)));
    }

    #[test]
    fn same_bytes_is_equality_at_every_length() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            for k in 0..n {
                let mut b = a.clone();
                b[k] ^= 1;
                assert!(!same_bytes(&a, &b), "length {n}, byte {k}");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn multiple_of_agrees_with_the_remainder_on_edges() {
        for d in [
            1u64,
            2,
            3,
            7,
            8,
            10,
            100,
            1 << 63,
            u64::MAX,
            u64::MAX - 1,
            1_000_000_007,
        ] {
            let m = MultipleOf::new(d);
            for n in [
                0u64,
                1,
                d - 1,
                d,
                d.wrapping_add(1),
                d.wrapping_mul(2),
                d.wrapping_mul(3),
                u64::MAX,
            ] {
                assert_eq!(m.divides(n), n % d == 0, "{n} by {d}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn multiple_of_agrees_with_the_remainder(d in 1u64..=u64::MAX, k in 0u64..1000, n: u64, small in 1u64..1000) {
            for d in [d, small] {
                let m = MultipleOf::new(d);
                proptest::prop_assert_eq!(m.divides(n), n % d == 0);
                if let Some(multiple) = d.checked_mul(k) {
                    proptest::prop_assert_eq!(m.divides(multiple), multiple % d == 0);
                }
                let multiple = d.wrapping_mul(k);
                proptest::prop_assert_eq!(m.divides(multiple.wrapping_add(1)), multiple.wrapping_add(1) % d == 0);
            }
        }
    }
}
