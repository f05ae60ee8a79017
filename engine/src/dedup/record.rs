//! The trade-id record of the parallel intake: which ids were seen, in about one bit per id
//! when ids are numbered and eight bytes otherwise, and afterwards which ids may have been
//! seen more than once.
//!
//! The intake nets every valid row at once and records its id here; only when all rows are
//! read does it ask which ids may repeat ([`find_suspects`]). Repeats are rare (a re-sent
//! trade), so the exact answer for them comes from reading the day again for just those ids
//! (`intake::parallel`). This record therefore only has to be a filter with no false
//! negatives: an id seen twice is always reported; an id reported that was in fact seen once
//! (two ids with one fingerprint) costs that second read and nothing else.
//!
//! Two representations, chosen per id by a pure function of the id's text:
//! - **numbered ids** (`T00000001234`: a prefix of at most 24 bytes, then 1–18 digits) are
//!   bits in paged bitmaps keyed by `(prefix, digit count)` and the number. The text is
//!   rebuilt exactly from those three, so a bit stands for exactly one id. Pages hold 65,536
//!   ids (8 KiB); a dense day of 100M ids needs 12.5 MB.
//! - **other ids** are 64-bit fingerprints (xxh3) appended to one of 4,096 logs by their top
//!   12 bits; after reading, each log is checked for repeats in a small hash table that fits
//!   the cache. 8 bytes per id.
//!
//! Numbers that are sparse would make bitmap pages cost more than fingerprints. A record
//! therefore gives bitmaps up (moves their ids into the fingerprint logs, exactly) once its
//! pages exceed 64 MiB plus 4 bytes per id they hold, or once it meets a 65th prefix; and if
//! any worker's record gave them up, [`find_suspects`] makes every record give them up before
//! comparing, so that an id is always compared in one representation.

use clearhouse_formats::digits::{eight_digits, non_digit_bytes, right_aligned, ASCII_ZEROS};
use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::xxh3_64;

/// The 64-bit fingerprint of a trade id, as the logs and the suspect set hold it.
#[inline]
pub fn fingerprint(id: &[u8]) -> u64 {
    xxh3_64(id)
}

const PARTITION_BITS: u32 = 12;
const PARTITIONS: usize = 1 << PARTITION_BITS;
/// Fingerprints per block of a partition's log (8 KiB).
const BLOCK_LEN: usize = 1024;

/// Ids per bitmap page, as a power of two.
const PAGE_BITS: u32 = 16;
const PAGE_WORDS: usize = 1 << (PAGE_BITS - 6);
const PAGE_BYTES: u64 = (PAGE_WORDS * 8) as u64;
const MAX_CLASSES: usize = 64;
const MAX_PREFIX: usize = 24;
const MAX_DIGITS: usize = 18;
/// Bitmap pages may take this much memory before they must pay for themselves...
const PAGE_BYTES_FREE: u64 = 64 << 20;
/// ...and this much per id they hold beyond it (half of what a fingerprint costs).
const PAGE_BYTES_PER_ID: u64 = 4;

/// One partition's fingerprints, in fixed blocks so that growing never copies much.
#[derive(Debug, Default)]
struct Partition {
    full: Vec<Box<[u64]>>,
    tail: Vec<u64>,
}

impl Partition {
    #[inline]
    fn push(&mut self, fp: u64) {
        if self.tail.len() == BLOCK_LEN {
            let block = std::mem::replace(&mut self.tail, Vec::with_capacity(BLOCK_LEN));
            self.full.push(block.into_boxed_slice());
        }
        self.tail.push(fp);
    }

    fn len(&self) -> usize {
        self.full.len() * BLOCK_LEN + self.tail.len()
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.full
            .iter()
            .flat_map(|b| b.iter().copied())
            .chain(self.tail.iter().copied())
    }
}

#[derive(Debug, Default)]
struct FingerprintLog {
    /// Empty until the first fingerprint, then [`PARTITIONS`] long.
    parts: Vec<Partition>,
    len: u64,
}

impl FingerprintLog {
    #[inline]
    fn push(&mut self, fp: u64) {
        if self.parts.is_empty() {
            self.parts.resize_with(PARTITIONS, Partition::default);
        }
        self.parts[(fp >> (64 - PARTITION_BITS)) as usize].push(fp);
        self.len += 1;
    }
}

/// A numbered id: its prefix, its digit count and its number.
#[inline]
fn split_numbered(id: &[u8]) -> Option<(&[u8], usize, u64)> {
    let digits = trailing_digits(id);
    if digits == 0 || digits > MAX_DIGITS || id.len() - digits > MAX_PREFIX {
        return None;
    }
    let (prefix, _) = id.split_at(id.len() - digits);
    // Eight digits at a time, from the right (per digit, the multiply chain was most of the
    // id record's time).
    let end = id.len();
    let value = match digits {
        ..=8 => eight_digits(digits_ending_at(id, end, digits)),
        9..=16 => {
            let high = eight_digits(digits_ending_at(id, end - 8, digits - 8));
            high * 100_000_000 + eight_digits(digits_ending_at(id, end, 8))
        }
        _ => {
            let high = eight_digits(digits_ending_at(id, end - 16, digits - 16));
            let middle = eight_digits(digits_ending_at(id, end - 8, 8));
            (high * 100_000_000 + middle) * 100_000_000 + eight_digits(digits_ending_at(id, end, 8))
        }
    };
    Some((prefix, digits, value))
}

/// How many ASCII digits `id` ends with; any count above [`MAX_DIGITS`] may be answered as a
/// smaller one that is still above it.
#[inline]
fn trailing_digits(id: &[u8]) -> usize {
    let (mut count, mut end) = (0, id.len());
    while end >= 8 && count <= MAX_DIGITS {
        let word = u64::from_le_bytes(id[end - 8..end].try_into().unwrap_or_default());
        let non_digits = non_digit_bytes(word);
        if non_digits != 0 {
            return count + (non_digits.leading_zeros() / 8) as usize;
        }
        count += 8;
        end -= 8;
    }
    count
        + id[..end]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count()
}

/// The `count` (1..=8) digits of `id` that end at `end`, as the eight bytes of an
/// eight-digit text padded with leading '0's, first digit in the lowest byte.
#[inline]
fn digits_ending_at(id: &[u8], end: usize, count: usize) -> u64 {
    let word = right_aligned(&id[..end]);
    // The low bytes before the digits become '0's.
    let pad = (1u64 << (8 * (8 - count.clamp(1, 8)) as u32)) - 1;
    (word & !pad) | (ASCII_ZEROS & pad)
}

/// `a == b` for the short prefixes of numbered ids as one word compare each: the slice
/// compare was a call to memcmp on every row.
#[inline(always)]
fn same_prefix(a: &[u8], b: &[u8]) -> bool {
    // Equal lengths pad equally, so the words are equal exactly when the bytes are.
    a.len() == b.len()
        && if a.len() <= 8 {
            right_aligned(a) == right_aligned(b)
        } else {
            a == b
        }
}

/// The id text of `(prefix, digit count, number)`: the inverse of [`split_numbered`].
fn rebuild_numbered(prefix: &[u8], digits: usize, mut value: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(prefix);
    let start = out.len();
    out.resize(start + digits, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    debug_assert_eq!(value, 0, "the number has at most `digits` digits");
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    prefix: Box<[u8]>,
    digits: u8,
}

enum Insert {
    /// First time this id is seen.
    Fresh,
    /// The id's bit was already set.
    Seen,
    /// Not a numbered id: it goes to the fingerprint logs.
    NotNumbered,
    /// The bitmaps are over their budget or out of classes: give them up.
    Full,
}

/// Paged bitmaps of numbered ids.
#[derive(Debug, Default)]
struct NumberedIds {
    classes: Vec<Class>,
    /// `class << 48 | number >> PAGE_BITS` → page index. Numbers are below 10^18 < 2^60, so
    /// the page number fits 44 bits.
    pages: FxHashMap<u64, u32>,
    keys: Vec<u64>,
    bits: Vec<Box<[u64]>>,
    ids: u64,
    last_class: Option<usize>,
    last_page: Option<(u64, u32)>,
}

impl NumberedIds {
    #[inline]
    fn insert(&mut self, id: &[u8]) -> Insert {
        let Some((prefix, digits, value)) = split_numbered(id) else {
            return Insert::NotNumbered;
        };
        let class = match self.class_of(prefix, digits) {
            Some(class) => class,
            None => return Insert::Full,
        };
        let key = (class as u64) << 48 | value >> PAGE_BITS;
        let page = match self.last_page {
            Some((k, page)) if k == key => page,
            _ => match self.pages.get(&key) {
                Some(&page) => page,
                None => {
                    let pages = self.bits.len() as u64 + 1;
                    if pages * PAGE_BYTES > PAGE_BYTES_FREE + PAGE_BYTES_PER_ID * self.ids {
                        return Insert::Full;
                    }
                    let page = self.bits.len() as u32;
                    self.bits.push(vec![0u64; PAGE_WORDS].into_boxed_slice());
                    self.keys.push(key);
                    self.pages.insert(key, page);
                    page
                }
            },
        };
        self.last_page = Some((key, page));
        let bit = value & ((1 << PAGE_BITS) - 1);
        let word = &mut self.bits[page as usize][(bit >> 6) as usize];
        let mask = 1u64 << (bit & 63);
        if *word & mask != 0 {
            return Insert::Seen;
        }
        *word |= mask;
        self.ids += 1;
        Insert::Fresh
    }

    #[inline]
    fn class_of(&mut self, prefix: &[u8], digits: usize) -> Option<usize> {
        if let Some(c) = self.last_class {
            let class = &self.classes[c];
            if usize::from(class.digits) == digits && same_prefix(&class.prefix, prefix) {
                return Some(c);
            }
        }
        let found = self
            .classes
            .iter()
            .position(|c| usize::from(c.digits) == digits && *c.prefix == *prefix);
        let c = match found {
            Some(c) => c,
            None if self.classes.len() < MAX_CLASSES => {
                self.classes.push(Class {
                    prefix: prefix.into(),
                    digits: digits as u8,
                });
                self.classes.len() - 1
            }
            None => return None,
        };
        self.last_class = Some(c);
        Some(c)
    }

    /// Calls `f` with the text of every id whose bit is set in `words` of page `key`.
    fn each_id_of(&self, key: u64, words: &[u64], id: &mut Vec<u8>, f: &mut impl FnMut(&[u8])) {
        let class = &self.classes[(key >> 48) as usize];
        let base = (key & ((1 << 48) - 1)) << PAGE_BITS;
        for (w, &word) in words.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let bit = u64::from(rest.trailing_zeros());
                rest &= rest - 1;
                let value = base | (w as u64) << 6 | bit;
                rebuild_numbered(&class.prefix, usize::from(class.digits), value, id);
                f(id);
            }
        }
    }

    fn for_each_id(&self, mut f: impl FnMut(&[u8])) {
        let mut id = Vec::new();
        for (key, words) in self.keys.iter().zip(&self.bits) {
            self.each_id_of(*key, words, &mut id, &mut f);
        }
    }

    /// Calls `f` with every id set in both `self` and `other`.
    fn for_each_common(&self, other: &NumberedIds, mut f: impl FnMut(&[u8])) {
        let mut id = Vec::new();
        let mut common = vec![0u64; PAGE_WORDS];
        for (key, words) in self.keys.iter().zip(&self.bits) {
            let class = &self.classes[(key >> 48) as usize];
            let Some(other_class) = other.classes.iter().position(|c| c == class) else {
                continue;
            };
            let other_key = (other_class as u64) << 48 | (key & ((1 << 48) - 1));
            let Some(&other_page) = other.pages.get(&other_key) else {
                continue;
            };
            let other_words = &other.bits[other_page as usize];
            for ((c, a), b) in common.iter_mut().zip(words.iter()).zip(other_words.iter()) {
                *c = a & b;
            }
            self.each_id_of(*key, &common, &mut id, &mut f);
        }
    }
}

/// The ids one intake worker saw.
#[derive(Debug)]
pub struct IdRecord {
    /// `None` once given up: then every id is in `log`.
    numbered: Option<NumberedIds>,
    log: FingerprintLog,
    /// Fingerprints of numbered ids seen again by this record.
    repeats: Vec<u64>,
}

impl Default for IdRecord {
    fn default() -> IdRecord {
        IdRecord {
            numbered: Some(NumberedIds::default()),
            log: FingerprintLog::default(),
            repeats: Vec::new(),
        }
    }
}

impl IdRecord {
    /// Records one occurrence of `id`.
    #[inline]
    pub fn record(&mut self, id: &str) {
        let bytes = id.as_bytes();
        if let Some(numbered) = &mut self.numbered {
            match numbered.insert(bytes) {
                Insert::Fresh => return,
                Insert::Seen => {
                    self.repeats.push(fingerprint(bytes));
                    return;
                }
                Insert::NotNumbered => {}
                Insert::Full => self.give_up_bitmaps(),
            }
        }
        self.log.push(fingerprint(bytes));
    }

    /// Moves every id of the bitmaps into the fingerprint logs; later ids go there directly.
    fn give_up_bitmaps(&mut self) {
        if let Some(numbered) = self.numbered.take() {
            numbered.for_each_id(|id| self.log.push(fingerprint(id)));
        }
    }

    /// Distinct ids held in bitmaps, and fingerprints held in logs (repeats included).
    pub fn sizes(&self) -> (u64, u64) {
        (self.numbered.as_ref().map_or(0, |n| n.ids), self.log.len)
    }

    /// Bytes of memory the record holds, roughly.
    pub fn memory_bytes(&self) -> u64 {
        let bitmaps = self
            .numbered
            .as_ref()
            .map_or(0, |n| n.bits.len() as u64 * PAGE_BYTES);
        let logs: u64 = self
            .log
            .parts
            .iter()
            .map(|p| (p.full.len() * BLOCK_LEN + p.tail.capacity()) as u64 * 8)
            .sum();
        bitmaps + logs + self.repeats.capacity() as u64 * 8
    }
}

/// Fingerprints of every id that may occur more than once across `records`: each id that
/// does is among them. Uses up to `threads` threads for the fingerprint logs.
pub fn find_suspects(mut records: Vec<IdRecord>, threads: usize) -> FxHashSet<u64> {
    if records.iter().any(|r| r.numbered.is_none()) {
        records.iter_mut().for_each(IdRecord::give_up_bitmaps);
    }
    let mut suspects: FxHashSet<u64> = records
        .iter()
        .flat_map(|r| r.repeats.iter().copied())
        .collect();
    for (i, a) in records.iter().enumerate() {
        for b in &records[i + 1..] {
            if let (Some(a), Some(b)) = (&a.numbered, &b.numbered) {
                a.for_each_common(b, |id| {
                    suspects.insert(fingerprint(id));
                });
            }
        }
    }
    let logs: Vec<&FingerprintLog> = records
        .iter()
        .map(|r| &r.log)
        .filter(|l| !l.parts.is_empty())
        .collect();
    if logs.is_empty() {
        return suspects;
    }
    let threads = threads.clamp(1, PARTITIONS);
    let per_thread = PARTITIONS.div_ceil(threads);
    let found: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let logs = &logs;
                scope.spawn(move || {
                    let mut table = Vec::new();
                    let mut out = Vec::new();
                    let end = ((t + 1) * per_thread).min(PARTITIONS);
                    for p in t * per_thread..end {
                        let parts: Vec<&Partition> = logs.iter().map(|l| &l.parts[p]).collect();
                        log_repeats(&parts, &mut table, &mut out);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a suspect finder panicked"))
            .collect()
    });
    suspects.extend(found.into_iter().flatten());
    suspects
}

/// Appends to `out` each fingerprint met again in one partition of every log.
fn log_repeats(parts: &[&Partition], table: &mut Vec<u64>, out: &mut Vec<u64>) {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    if n < 2 {
        return;
    }
    let size = (n * 2).next_power_of_two();
    table.clear();
    table.resize(size, 0);
    let mask = size - 1;
    for fp in parts.iter().flat_map(|p| p.iter()) {
        // 0 marks an empty slot: fingerprint 0 shares key 1, at worst one false suspect.
        let key = fp.max(1);
        let mut i = key as usize & mask;
        loop {
            let slot = table[i];
            if slot == 0 {
                table[i] = key;
                break;
            }
            if slot == key {
                out.push(fp);
                break;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn prefixes_compare_as_their_bytes(
            a in proptest::collection::vec(proptest::sample::select(b"TAa0".to_vec()), 0..12),
            b in proptest::collection::vec(proptest::sample::select(b"TAa0".to_vec()), 0..12),
        ) {
            proptest::prop_assert_eq!(same_prefix(&a, &b), a == b);
            proptest::prop_assert!(same_prefix(&a, &a));
        }
    }

    fn suspects_of(parts: &[&[&str]]) -> Vec<String> {
        let records: Vec<IdRecord> = parts
            .iter()
            .map(|ids| {
                let mut r = IdRecord::default();
                ids.iter().for_each(|id| r.record(id));
                r
            })
            .collect();
        let all: Vec<&str> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let suspects = find_suspects(records, 2);
        let mut named: Vec<String> = all
            .iter()
            .filter(|id| suspects.contains(&fingerprint(id.as_bytes())))
            .map(|id| id.to_string())
            .collect();
        named.sort();
        named.dedup();
        named
    }

    #[test]
    fn numbered_ids_split_and_rebuild_exactly() {
        let mut out = Vec::new();
        for id in [
            "T00000000001",
            "T1",
            "T01",
            "0",
            "007",
            "ab-12_3",
            "999999999999999999",
        ] {
            let (prefix, digits, value) = split_numbered(id.as_bytes()).unwrap();
            rebuild_numbered(prefix, digits, value, &mut out);
            assert_eq!(out, id.as_bytes());
        }
        assert!(split_numbered(b"T").is_none());
        assert!(split_numbered(b"1234567890123456789").is_none());
        assert!(split_numbered(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ1").is_none());
    }

    /// The id split digit by digit: what [`split_numbered`] must agree with.
    fn split_numbered_bytewise(id: &[u8]) -> Option<(&[u8], usize, u64)> {
        let digits = id.iter().rev().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > MAX_DIGITS || id.len() - digits > MAX_PREFIX {
            return None;
        }
        let (prefix, number) = id.split_at(id.len() - digits);
        let value = number
            .iter()
            .fold(0u64, |v, b| v * 10 + u64::from(b - b'0'));
        Some((prefix, digits, value))
    }

    proptest::proptest! {
        #[test]
        fn split_numbered_agrees_with_the_bytewise_split(
            prefix in "[A-Za-z_/:9-]{0,30}",
            digits in "[0-9]{0,22}",
        ) {
            let id = format!("{prefix}{digits}");
            proptest::prop_assert_eq!(
                split_numbered(id.as_bytes()),
                split_numbered_bytewise(id.as_bytes()),
                "{}", id
            );
        }
    }

    #[test]
    fn split_numbered_reads_every_digit_count() {
        for digits in 1..=MAX_DIGITS {
            for value in [
                0u64,
                1,
                7,
                10u64.pow(digits as u32 - 1),
                10u64.pow(digits as u32) - 1,
            ] {
                for prefix in ["", "T", "TRADE-2026-11-25-"] {
                    let id = format!("{prefix}{value:0digits$}");
                    let split = split_numbered(id.as_bytes()).unwrap();
                    assert_eq!(split, (prefix.as_bytes(), digits, value), "{id}");
                }
            }
        }
    }

    #[test]
    fn repeats_are_found_within_and_across_records_in_both_representations() {
        // T1 and T01 are different ids with the same number.
        assert_eq!(
            suspects_of(&[&["T1", "T01", "X-a", "T1"], &["T2", "X-b", "X-a"]]),
            ["T1", "X-a"]
        );
        assert_eq!(
            suspects_of(&[&["T1", "T2"], &["T3", "T2"], &["T2"]]),
            ["T2"]
        );
        assert!(suspects_of(&[&["A1", "A2"], &["A3", "b"]]).is_empty());
    }

    #[test]
    fn sparse_numbers_move_to_the_logs_and_still_meet_the_other_record() {
        let mut sparse = IdRecord::default();
        // Each number on its own page: the bitmaps give up before 64 MiB.
        let ids: Vec<String> = (0..20_000u64)
            .map(|i| format!("N{:018}", i << 20))
            .collect();
        ids.iter().for_each(|id| sparse.record(id));
        assert!(sparse.numbered.is_none());
        assert_eq!(sparse.sizes(), (0, 20_000));
        let mut dense = IdRecord::default();
        dense.record(&ids[17]);
        dense.record("N1");
        assert!(dense.numbered.is_some());
        let suspects = find_suspects(vec![sparse, dense], 2);
        assert!(suspects.contains(&fingerprint(ids[17].as_bytes())));
        assert!(!suspects.contains(&fingerprint(b"N1")));
    }

    #[test]
    fn too_many_prefixes_give_the_bitmaps_up() {
        let mut r = IdRecord::default();
        for c in 0..=MAX_CLASSES {
            r.record(&format!("P{c}x1"));
        }
        assert!(r.numbered.is_none());
        r.record("P3x1");
        let suspects = find_suspects(vec![r], 1);
        assert_eq!(suspects.len(), 1);
        assert!(suspects.contains(&fingerprint(b"P3x1")));
    }

    #[test]
    fn dense_numbers_cost_a_bit_each() {
        let mut r = IdRecord::default();
        for i in 1..=1_000_000u64 {
            r.record(&format!("T{i:011}"));
        }
        assert_eq!(r.sizes(), (1_000_000, 0));
        assert!(r.memory_bytes() <= 16 * PAGE_BYTES);
        assert!(find_suspects(vec![r], 2).is_empty());
    }
}
