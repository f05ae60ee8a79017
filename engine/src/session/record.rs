//! The payloads a session writes into its journal (format version 1, little-endian).
//!
//! The journal stores opaque records; a session's journal holds exactly two kinds:
//!
//! **Session header** (first record, once): 40 bytes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind `1` |
//! | 1 | 1 | format version `1` |
//! | 2 | 2 | zero |
//! | 4 | 4 | business date as `yyyymmdd` |
//! | 8 | 32 | BLAKE3 of the session's reference snapshot ([`reference_digest`]) |
//!
//! **Trades** (one record per accepted batch, so a batch is all-or-nothing on disk too: its
//! record is either whole, CRC and chain intact, or a torn tail that recovery removes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind `2` |
//! | 1 | 3 | zero |
//! | 4 | 4 | trade count `n` ≥ 1 |
//! | 8 | … | `n` trades |
//!
//! Each trade: 24 fixed bytes, then the texts (≈ 60–110 bytes for a typical trade):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | flags: bit 0 = `executed_at` present |
//! | 1 | 1 | price scale (0–18) |
//! | 2 | 1 | length of `trade_id` (1–32) |
//! | 3 | 1 | length of `instrument` (1–32) |
//! | 4 | 1 | length of `buyer` (1–32) |
//! | 5 | 1 | length of `seller` (1–32) |
//! | 6 | 1 | length of `executed_at` (0–255) |
//! | 7 | 1 | zero |
//! | 8 | 8 | price mantissa (i64) |
//! | 16 | 8 | quantity (i64) |
//! | 24 | … | `trade_id`, `instrument`, `buyer`, `seller`, `executed_at`, UTF-8, unpadded |
//!
//! The business date is not repeated per trade: every trade of a session has the session's
//! date (checked on arrival). The price is stored normalised as the readers parse it
//! (`21.540` → mantissa 2154, scale 2), which is also how the de-duplication hash sees it.

use clearhouse_formats::model::{BusinessDate, TradeFields};
use clearhouse_formats::money::Decimal;

pub const KIND_HEADER: u8 = 1;
pub const KIND_TRADES: u8 = 2;
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 40;
const TRADE_FIXED_LEN: usize = 24;
/// Longest `executed_at` text a record can hold.
pub const EXECUTED_AT_MAX_BYTES: usize = 255;

/// A record that is not what this version writes: the journal's CRC and chain were intact, so
/// this is a bug or a journal of another program, never a torn write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal record {seq}: {what}")]
pub struct RecordError {
    pub seq: u64,
    pub what: String,
}

/// The decoded session header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub date: BusinessDate,
    pub reference_digest: [u8; 32],
}

pub fn encode_header(header: &Header) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = KIND_HEADER;
    out[1] = FORMAT_VERSION;
    out[4..8].copy_from_slice(&header.date.yyyymmdd().to_le_bytes());
    out[8..40].copy_from_slice(&header.reference_digest);
    out
}

pub fn decode_header(seq: u64, payload: &[u8]) -> Result<Header, RecordError> {
    let bad = |what: &str| RecordError {
        seq,
        what: what.to_string(),
    };
    if payload.len() != HEADER_LEN || payload[0] != KIND_HEADER {
        return Err(bad("is not a session header"));
    }
    if payload[1] != FORMAT_VERSION || payload[2..4] != [0, 0] {
        return Err(bad("unsupported session header version"));
    }
    let yyyymmdd = u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes"));
    let date = BusinessDate::from_yyyymmdd(yyyymmdd).ok_or_else(|| bad("bad business date"))?;
    let mut reference_digest = [0u8; 32];
    reference_digest.copy_from_slice(&payload[8..40]);
    Ok(Header {
        date,
        reference_digest,
    })
}

/// Bytes one trade takes in a trades record.
pub fn encoded_len(t: &TradeFields<'_>) -> usize {
    TRADE_FIXED_LEN
        + t.trade_id.len()
        + t.instrument.len()
        + t.buyer.len()
        + t.seller.len()
        + t.executed_at.map_or(0, str::len)
}

/// Builds one trades record.
#[derive(Debug, Default)]
pub struct TradesRecord {
    buf: Vec<u8>,
    count: u32,
}

impl TradesRecord {
    pub fn with_capacity(bytes: usize) -> TradesRecord {
        let mut buf = Vec::with_capacity(bytes + 8);
        buf.extend_from_slice(&[KIND_TRADES, 0, 0, 0, 0, 0, 0, 0]);
        TradesRecord { buf, count: 0 }
    }

    /// Appends one trade. The caller has checked it (ids 1–32 bytes, `executed_at` at most
    /// [`EXECUTED_AT_MAX_BYTES`]); a violation is a bug.
    pub fn push(&mut self, t: &TradeFields<'_>) {
        if self.buf.is_empty() {
            *self = TradesRecord::with_capacity(encoded_len(t));
        }
        let at = t.executed_at.unwrap_or("");
        let len = |s: &str, max: usize| {
            assert!(
                s.len() <= max,
                "field of {} bytes in a trade record",
                s.len()
            );
            s.len() as u8
        };
        let scale = u8::try_from(t.price.scale).expect("price scale fits in a byte");
        self.buf.extend_from_slice(&[
            u8::from(t.executed_at.is_some()),
            scale,
            len(t.trade_id, 32),
            len(t.instrument, 32),
            len(t.buyer, 32),
            len(t.seller, 32),
            len(at, EXECUTED_AT_MAX_BYTES),
            0,
        ]);
        self.buf.extend_from_slice(&t.price.mantissa.to_le_bytes());
        self.buf.extend_from_slice(&t.quantity.to_le_bytes());
        for text in [t.trade_id, t.instrument, t.buyer, t.seller, at] {
            self.buf.extend_from_slice(text.as_bytes());
        }
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// A copy of the payload so far (empty if no trade was pushed).
    pub fn to_payload(&self) -> Vec<u8> {
        let mut copy = self.buf.clone();
        if self.count > 0 {
            copy[4..8].copy_from_slice(&self.count.to_le_bytes());
        }
        copy
    }

    /// The payload; `None` if no trade was pushed.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        self.buf[4..8].copy_from_slice(&self.count.to_le_bytes());
        Some(self.buf)
    }
}

/// Calls `f` with every trade of a trades record, `business_date` filled in.
pub fn decode_trades(
    seq: u64,
    payload: &[u8],
    business_date: &str,
    mut f: impl FnMut(&TradeFields<'_>),
) -> Result<u32, RecordError> {
    let bad = |what: String| RecordError { seq, what };
    if payload.len() < 8 || payload[0] != KIND_TRADES || payload[1..4] != [0, 0, 0] {
        return Err(bad("is not a trades record".to_string()));
    }
    let count = u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes"));
    if count == 0 {
        return Err(bad("holds no trade".to_string()));
    }
    let mut pos = 8;
    for i in 0..count {
        let fixed = payload
            .get(pos..pos + TRADE_FIXED_LEN)
            .ok_or_else(|| bad(format!("trade {i} is cut short")))?;
        let (flags, scale) = (fixed[0], fixed[1]);
        if flags > 1 || fixed[7] != 0 || (flags == 0 && fixed[6] != 0) {
            return Err(bad(format!("trade {i} has bad flags")));
        }
        let lens = [fixed[2], fixed[3], fixed[4], fixed[5], fixed[6]].map(usize::from);
        let mantissa = i64::from_le_bytes(fixed[8..16].try_into().expect("8 bytes"));
        let quantity = i64::from_le_bytes(fixed[16..24].try_into().expect("8 bytes"));
        pos += TRADE_FIXED_LEN;
        let mut texts = [""; 5];
        for (k, len) in lens.iter().enumerate() {
            let bytes = payload
                .get(pos..pos + len)
                .ok_or_else(|| bad(format!("trade {i} is cut short")))?;
            texts[k] =
                std::str::from_utf8(bytes).map_err(|_| bad(format!("trade {i} is not UTF-8")))?;
            pos += len;
        }
        let fields = TradeFields {
            trade_id: texts[0],
            business_date,
            instrument: texts[1],
            buyer: texts[2],
            seller: texts[3],
            price: Decimal {
                mantissa,
                scale: u32::from(scale),
            },
            quantity,
            executed_at: (flags == 1).then_some(texts[4]),
        };
        f(&fields);
    }
    if pos != payload.len() {
        return Err(bad(format!(
            "{} bytes follow the last trade",
            payload.len() - pos
        )));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade<'a>(id: &'a str, at: Option<&'a str>) -> TradeFields<'a> {
        TradeFields {
            trade_id: id,
            business_date: "2026-11-25",
            instrument: "XAU",
            buyer: "ALPHA",
            seller: "BETA-2",
            price: Decimal::parse("12.340").unwrap(),
            quantity: 700,
            executed_at: at,
        }
    }

    #[test]
    fn trades_round_trip() {
        let mut record = TradesRecord::default();
        assert!(TradesRecord::default().finish().is_none());
        let a = trade("T1", None);
        let b = trade("T2", Some("2026-11-25T09:30:00.123+08:00"));
        record.push(&a);
        record.push(&b);
        assert_eq!(record.count(), 2);
        let payload = record.finish().unwrap();
        assert_eq!(payload.len(), 8 + encoded_len(&a) + encoded_len(&b));
        let mut got = Vec::new();
        let n = decode_trades(7, &payload, "2026-11-25", |t| {
            got.push(format!("{t:?}"));
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(got, vec![format!("{a:?}"), format!("{b:?}")]);
        // Damage that a CRC would not explain is still refused, naming the record.
        let mut cut = payload.clone();
        cut.pop();
        assert!(decode_trades(7, &cut, "d", |_| {}).is_err());
        let mut longer = payload;
        longer.push(0);
        let err = decode_trades(7, &longer, "d", |_| {}).unwrap_err();
        assert_eq!(err.seq, 7);
    }

    #[test]
    fn header_round_trips() {
        let header = Header {
            date: BusinessDate::parse("2026-11-25").unwrap(),
            reference_digest: [7; 32],
        };
        let bytes = encode_header(&header);
        assert_eq!(decode_header(1, &bytes).unwrap(), header);
        assert!(decode_header(1, &bytes[..39]).is_err());
        assert!(decode_trades(1, &bytes, "d", |_| {}).is_err());
    }
}
