//! Trades in a request body (the intake server's `POST /v1/trades`): a JSON array of trade
//! objects, or JSON Lines (NDJSON: one object per line). Keys, checks and messages are those
//! of a `.jsonl` trade file (SPEC §2.4), so a bad value gets the same reason whether it came
//! in a file or over HTTP.
//!
//! Rows are numbered from 1: the element of the array, or the physical line of NDJSON.

use std::path::Path;

use serde_json::value::RawValue;

use super::jsonl_trades::decode;
use scan::Row;

#[path = "json_body_scan.rs"]
mod scan;
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
        if let Some(rows) = scan::scan_array(trimmed, &mut dates) {
            if rows.len() > trades_max {
                return Err(BodyError::TooManyTrades { max: trades_max });
            }
            for (i, row) in rows.iter().enumerate() {
                stats.rows += 1;
                let line = i as u64 + 1;
                match row {
                    Row::Trade(fields) => sink.trade(line, fields),
                    Row::Slow(object) => {
                        if let Err(error) =
                            decode(object, &mut owned, &mut dates, source, line, sink)
                        {
                            sink.bad_row(*error);
                        }
                    }
                }
            }
        } else {
            read_array_general(trimmed, source, trades_max, sink, &mut stats)?;
        }
    } else {
        let lines = text
            .split('\n')
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty());
        // Lines are at most line ends + 1: only a body near the limit needs the exact count.
        let lines_max = memchr::memchr_iter(b'\n', body).count() + 1;
        if lines_max > trades_max && lines.clone().count() > trades_max {
            return Err(BodyError::TooManyTrades { max: trades_max });
        }
        for (i, line) in lines {
            stats.rows += 1;
            let line_text = line.strip_suffix('\r').unwrap_or(line);
            let row = i as u64 + 1;
            if let Some(fields) = scan::scan_line(line_text, &mut dates) {
                sink.trade(row, &fields);
            } else if let Err(error) = decode(line_text, &mut owned, &mut dates, source, row, sink)
            {
                sink.bad_row(*error);
            }
        }
    }
    if stats.rows == 0 {
        return Err(BodyError::Empty);
    }
    Ok(stats)
}

/// The general path for an array: serde_json splits the elements (and words the error of a body
/// that is not an array), and the `.jsonl` decoder reads each. Taken when the fast path cannot
/// decide (module `scan`).
fn read_array_general<S: TradeSink>(
    trimmed: &str,
    source: &Path,
    trades_max: usize,
    sink: &mut S,
    stats: &mut ReadStats,
) -> Result<(), BodyError> {
    let mut owned: [String; 8] = Default::default();
    let mut dates = DateMemo::default();
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
    Ok(())
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

    /// Every row as either side saw it: fields (Debug) of good rows, the error of bad ones.
    #[derive(Default, PartialEq, Debug)]
    struct Exact {
        rows: Vec<(u64, String)>,
    }

    impl TradeSink for Exact {
        fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
            self.rows.push((line, format!("{t:?}")));
        }
        fn bad_row(&mut self, error: RowError) {
            self.rows.push((error.location.line, format!("{error:?}")));
        }
    }

    /// The body decoder before the fast path: serde_json splits an array, the `.jsonl`
    /// decoder reads every element and every NDJSON line.
    fn read_general(body: &[u8], max: usize) -> (Result<ReadStats, BodyError>, Exact) {
        let mut sink = Exact::default();
        let Ok(text) = std::str::from_utf8(body) else {
            let got = read_json_body(body, Path::new("b"), max, &mut sink);
            return (got, sink);
        };
        let trimmed = text.trim_start();
        let mut stats = ReadStats {
            rows: 0,
            bytes: body.len() as u64,
        };
        let result = if trimmed.starts_with('[') {
            read_array_general(trimmed, Path::new("b"), max, &mut sink, &mut stats)
        } else {
            let lines: Vec<_> = text
                .split('\n')
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .collect();
            if lines.len() > max {
                Err(BodyError::TooManyTrades { max })
            } else {
                let (mut owned, mut dates) = (Default::default(), DateMemo::default());
                for (i, line) in lines {
                    stats.rows += 1;
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    let row = i as u64 + 1;
                    if let Err(e) =
                        decode(line, &mut owned, &mut dates, Path::new("b"), row, &mut sink)
                    {
                        sink.bad_row(*e);
                    }
                }
                Ok(())
            }
        };
        let counted = if stats.rows == 0 {
            Err(BodyError::Empty)
        } else {
            Ok(stats)
        };
        let result = result.and(counted);
        (result, sink)
    }

    fn assert_same(body: &[u8], max: usize) {
        let mut fast = Exact::default();
        let got = read_json_body(body, Path::new("b"), max, &mut fast);
        let (expected, general) = read_general(body, max);
        assert_eq!(got, expected, "body {:?}", String::from_utf8_lossy(body));
        if expected.is_ok() {
            assert_eq!(fast, general, "body {:?}", String::from_utf8_lossy(body));
        }
    }

    /// The comparisons below mean something only if plain bodies do take the fast path.
    #[test]
    fn plain_bodies_take_the_fast_path() {
        let mut dates = DateMemo::default();
        let plain = format!("[{T1},{T2}]");
        let rows = scan::scan_array(&plain, &mut dates).expect("plain body");
        assert!(rows.iter().all(|r| matches!(r, Row::Trade(_))));
        assert!(scan::scan_line(T2, &mut dates).is_some());
        // An escape leaves the whole array to the general path; an unknown key, its object.
        let escaped = format!("[{T1},{}]", T2.replace("T2", "T\\u0032"));
        assert!(scan::scan_array(&escaped, &mut dates).is_none());
        let unknown = format!("[{T1},{}]", T2.replace("\"quantity\"", "\"qty\""));
        let rows = scan::scan_array(&unknown, &mut dates).expect("valid JSON");
        assert!(matches!(rows[1], Row::Slow(_)));
    }

    #[test]
    fn fast_path_equals_general_path_on_chosen_bodies() {
        let objects = [
            T1,
            T2,
            r#"{"trade_id":7,"business_date":"2026-11-25","instrument":12,"buyer":"A","seller":"B","price":1.5e1,"quantity":1,"executed_at":null}"#,
            r#"{"trade_id":"T\u0033","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1}"#,
            r#"{"trade_id":"T4","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1,"extra":1}"#,
            r#"{"trade_id":"T5","trade_id":"T5","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1}"#,
            r#"{"trade_id":"T6","business_date":"2026-02-30","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1}"#,
            r#"{"trade_id":"T7","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":true,"quantity":1}"#,
            r#"{"trade_id":"T8","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1.5}"#,
            r#"{"trade_id":"T9","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1,"executed_at":""}"#,
            r#"{"trade_id":"T10","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1,"executed_at":"2026-11-25 10:00:00+01:00"}"#,
            r#"{"trade_id":-1,"business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":-0.0,"quantity":"-3"}"#,
            r#"{"trade_id":"T11","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":[1],"quantity":1}"#,
            r#"{ "trade_id" : "T12" , "business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1 }"#,
            r#"{}"#,
            r#"{"trade_id":"Ä","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":"1","quantity":1}"#,
            r#"1"#,
            r#"{"trade_id":"T13","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":01,"quantity":1}"#,
        ];
        for (i, a) in objects.iter().enumerate() {
            for b in &objects[i..] {
                for body in [
                    format!("[{a},{b}]"),
                    format!("\n [ {a} ,\r\n\t{b} ] \n"),
                    format!("{a}\n{b}"),
                    format!("{a}\r\n\n  {b}  \n"),
                ] {
                    assert_same(body.as_bytes(), 10);
                    assert_same(body.as_bytes(), 1);
                }
            }
        }
        for body in [
            "[",
            "[]",
            "[,]",
            "[{}",
            "[{},]",
            "[{}]x",
            "\u{a0}[{}]",
            "[{\"a\":1}]",
            " ",
            "\n\n",
        ] {
            assert_same(body.as_bytes(), 10);
        }
    }

    /// Every single-byte deletion and replacement of a small body, on both paths.
    #[test]
    fn fast_path_equals_general_path_on_mutated_bodies() {
        let t3 = r#"{"trade_id":7,"business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B","price":1.5e-1,"quantity":"2","executed_at":null}"#;
        let replacements = b"\"{}[],:\\ 0-.eE+\t\nxn\x01";
        for base in [format!("[{T1},{t3}]"), format!("{T2}\n{t3}")] {
            let bytes = base.as_bytes();
            for at in 0..bytes.len() {
                let mut deleted = bytes.to_vec();
                deleted.remove(at);
                assert_same(&deleted, 10);
                for &r in replacements {
                    let mut changed = bytes.to_vec();
                    changed[at] = r;
                    assert_same(&changed, 10);
                }
            }
        }
    }
}
