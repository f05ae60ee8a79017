//! Trades in a request body (the intake server's `POST /v1/trades`): a JSON array of trade
//! objects, or JSON Lines (NDJSON: one object per line). Keys, checks and messages are those
//! of a `.jsonl` trade file (SPEC §2.4), so a bad value gets the same reason whether it came
//! in a file or over HTTP.
//!
//! Rows are numbered from 1: the element of the array, or the physical line of NDJSON.

use std::path::Path;

use serde_json::value::RawValue;

use super::jsonl_trades::decode;
use super::{DateMemo, ReadStats, TradeSink};

/// Why a body could not be read as trades at all (as opposed to a bad trade in it, which goes
/// to the sink).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not UTF-8 (byte {valid_up_to} is not)")]
    NotUtf8 { valid_up_to: usize },
    #[error("body is not a JSON array of trade objects: {0}")]
    NotJsonArray(String),
    #[error("body holds no trade")]
    Empty,
    #[error("body holds more than {max} trades")]
    TooManyTrades { max: usize },
}

/// Reads a body of at most `trades_max` trades into `sink`. The body is an array if its first
/// non-blank byte is `[`, else NDJSON. Nothing reaches the sink unless the count is within
/// `trades_max`, so an oversized body is refused before any work per trade.
pub fn read_json_body<S: TradeSink>(
    body: &[u8],
    source: &Path,
    trades_max: usize,
    sink: &mut S,
) -> Result<ReadStats, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| BodyError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start();
    let mut owned: [String; 8] = Default::default();
    let mut dates = DateMemo::default();
    let mut stats = ReadStats {
        rows: 0,
        bytes: body.len() as u64,
    };
    if trimmed.starts_with('[') {
        let elements: Vec<&RawValue> =
            serde_json::from_str(trimmed).map_err(|e| BodyError::NotJsonArray(e.to_string()))?;
        if elements.len() > trades_max {
            return Err(BodyError::TooManyTrades { max: trades_max });
        }
        for (i, raw) in elements.iter().enumerate() {
            stats.rows += 1;
            if let Err(error) = decode(
                raw.get(),
                &mut owned,
                &mut dates,
                source,
                i as u64 + 1,
                sink,
            ) {
                sink.bad_row(*error);
            }
        }
    } else {
        let lines = text
            .split('\n')
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty());
        if lines.clone().count() > trades_max {
            return Err(BodyError::TooManyTrades { max: trades_max });
        }
        for (i, line) in lines {
            stats.rows += 1;
            let line_text = line.strip_suffix('\r').unwrap_or(line);
            if let Err(error) = decode(
                line_text,
                &mut owned,
                &mut dates,
                source,
                i as u64 + 1,
                sink,
            ) {
                sink.bad_row(*error);
            }
        }
    }
    if stats.rows == 0 {
        return Err(BodyError::Empty);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RowError, TradeFields};

    #[derive(Default)]
    struct Collect {
        ok: Vec<(u64, String, String)>,
        bad: Vec<RowError>,
    }

    impl TradeSink for Collect {
        fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
            self.ok
                .push((line, t.trade_id.to_string(), t.price.to_text()));
        }
        fn bad_row(&mut self, error: RowError) {
            self.bad.push(error);
        }
    }

    const T1: &str = r#"{"trade_id":"T1","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":10.005,"quantity":1}"#;
    const T2: &str = r#"{"trade_id":"T2","business_date":"2026-11-25","instrument":"X","buyer":"B","seller":"A","price":"12.340","quantity":"700","executed_at":"2026-11-25T10:00:00Z"}"#;

    fn read(body: &str, max: usize) -> Result<Collect, BodyError> {
        let mut sink = Collect::default();
        read_json_body(body.as_bytes(), Path::new("body"), max, &mut sink)?;
        Ok(sink)
    }

    #[test]
    fn reads_arrays_and_ndjson_alike() {
        let array = read(&format!(" [{T1},\n{T2}]"), 10).unwrap();
        let lines = read(&format!("{T1}\r\n\n{T2}\n"), 10).unwrap();
        assert!(array.bad.is_empty() && lines.bad.is_empty());
        assert_eq!(array.ok[0].2, "10.005");
        assert_eq!(array.ok[1].0, 2);
        // NDJSON rows are physical lines: the blank line counts.
        assert_eq!(lines.ok[1].0, 3);
        assert_eq!(
            array.ok.iter().map(|t| &t.1).collect::<Vec<_>>(),
            lines.ok.iter().map(|t| &t.1).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_trades_go_to_the_sink_with_their_row() {
        let body = format!("[{T1}, {}]", T2.replace("\"700\"", "\"7x\""));
        let got = read(&body, 10).unwrap();
        assert_eq!(got.ok.len(), 1);
        assert_eq!(got.bad.len(), 1);
        assert_eq!(got.bad[0].location.line, 2);
        assert_eq!(got.bad[0].column, "quantity");
    }

    #[test]
    fn refuses_bodies_that_are_not_trades() {
        assert_eq!(read("", 10).err(), Some(BodyError::Empty));
        assert_eq!(read("[]", 10).err(), Some(BodyError::Empty));
        assert!(matches!(read("[1,", 10), Err(BodyError::NotJsonArray(_))));
        assert_eq!(
            read(&format!("[{T1},{T2}]"), 1).err(),
            Some(BodyError::TooManyTrades { max: 1 })
        );
        assert_eq!(
            read(&format!("{T1}\n{T2}"), 1).err(),
            Some(BodyError::TooManyTrades { max: 1 })
        );
        let mut sink = Collect::default();
        assert_eq!(
            read_json_body(b"[\xff]", Path::new("b"), 1, &mut sink).err(),
            Some(BodyError::NotUtf8 { valid_up_to: 1 })
        );
    }
}
