//! The single-pass fast path of the HTTP body decoder: trade objects are scanned once, straight
//! into [`TradeFields`] borrowed from the body, with no `RawValue` pre-pass and no second parse
//! per object.
//!
//! It handles the plain subset that real batches are made of: objects whose keys and string
//! values hold no escape, with string, number or `null` values. Anything else is not guessed:
//! - a body outside that subset (an escape, a nested value, a syntax error, ...) makes
//!   [`scan_array`] return `None`, and the caller reads the whole body with the general path,
//!   which owns every body-level error message;
//! - an object inside the subset whose fields do not all pass (an unknown or repeated key, a
//!   wrong type, a bad value) becomes [`Row::Slow`]: its text is decoded by the general
//!   per-object decoder, which owns every per-trade refusal reason.
//!
//! So a body gives the same rows, fields and reasons on both paths (checked by the tests in
//! `json_body.rs`, which compare the two on valid, invalid and mutated bodies); only the cost
//! differs.

use super::super::{
    check_text, optional_text, price_from_text, quantity_from_text, DateMemo, BUSINESS_DATE, BUYER,
    EXECUTED_AT, INSTRUMENT, PRICE, QUANTITY, SELLER, TRADE_COLUMN_NAMES, TRADE_ID,
};
use crate::fields::decimal_from_json_number;
use crate::model::TradeFields;

/// One element of a body, in order.
pub(super) enum Row<'a> {
    /// Decoded and checked on the fast path.
    Trade(TradeFields<'a>),
    /// Valid JSON, but for the general decoder: the object's text.
    Slow(&'a str),
}

/// A value of the plain subset: a string's content (no escapes), a number's exact text, null.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Num(&'a str),
    Null,
    /// `true` or `false`: valid JSON, never a valid trade field.
    Bool,
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// JSON whitespace only (not Unicode's): what JSON parsers skip.
    fn skip_ws(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    /// A string at the cursor without escapes or control characters: its content. A plain
    /// byte loop: trade strings are short (ids, dates), where `memchr`'s setup costs more than
    /// it saves.
    fn plain_string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut end = start;
        loop {
            match *bytes.get(end)? {
                b'"' => break,
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => end += 1,
            }
        }
        self.pos = end + 1;
        // Quotes are ASCII, so both ends are character boundaries of the (UTF-8) body.
        self.text.get(start..end)
    }

    /// A number at the cursor, by the JSON grammar `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`:
    /// its exact text.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return None;
            }
            self.digits();
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return None;
            }
            self.digits();
        }
        self.text.get(start..self.pos)
    }

    fn digits(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Val<'a>> {
        match self.peek()? {
            b'"' => self.plain_string().map(Val::Str),
            b'-' | b'0'..=b'9' => self.number().map(Val::Num),
            b'n' => self.literal("null").then_some(Val::Null),
            b't' => self.literal("true").then_some(Val::Bool),
            b'f' => self.literal("false").then_some(Val::Bool),
            // Nested arrays and objects are left to the general path.
            _ => None,
        }
    }

    /// An object at the cursor: the values of the trade keys, and whether every key was a
    /// trade key seen once.
    fn object(&mut self) -> Option<([Option<Val<'a>>; 8], bool)> {
        if !self.eat(b'{') {
            return None;
        }
        let mut slots = [None; 8];
        let mut plain = true;
        self.skip_ws();
        if self.eat(b'}') {
            return Some((slots, false));
        }
        loop {
            self.skip_ws();
            let key = self.plain_string()?;
            self.skip_ws();
            if !self.eat(b':') {
                return None;
            }
            self.skip_ws();
            let value = self.value()?;
            match TRADE_COLUMN_NAMES.iter().position(|&name| name == key) {
                Some(k) if slots[k].is_none() => slots[k] = Some(value),
                _ => plain = false,
            }
            self.skip_ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Some((slots, plain));
            }
            return None;
        }
    }

    /// An object at the cursor as a row.
    fn row(&mut self, dates: &mut DateMemo) -> Option<Row<'a>> {
        let start = self.pos;
        let (slots, plain) = self.object()?;
        let text = self.text.get(start..self.pos)?;
        let trade = if plain { fields(&slots, dates) } else { None };
        Some(trade.map_or(Row::Slow(text), Row::Trade))
    }
}

/// A JSON array of objects (the text from its `[`) as rows, or `None` if the text is not
/// entirely in the plain subset (see the module doc).
pub(super) fn scan_array<'a>(text: &'a str, dates: &mut DateMemo) -> Option<Vec<Row<'a>>> {
    let mut cursor = Cursor::new(text);
    if !cursor.eat(b'[') {
        return None;
    }
    // A trade object is well over 100 bytes: a bound that avoids regrowing.
    let mut rows = Vec::with_capacity(text.len() / 100 + 1);
    cursor.skip_ws();
    if !cursor.eat(b']') {
        loop {
            cursor.skip_ws();
            rows.push(cursor.row(dates)?);
            cursor.skip_ws();
            if cursor.eat(b',') {
                continue;
            }
            if cursor.eat(b']') {
                break;
            }
            return None;
        }
    }
    cursor.skip_ws();
    cursor.at_end().then_some(rows)
}

/// One NDJSON line (without its line end) as a trade, or `None` when the general decoder must
/// read it (anything but one plain object whose fields all pass, with JSON whitespace around).
pub(super) fn scan_line<'a>(line: &'a str, dates: &mut DateMemo) -> Option<TradeFields<'a>> {
    let mut cursor = Cursor::new(line);
    cursor.skip_ws();
    let (slots, plain) = cursor.object()?;
    cursor.skip_ws();
    if !plain || !cursor.at_end() {
        return None;
    }
    fields(&slots, dates)
}

/// The trade's fields with the rules of the `.jsonl` decoder, or `None` if any of them fails
/// (the general decoder then words the reason).
fn fields<'a>(slots: &[Option<Val<'a>>; 8], dates: &mut DateMemo) -> Option<TradeFields<'a>> {
    let text = |k: usize| match slots[k] {
        Some(Val::Str(s)) => Some(s),
        _ => None,
    };
    // Ids may be JSON integers (SPEC §2.4); their text is the id.
    let id = |k: usize| match slots[k] {
        Some(Val::Str(s)) => Some(s),
        Some(Val::Num(n)) if n.bytes().all(|b| b.is_ascii_digit()) => Some(n),
        _ => None,
    };
    let trade_id = id(TRADE_ID)?;
    let business_date = text(BUSINESS_DATE)?;
    let instrument = id(INSTRUMENT)?;
    let buyer = id(BUYER)?;
    let seller = id(SELLER)?;
    let executed_at = match slots[EXECUTED_AT] {
        None | Some(Val::Null) => None,
        Some(Val::Str(s)) => optional_text(s),
        Some(_) => return None,
    };
    check_text(
        dates,
        trade_id,
        business_date,
        instrument,
        buyer,
        seller,
        executed_at,
    )
    .ok()?;
    let price = match slots[PRICE] {
        Some(Val::Str(s)) => price_from_text(s).ok()?,
        Some(Val::Num(n)) => decimal_from_json_number(n).ok()?,
        _ => return None,
    };
    let quantity = match slots[QUANTITY] {
        Some(Val::Str(s) | Val::Num(s)) => quantity_from_text(s).ok()?,
        _ => return None,
    };
    Some(TradeFields {
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
