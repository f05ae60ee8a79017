//! Trades from JSON Lines: one object per line.
//!
//! Values are captured as raw JSON text ([`RawValue`]) and interpreted here, so that a number
//! is read from its decimal text and never passes through a binary float (SPEC §2.4), and so
//! that a wrong key or type gets a message naming the key.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use memchr::memchr;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    check_text, price_error, price_from_text, quantity_from_text, Bad, DateMemo, ReadStats,
    TradeSink, BUSINESS_DATE, BUYER, EXECUTED_AT, INSTRUMENT, PRICE, QUANTITY, SELLER,
    TRADE_COLUMNS, TRADE_COLUMN_NAMES, TRADE_ID,
};
use crate::fields::{decimal_from_json_number, UTF8_REASON};
use crate::model::{Location, RowError, TradeFields};
use crate::FormatError;

const INITIAL_BUFFER: usize = 1 << 20;
/// A longer line is refused rather than buffered (a file without line ends must not exhaust
/// memory); a trade object is a few hundred bytes.
const MAX_LINE_BYTES: usize = 16 << 20;

pub(super) fn read<S: TradeSink>(path: &Path, sink: &mut S) -> Result<ReadStats, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let mut lines = Lines::new(file);
    let mut owned: [String; 8] = Default::default();
    let mut dates = DateMemo::default();
    let mut stats = ReadStats::default();
    loop {
        let (line, bytes) = match lines.next_line().map_err(io_error)? {
            Next::End => break,
            Next::TooLong(line) => {
                stats.rows += 1;
                sink.bad_row(RowError::new(
                    Location::new(path, line),
                    "",
                    "",
                    "",
                    "line is longer than 16 MiB",
                ));
                continue;
            }
            Next::Line(line, bytes) => (line, bytes),
        };
        // A blank line holds no trade; editors and concatenation leave them. JSON whitespace is
        // ASCII, so the bytes can be trimmed before they are known to be UTF-8.
        if bytes.trim_ascii().is_empty() {
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            stats.rows += 1;
            sink.bad_row(RowError::new(
                Location::new(path, line),
                "",
                "",
                &String::from_utf8_lossy(bytes),
                format!("line {UTF8_REASON}"),
            ));
            continue;
        };
        stats.rows += 1;
        if let Err(error) = decode(text, &mut owned, &mut dates, path, line, sink) {
            sink.bad_row(*error);
        }
    }
    stats.bytes = lines.bytes_read;
    // JSON Lines has no header, so a file without a single object is most likely a truncated
    // transfer rather than a day without trades.
    if stats.rows == 0 {
        sink.bad_row(RowError::new(
            Location::new(path, 1),
            "",
            "",
            "",
            "file holds no JSON object: one object per trade is expected",
        ));
    }
    Ok(stats)
}

pub(super) fn decode<S: TradeSink>(
    text: &str,
    owned: &mut [String; 8],
    dates: &mut DateMemo,
    path: &Path,
    line: u64,
    sink: &mut S,
) -> Result<(), Box<RowError>> {
    let object: TradeObject<'_> = serde_json::from_str(text).map_err(|e| {
        RowError::new(
            Location::new(path, line),
            "",
            "",
            "",
            format!("is not a valid JSON object: {}", json_error(&e)),
        )
    })?;
    // The id for messages, when the object has a plain string trade_id.
    let shown_id = object.slots[TRADE_ID]
        .map(|raw| classify(raw))
        .and_then(|v| match v {
            Json::Str(raw) if !raw.contains('\\') => raw.get(1..raw.len() - 1),
            _ => None,
        })
        .unwrap_or("");
    if let Some((key, reason)) = object.problem {
        return Err(Box::new(RowError::new(
            Location::new(path, line),
            if crate::model::is_valid_id(shown_id) {
                shown_id
            } else {
                ""
            },
            key,
            "",
            reason,
        )));
    }
    let kinds: [Option<Json<'_>>; 8] = object.slots.map(|raw| raw.map(classify));
    // Strings with escapes are unescaped into `owned` first, so that every field can then be
    // borrowed either from the line or from `owned`.
    for (k, kind) in kinds.iter().enumerate() {
        if let Some(Json::Str(raw)) = kind {
            if raw.contains('\\') {
                owned[k] = serde_json::from_str::<String>(raw).map_err(|e| {
                    Bad::new(
                        k,
                        raw,
                        format!("is not a valid JSON string: {}", json_error(&e)),
                    )
                    .into_row_error(path, line, shown_id)
                })?;
            }
        }
    }
    let mut values = kinds;
    for (k, value) in values.iter_mut().enumerate() {
        if let Some(Json::Str(raw)) = value {
            *raw = if raw.contains('\\') {
                &owned[k]
            } else {
                raw.get(1..raw.len() - 1).unwrap_or("")
            };
        }
    }
    let value = |k: usize| values[k];
    let fields = fields(&value, dates).map_err(|bad| {
        let trade_id = match value(TRADE_ID) {
            Some(Json::Str(s) | Json::Num(s)) => s,
            _ => "",
        };
        bad.into_row_error(path, line, trade_id)
    })?;
    sink.trade(line, &fields);
    Ok(())
}

fn fields<'a>(
    value: &impl Fn(usize) -> Option<Json<'a>>,
    dates: &mut DateMemo,
) -> Result<TradeFields<'a>, Bad> {
    let text = |k: usize| -> Result<&'a str, Bad> {
        match value(k) {
            Some(Json::Str(s)) => Ok(s),
            other => Err(wrong_type(k, other, "a string")),
        }
    };
    // Ids may be JSON integers, as in Parquet (SPEC §2.4); their text is the id.
    let id = |k: usize| -> Result<&'a str, Bad> {
        match value(k) {
            Some(Json::Str(s)) => Ok(s),
            Some(Json::Num(n)) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            other => Err(wrong_type(k, other, "a string")),
        }
    };
    let trade_id = id(TRADE_ID)?;
    let business_date = text(BUSINESS_DATE)?;
    let instrument = id(INSTRUMENT)?;
    let buyer = id(BUYER)?;
    let seller = id(SELLER)?;
    let executed_at = match value(EXECUTED_AT) {
        None | Some(Json::Null) => None,
        Some(Json::Str(s)) => super::optional_text(s),
        other => return Err(wrong_type(EXECUTED_AT, other, "a string or null")),
    };
    check_text(
        dates,
        trade_id,
        business_date,
        instrument,
        buyer,
        seller,
        executed_at,
    )?;
    let price = match value(PRICE) {
        Some(Json::Str(s)) => price_from_text(s)?,
        Some(Json::Num(n)) => decimal_from_json_number(n).map_err(|e| price_error(n, e))?,
        other => return Err(wrong_type(PRICE, other, "a string or a number")),
    };
    let quantity = match value(QUANTITY) {
        Some(Json::Str(s) | Json::Num(s)) => quantity_from_text(s)?,
        other => return Err(wrong_type(QUANTITY, other, "a number or a string")),
    };
    Ok(TradeFields {
        trade_id,
        business_date,
        instrument,
        buyer,
        seller,
        price,
        quantity,
        executed_at,
    })
}

fn wrong_type(column: usize, found: Option<Json<'_>>, expected: &str) -> Bad {
    match found {
        None => Bad::new(column, "", "is missing"),
        Some(Json::Null) => Bad::new(column, "null", format!("is null; it must be {expected}")),
        Some(Json::Str(s)) => Bad::new(column, s, format!("must be {expected}")),
        Some(Json::Num(n)) => Bad::new(column, n, format!("is a number; it must be {expected}")),
        Some(Json::Other(kind, raw)) => {
            Bad::new(column, raw, format!("is {kind}; it must be {expected}"))
        }
    }
}

/// A JSON value by kind, with its text: a string's raw text (quotes included) until it is
/// unescaped, a number's exact text.
#[derive(Debug, Clone, Copy)]
enum Json<'a> {
    Str(&'a str),
    Num(&'a str),
    Null,
    Other(&'static str, &'a str),
}

fn classify(raw: &RawValue) -> Json<'_> {
    // serde_json captures a value without the whitespace around it; JSON whitespace is ASCII.
    let text = raw.get().trim_ascii();
    match text.as_bytes().first() {
        Some(b'"') if text.len() >= 2 => Json::Str(text),
        Some(b'-' | b'0'..=b'9') => Json::Num(text),
        Some(b'n') => Json::Null,
        Some(b't' | b'f') => Json::Other("a boolean", text),
        Some(b'[') => Json::Other("an array", text),
        Some(b'{') => Json::Other("an object", text),
        _ => Json::Other("not a JSON value", text),
    }
}

/// serde_json's message without its "at line 1" (the line is the file's, given separately).
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => format!("{message} (at character {})", e.column()),
        None => text,
    }
}

/// The keys of one trade object, each value kept as raw JSON text.
struct TradeObject<'a> {
    slots: [Option<&'a RawValue>; 8],
    /// The first unknown or repeated key and why it is refused.
    problem: Option<(String, String)>,
}

impl<'de> Deserialize<'de> for TradeObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = TradeObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with the trade's fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = TradeObject {
            slots: [None; 8],
            problem: None,
        };
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Known(k) => {
                    let raw: &'de RawValue = map.next_value()?;
                    if object.slots[k].is_some() {
                        object.problem.get_or_insert_with(|| {
                            (
                                TRADE_COLUMNS[k].name.to_owned(),
                                "appears twice in the object".to_owned(),
                            )
                        });
                    } else {
                        object.slots[k] = Some(raw);
                    }
                }
                Key::Unknown(name) => {
                    map.next_value::<IgnoredAny>()?;
                    object.problem.get_or_insert_with(|| {
                        (
                            name,
                            format!(
                                "is not a known key (expected {})",
                                TRADE_COLUMN_NAMES.join(", ")
                            ),
                        )
                    });
                }
            }
        }
        Ok(object)
    }
}

/// An object key, matched without allocating unless it is unknown.
enum Key {
    Known(usize),
    Unknown(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match TRADE_COLUMN_NAMES.iter().position(|&n| n == key) {
            Some(k) => Key::Known(k),
            None => Key::Unknown(key.to_owned()),
        })
    }
}

enum Next<'a> {
    Line(u64, &'a [u8]),
    TooLong(u64),
    End,
}

/// Reads lines in large blocks and hands them out in place, without the line end.
struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    started: bool,
    next_line: u64,
    bytes_read: u64,
}

impl<R: Read> Lines<R> {
    fn new(src: R) -> Lines<R> {
        Lines {
            src,
            buf: vec![0; INITIAL_BUFFER],
            pos: 0,
            end: 0,
            eof: false,
            started: false,
            next_line: 1,
            bytes_read: 0,
        }
    }

    fn next_line(&mut self) -> io::Result<Next<'_>> {
        if !self.started {
            self.started = true;
            while self.end < 3 && !self.eof {
                self.fill()?;
            }
            // A UTF-8 byte order mark is not part of the first object.
            if self.buf[..self.end].starts_with(b"\xEF\xBB\xBF") {
                self.pos = 3;
            }
        }
        loop {
            if self.pos == self.end && self.eof {
                return Ok(Next::End);
            }
            let avail = &self.buf[self.pos..self.end];
            let (len, terminated) = match memchr(b'\n', avail) {
                Some(i) => (i, true),
                None if self.eof => (avail.len(), false),
                None if avail.len() >= MAX_LINE_BYTES => {
                    let line = self.skip_long_line()?;
                    return Ok(Next::TooLong(line));
                }
                None => {
                    self.fill()?;
                    continue;
                }
            };
            let start = self.pos;
            self.pos += len + usize::from(terminated);
            let line = self.next_line;
            self.next_line += 1;
            let bytes = &self.buf[start..start + len];
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            return Ok(Next::Line(line, bytes));
        }
    }

    fn skip_long_line(&mut self) -> io::Result<u64> {
        let line = self.next_line;
        self.next_line += 1;
        loop {
            if let Some(i) = memchr(b'\n', &self.buf[self.pos..self.end]) {
                self.pos += i + 1;
                return Ok(line);
            }
            self.pos = self.end;
            if self.eof {
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
