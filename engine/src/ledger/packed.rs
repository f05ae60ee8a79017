//! How the ledger stores what grows with a market's size: positions and quantity entries as
//! one JSON object per account (per entry), and rendered outputs compressed.
//!
//! A market of 1,000 members and 2,000 instruments has up to two million positions, and every
//! batch that trades them posts as many securities legs. One SQLite row each made the commit
//! of a batch take seconds. Instead:
//! - `position_sets` holds one row per account: `{"<instrument>": quantity, ...}`, sorted by
//!   instrument, zeros left out. A batch rewrites the sets of the accounts it changed. The
//!   view `positions (account, instrument, quantity)` unpacks them with `json_each`, so
//!   `SELECT quantity FROM positions WHERE account = ? AND instrument = ?` still works.
//! - Legs of quantity entries (`securities`, `opening_position`, `withhold`) are stored in
//!   `entry_sets`, one row per entry and asset: `{"<account>": amount, ...}`. Money entries
//!   stay one row per leg in `entries`, where reconciliation and suspense assignment add
//!   theirs. The view `all_entries` is every leg of both, as `entries` once was.
//! - `outputs.content` is zstd-compressed (`encoding = 'zstd'`), and decompressed byte for
//!   byte when a posted day is restored.

use clearhouse_formats::table::{csv_from_parquet, push_int_text};
use rustc_hash::FxHashMap;

use super::db::{Db, DbError};

use crate::book::{kind, AccountId, AssetId, LegRef, Postings};

/// One account's positions (or one entry's amounts per account) as stored: a JSON object of
/// integers, keys sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionSet {
    json: String,
}

impl PositionSet {
    /// Encodes `(key, value)` pairs given in key order.
    pub fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, i64)>) -> PositionSet {
        let mut json = Vec::with_capacity(64);
        json.push(b'{');
        for (i, (key, value)) in pairs.enumerate() {
            if i > 0 {
                json.push(b',');
            }
            push_json_string(&mut json, key);
            json.push(b':');
            push_int_text(&mut json, value);
        }
        json.push(b'}');
        PositionSet {
            json: String::from_utf8(json).expect("keys are UTF-8, the rest ASCII"),
        }
    }

    pub fn from_json(json: String) -> PositionSet {
        PositionSet { json }
    }

    pub fn as_json(&self) -> &str {
        &self.json
    }

    /// Calls `f` for every `(key, value)`. The text was written by [`PositionSet::from_sorted`]
    /// (or SQLite's `json_group_object` in a migration); anything else is a corrupt ledger.
    pub fn try_for_each(&self, mut f: impl FnMut(&str, i64)) -> Result<(), String> {
        use serde::de::{Deserializer, MapAccess, Visitor};
        struct Each<'f, F>(&'f mut F);
        impl<'de, F: FnMut(&str, i64)> Visitor<'de> for Each<'_, F> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of integers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: i64 = map.next_value()?;
                    (self.0)(&key, value);
                }
                Ok(())
            }
        }
        let mut de = serde_json::Deserializer::from_str(&self.json);
        de.deserialize_map(Each(&mut f))
            .and_then(|()| de.end())
            .map_err(|e| format!("malformed position set {:.60}: {e}", self.json))
    }

    /// [`PositionSet::try_for_each`] on a set this build wrote: a malformed one panics.
    pub fn for_each(&self, f: impl FnMut(&str, i64)) {
        if let Err(e) = self.try_for_each(f) {
            panic!("{e}");
        }
    }
}

/// An object key, borrowed from the JSON text unless it had escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A JSON string literal.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // Ids rarely need escapes: one scan, then one copy.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(s.as_bytes());
    } else {
        let mut buf = [0u8; 4];
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
    }
    out.push(b'"');
}

/// Legs stored in `entry_sets` rather than one row each: quantity entries.
fn is_packed(entry_kind: &str) -> bool {
    kind::is_quantity(entry_kind)
}

/// The legs of one entry in one asset: `(entry_id, asset, kind, [(account, amount)])`.
type LegSet<'a> = (&'a str, &'a str, &'static str, Vec<(&'a str, i64)>);

/// One leg of a packed set: the account's rank, the account and the amount.
type RankedLeg = (u32, AccountId, i64);

/// Writes every leg of a batch (or of the opening): money legs as rows of `entries`, quantity
/// legs as one `entry_sets` row per entry and asset. `middle` runs once, halfway through.
pub fn write_legs<'a>(
    tx: &Db,
    business_date: &str,
    legs: impl ExactSizeIterator<Item = LegRef<'a>>,
    mut middle: impl FnMut(),
) -> Result<(), DbError> {
    let total = legs.len();
    let rows = "INSERT INTO entries (business_date, entry_id, kind, account, asset, amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    // (entry_id, asset) → its set, in order of first leg.
    let mut index: FxHashMap<(&str, &str), usize> = FxHashMap::default();
    let mut sets: Vec<LegSet<'_>> = Vec::new();
    for (i, leg) in legs.enumerate() {
        if i == total / 2 {
            middle();
        }
        if !is_packed(leg.kind) {
            tx.execute(
                rows,
                &[
                    &business_date,
                    &leg.entry_id,
                    &leg.kind,
                    &leg.account,
                    &leg.asset,
                    &leg.amount,
                ],
            )?;
            continue;
        }
        // The legs of one entry come together: the last set is nearly always the one.
        let slot = match sets.last() {
            Some((entry_id, asset, _, _))
                if std::ptr::eq(*entry_id, leg.entry_id) && std::ptr::eq(*asset, leg.asset) =>
            {
                sets.len() - 1
            }
            _ => *index.entry((leg.entry_id, leg.asset)).or_insert_with(|| {
                sets.push((leg.entry_id, leg.asset, leg.kind, Vec::new()));
                sets.len() - 1
            }),
        };
        sets[slot].3.push((leg.account, leg.amount));
    }
    let packed = "INSERT INTO entry_sets (business_date, entry_id, kind, asset, amounts)
         VALUES (?1, ?2, ?3, ?4, ?5)";
    for (entry_id, asset, entry_kind, mut amounts) in sets {
        amounts.sort_by(|a, b| a.0.cmp(b.0));
        if let Some(w) = amounts.windows(2).find(|w| w[0].0 == w[1].0) {
            // As the primary key of `entries` would: an entry names an account once per asset.
            return Err(DbError::Refused(format!(
                "entry {entry_id} has two legs of {} in {asset}",
                w[0].0
            )));
        }
        let set = PositionSet::from_sorted(amounts.into_iter());
        tx.execute(
            packed,
            &[
                &business_date,
                &entry_id,
                &entry_kind,
                &asset,
                &set.as_json(),
            ],
        )?;
    }
    Ok(())
}

/// [`write_legs`] for a batch's postings, the same rows: legs grouped by entry rank and asset
/// number and each set sorted by account rank, so that millions of legs cost no string
/// comparison and no hash of a name.
pub fn write_postings(
    tx: &Db,
    business_date: &str,
    postings: &Postings,
    mut middle: impl FnMut(),
) -> Result<(), DbError> {
    let total = postings.legs.len();
    let rows = "INSERT INTO entries (business_date, entry_id, kind, account, asset, amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    let entry_ranks = postings.entry_ranks();
    let account_ranks = postings.account_ranks();
    let packed_entry: Vec<bool> = postings.entries.iter().map(|(_, k)| is_packed(k)).collect();
    // (entry rank, asset) → its set, in order of first leg. Each set keeps the entry of its
    // first leg (for the id and kind) and `(account rank, account, amount)` per leg.
    let mut index: FxHashMap<(u32, AssetId), usize> = FxHashMap::default();
    let mut sets: Vec<(u32, AssetId, Vec<RankedLeg>)> = Vec::new();
    for (i, leg) in postings.legs.iter().enumerate() {
        if i == total / 2 {
            middle();
        }
        if !packed_entry[leg.entry as usize] {
            let r = postings.leg(leg);
            tx.execute(
                rows,
                &[
                    &business_date,
                    &r.entry_id,
                    &r.kind,
                    &r.account,
                    &r.asset,
                    &r.amount,
                ],
            )?;
            continue;
        }
        let rank = entry_ranks[leg.entry as usize];
        // The legs of one entry come together: the last set is nearly always the one.
        let slot = match sets.last() {
            Some((entry, asset, _))
                if entry_ranks[*entry as usize] == rank && *asset == leg.asset =>
            {
                sets.len() - 1
            }
            _ => *index.entry((rank, leg.asset)).or_insert_with(|| {
                sets.push((leg.entry, leg.asset, Vec::new()));
                sets.len() - 1
            }),
        };
        sets[slot]
            .2
            .push((account_ranks[leg.account.index()], leg.account, leg.amount));
    }
    let packed = "INSERT INTO entry_sets (business_date, entry_id, kind, asset, amounts)
         VALUES (?1, ?2, ?3, ?4, ?5)";
    for (entry, asset, mut amounts) in sets {
        let (entry_id, entry_kind) = &postings.entries[entry as usize];
        let asset = &postings.assets[asset.index()];
        // Stable, as the sort by name in `write_legs`: accounts are interned, so equal ranks
        // are one account.
        amounts.sort_by_key(|(rank, _, _)| *rank);
        if let Some(w) = amounts.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(DbError::Refused(format!(
                "entry {entry_id} has two legs of {} in {asset}",
                postings.accounts[w[0].1.index()]
            )));
        }
        let set =
            PositionSet::from_sorted(amounts.iter().map(|(_, account, amount)| {
                (postings.accounts[account.index()].as_str(), *amount)
            }));
        tx.execute(
            packed,
            &[
                &business_date,
                &entry_id,
                entry_kind,
                &asset,
                &set.as_json(),
            ],
        )?;
    }
    Ok(())
}

/// Writes each account's position set (a set that became empty is kept, as `{}`).
pub fn write_position_sets(tx: &Db, sets: &[(String, PositionSet)]) -> Result<(), DbError> {
    for (account, set) in sets {
        tx.execute(
            "INSERT INTO position_sets (account, quantities) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET quantities = excluded.quantities",
            &[account, &set.as_json()],
        )?;
    }
    Ok(())
}

/// zstd level for stored outputs: fast, and CSV shrinks about tenfold.
const OUTPUT_ZSTD_LEVEL: i32 = 1;

/// Outputs are compressed in pieces of at most this many bytes, each its own zstd frame (a
/// stored output is the concatenation, which decompresses as one stream), so that threads
/// share the work evenly: whole files dealt to two threads left one compressing postings.csv
/// alone for a fifth of a second on a 10M-trade day.
const OUTPUT_CHUNK_BYTES: usize = 8 << 20;

/// The stored form of each output (zstd), compressed on up to `threads` threads.
pub fn encode_outputs(outputs: &[(String, Vec<u8>)], threads: usize) -> Vec<Vec<u8>> {
    encode_outputs_in(outputs, threads, OUTPUT_CHUNK_BYTES)
}

/// The stored form of one output (or of one part of it: the stored forms of consecutive
/// parts concatenate to the stored form of the whole), compressed on this thread.
pub fn encode_output(content: &[u8]) -> Vec<u8> {
    encode_output_in(content, OUTPUT_CHUNK_BYTES)
}

fn encode_output_in(content: &[u8], chunk_bytes: usize) -> Vec<u8> {
    if content.is_empty() {
        return compress_piece(content);
    }
    let mut stored = Vec::new();
    for piece in content.chunks(chunk_bytes.max(1)) {
        stored.extend_from_slice(&compress_piece(piece));
    }
    stored
}

fn compress_piece(piece: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(piece, OUTPUT_ZSTD_LEVEL).expect("zstd compresses any input")
}

fn encode_outputs_in(
    outputs: &[(String, Vec<u8>)],
    threads: usize,
    chunk_bytes: usize,
) -> Vec<Vec<u8>> {
    let compress = compress_piece;
    // (output, piece): an empty output is one empty piece, so that it still gets a frame.
    let mut pieces: Vec<(usize, &[u8])> = Vec::new();
    for (i, (_, content)) in outputs.iter().enumerate() {
        if content.is_empty() {
            pieces.push((i, &content[..]));
        }
        pieces.extend(content.chunks(chunk_bytes.max(1)).map(|c| (i, c)));
    }
    let mut encoded: Vec<Vec<u8>> = vec![Vec::new(); outputs.len()];
    if threads <= 1 || pieces.len() < 2 {
        for (i, piece) in pieces {
            encoded[i].extend_from_slice(&compress(piece));
        }
        return encoded;
    }
    // Largest first, each thread taking the next piece when it is free.
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(pieces[p].1.len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut frames: Vec<Vec<u8>> = vec![Vec::new(); pieces.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(pieces.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&p) = order.get(k) else {
                            return done;
                        };
                        done.push((p, compress(pieces[p].1)));
                    }
                })
            })
            .collect();
        for h in handles {
            for (p, frame) in h.join().expect("an output compressor panicked") {
                frames[p] = frame;
            }
        }
    });
    // Pieces are in output order and, within an output, in content order.
    for ((i, _), frame) in pieces.iter().zip(frames) {
        encoded[*i].extend_from_slice(&frame);
    }
    encoded
}

/// A stored output compressed by [`encode_output`].
pub const ZSTD: &str = "zstd";

/// A stored CSV output kept as its header line only: the file is derived from the same
/// table's Parquet output of the same batch ([`csv_from_parquet`]), which holds the same rows.
/// Compressing a 2M-row CSV of numbers took a core ~0.4 s for a 3.4× ratio; the Parquet file
/// is already compact.
pub const CSV_OF_PARQUET: &str = "csv-of-parquet";

/// The output as written, from its stored form (one that does not depend on another output).
pub fn decode_output(name: &str, encoding: &str, content: Vec<u8>) -> Result<Vec<u8>, String> {
    match encoding {
        "identity" => Ok(content),
        ZSTD => zstd::stream::decode_all(content.as_slice())
            .map_err(|e| format!("stored output {name} does not decompress: {e}")),
        other => Err(format!(
            "stored output {name} has an unknown encoding {other:?}"
        )),
    }
}

/// A batch's outputs as written, from their stored rows `(name, encoding, content)`: CSV files
/// kept as [`CSV_OF_PARQUET`] are derived from their Parquet twins. In the rows' order.
pub fn decode_outputs(
    rows: Vec<(String, String, Vec<u8>)>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut decoded: Vec<(String, Option<Vec<u8>>)> = Vec::with_capacity(rows.len());
    let mut derived = Vec::new();
    for (i, (name, encoding, content)) in rows.into_iter().enumerate() {
        if encoding == CSV_OF_PARQUET {
            derived.push((i, content));
            decoded.push((name, None));
        } else {
            let content = decode_output(&name, &encoding, content)?;
            decoded.push((name, Some(content)));
        }
    }
    for (i, header) in derived {
        let name = &decoded[i].0;
        let twin = name
            .strip_suffix(".csv")
            .map(|stem| format!("{stem}.parquet"))
            .and_then(|twin| decoded.iter().find(|(n, _)| *n == twin))
            .and_then(|(_, content)| content.clone())
            .ok_or_else(|| format!("stored output {name} needs a Parquet twin, none is stored"))?;
        let content =
            csv_from_parquet(&header, twin).map_err(|e| format!("stored output {name}: {e}"))?;
        decoded[i].1 = Some(content);
    }
    Ok(decoded
        .into_iter()
        .map(|(name, content)| (name, content.expect("every output decoded")))
        .collect())
}

/// Schema 1 → 2: positions become position sets (with the `positions` view), quantity
/// legs get `entry_sets` (old legs stay rows of `entries`; `all_entries` shows both), and
/// outputs get their encoding. One transaction: a ledger is either version.
pub const MIGRATE_1_TO_2: &str = "
BEGIN IMMEDIATE;
CREATE TABLE position_sets (account TEXT PRIMARY KEY, quantities TEXT NOT NULL);
INSERT INTO position_sets (account, quantities)
    SELECT account, json_group_object(instrument, quantity)
    FROM (SELECT account, instrument, quantity FROM positions WHERE quantity != 0
          ORDER BY account, instrument)
    GROUP BY account;
DROP TABLE positions;
CREATE VIEW positions AS
    SELECT s.account AS account, j.key AS instrument, j.value AS quantity
    FROM position_sets s, json_each(s.quantities) j;
CREATE TABLE entry_sets (
    business_date TEXT NOT NULL, entry_id TEXT NOT NULL, kind TEXT NOT NULL,
    asset TEXT NOT NULL, amounts TEXT NOT NULL,
    PRIMARY KEY (business_date, entry_id, asset));
CREATE VIEW all_entries AS
    SELECT business_date, entry_id, kind, account, asset, amount FROM entries
    UNION ALL
    SELECT s.business_date, s.entry_id, s.kind, j.key, s.asset, j.value
    FROM entry_sets s, json_each(s.amounts) j;
ALTER TABLE outputs ADD COLUMN encoding TEXT NOT NULL DEFAULT 'identity';
UPDATE meta SET value = 2 WHERE key = 'schema';
COMMIT;
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_sets_round_trip_any_key() {
        let pairs = [
            ("A\"b", -5),
            ("I00001", i64::MAX),
            ("x\\y\n", i64::MIN),
            ("中", 0),
        ];
        let set = PositionSet::from_sorted(pairs.iter().map(|(k, v)| (*k, *v)));
        let mut back = Vec::new();
        set.for_each(|k, v| back.push((k.to_string(), v)));
        let expected: Vec<(String, i64)> = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(back, expected);
        assert!(PositionSet::from_json("{\"a\":1.5}".into())
            .try_for_each(|_, _| {})
            .is_err());
        assert!(PositionSet::from_json("{} x".into())
            .try_for_each(|_, _| {})
            .is_err());
    }

    #[test]
    fn outputs_come_back_byte_for_byte() {
        let outputs = vec![
            // No two pieces alike, so that a piece out of place shows.
            (
                "a.csv".to_string(),
                (0..3000)
                    .flat_map(|i| format!("{i},{}\n", i * 7).into_bytes())
                    .collect(),
            ),
            ("b.csv".to_string(), Vec::new()),
            ("c.xml".to_string(), b"<a/>".to_vec()),
        ];
        for threads in [1, 2, 3] {
            // One frame per output, and many (a piece of 1,000 bytes each).
            for chunk_bytes in [OUTPUT_CHUNK_BYTES, 1000] {
                let encoded = encode_outputs_in(&outputs, threads, chunk_bytes);
                for ((name, content), stored) in outputs.iter().zip(encoded) {
                    assert_eq!(&decode_output(name, "zstd", stored).unwrap(), content);
                }
            }
        }
        // Same bytes whatever the thread count: the stored outputs are part of the ledger.
        assert_eq!(
            encode_outputs_in(&outputs, 1, 1000),
            encode_outputs_in(&outputs, 3, 1000)
        );
        // One output compressed on one thread, whole or in parts, as the run's renderers do.
        let content = &outputs[0].1;
        assert_eq!(
            encode_output_in(content, 1000),
            encode_outputs_in(&outputs, 2, 1000)[0]
        );
        let (head, tail) = content.split_at(1234);
        let mut parts = encode_output_in(head, 1000);
        parts.extend(encode_output_in(tail, 1000));
        assert_eq!(&decode_output("a", "zstd", parts).unwrap(), content);
        assert_eq!(
            decode_output("b", "zstd", encode_output(&[])).unwrap(),
            Vec::<u8>::new()
        );
        assert_eq!(decode_output("a", "identity", vec![1, 2]).unwrap(), [1, 2]);
        assert!(decode_output("a", "zstd", vec![1, 2]).is_err());
    }

    #[test]
    fn a_schema_1_ledger_migrates_with_its_positions() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO meta VALUES ('schema', 1);
             CREATE TABLE positions (account TEXT NOT NULL, instrument TEXT NOT NULL,
                 quantity INTEGER NOT NULL, PRIMARY KEY (account, instrument)) WITHOUT ROWID;
             INSERT INTO positions VALUES ('A', 'X', 5), ('A', 'Y', 0), ('B', 'X', -5);
             CREATE TABLE entries (business_date TEXT NOT NULL, entry_id TEXT NOT NULL,
                 kind TEXT NOT NULL, account TEXT NOT NULL, asset TEXT NOT NULL,
                 amount INTEGER NOT NULL,
                 PRIMARY KEY (business_date, entry_id, account, asset)) WITHOUT ROWID;
             INSERT INTO entries VALUES ('d', 'SEC-X', 'securities', 'A', 'X', 5);
             CREATE TABLE outputs (business_date TEXT NOT NULL, name TEXT NOT NULL,
                 content BLOB NOT NULL, PRIMARY KEY (business_date, name));
             INSERT INTO outputs VALUES ('d', 'a.csv', x'6869');",
        )
        .unwrap();
        conn.execute_batch(MIGRATE_1_TO_2).unwrap();
        let rows: Vec<(String, String, i64)> = conn
            .prepare("SELECT account, instrument, quantity FROM positions ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [("A".into(), "X".into(), 5), ("B".into(), "X".into(), -5)]
        );
        let (encoding, legs): (String, i64) = conn
            .query_row(
                "SELECT (SELECT encoding FROM outputs), (SELECT count(*) FROM all_entries)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((encoding.as_str(), legs), ("identity", 1));
    }
}
