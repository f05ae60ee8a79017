//! Syntax checks of single field values, shared by every reader so that a CSV, a JSON Lines
//! and a Parquet file with the same bad value give the same reason.
//!
//! Reasons are predicates ("is not an integer") because [`crate::model::RowError::describe`]
//! prints them after the column and the value.

use crate::money::{Decimal, DecimalError};

pub(crate) const ID_REASON: &str =
    "is not a valid id: 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'";
pub(crate) const DATE_REASON: &str = "is not a calendar date YYYY-MM-DD";
pub(crate) const TIMESTAMP_REASON: &str =
    "is not an RFC 3339 timestamp such as 2026-11-25T09:30:00+08:00";
pub(crate) const UTF8_REASON: &str = "is not valid UTF-8";

/// The bytes an id may hold, as a table: four ids per trade row make this check hot, and a
/// table lookup is cheaper than the chain of range tests in [`crate::model::is_valid_id`],
/// which it must agree with (tested).
static ID_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-');
        b += 1;
    }
    table
};

/// `bytes` as text, as `std::str::from_utf8` checks it, but ASCII first: a block of trade
/// text is nearly always ASCII, and `is_ascii` costs a tenth of the full UTF-8 check (2.6
/// instructions a CSV row against 36).
#[inline]
pub(crate) fn text_of(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

/// The reason an id is refused, or `None` when it is valid.
#[inline]
pub(crate) fn id_problem(text: &str) -> Option<&'static str> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        Some("is empty")
    } else if bytes.len() <= 32 && all_id_bytes(bytes) {
        None
    } else {
        Some(ID_REASON)
    }
}

/// Whether every byte is an id byte: from eight bytes on, eight or sixteen at a time, the last
/// word overlapping the one before it; shorter ids by the table. A trade id is checked on every
/// row, and the byte loop was a fifth of the Parquet reader's own time.
#[inline]
fn all_id_bytes(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n < 8 {
        return bytes.iter().all(|&b| ID_BYTE[usize::from(b)]);
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    #[cfg(target_arch = "x86_64")]
    {
        // Sixteen bytes per test (the usual id, 12 bytes, is one test of two overlapping
        // words): the SSE2 compares took a third of the instructions of the word arithmetic.
        let mut all = true;
        let mut at = 0;
        while at + 16 < n {
            all &= id_lanes(word(at), word(at + 8));
            at += 16;
        }
        all & id_lanes(word(n.saturating_sub(16)), word(n - 8))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let mut all = HIGH;
        let mut at = 0;
        while at + 8 < n {
            all &= id_byte_bits(word(at));
            at += 8;
        }
        all & id_byte_bits(word(n - 8)) == HIGH
    }
}

/// Whether all sixteen bytes of `low` then `high` are id bytes (`ID_BYTE`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn id_lanes(low: u64, high: u64) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
    };
    // SAFETY: SSE2 is part of every x86-64 processor, and none of these reads memory.
    unsafe {
        let v = _mm_set_epi64x(high as i64, low as i64);
        let splat = |b: u8| _mm_set1_epi8(b as i8);
        // The compares are signed: a byte with bit 7 set is negative, below every range here.
        let within = |v: __m128i, lo: u8, hi: u8| {
            _mm_and_si128(
                _mm_cmpgt_epi8(v, splat(lo - 1)),
                _mm_cmplt_epi8(v, splat(hi + 1)),
            )
        };
        let digit = within(v, b'0', b'9');
        // Setting bit 5 maps A-Z onto a-z and no byte outside A-Z onto a-z.
        let letter = within(_mm_or_si128(v, splat(0x20)), b'a', b'z');
        let mark = _mm_or_si128(
            _mm_cmpeq_epi8(v, splat(b'_')),
            _mm_cmpeq_epi8(v, splat(b'-')),
        );
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(digit, letter), mark)) == 0xFFFF
    }
}

/// Bit 7 of each byte of `word` that is an id byte (`ID_BYTE`), and no other bit: the word
/// test of processors without SSE2 (tested everywhere).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn id_byte_bits(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = word & !HIGH;
    // Per byte b < 0x80: (0x80 + b) - lo keeps bit 7 where b >= lo, and (0x80 + hi) - b
    // keeps it where b <= hi; neither subtraction borrows from the next byte.
    let between = |lo: u8, hi: u8| {
        ((low | HIGH) - ONES * u64::from(lo)) & (ONES * u64::from(0x80 | hi) - low)
    };
    let id = between(b'0', b'9')
        | between(b'A', b'Z')
        | between(b'a', b'z')
        | between(b'_', b'_')
        | between(b'-', b'-');
    // A byte with bit 7 set is never an id byte.
    id & !word & HIGH
}

/// A decimal's refusal as a reason sentence.
pub(crate) fn decimal_reason(error: &DecimalError) -> String {
    match error {
        DecimalError::Empty => "is empty".to_owned(),
        DecimalError::Malformed => {
            "is not a decimal number (digits, an optional '.', no exponent or separators)"
                .to_owned()
        }
        DecimalError::TooLarge => "has too many digits (at most 18 significant)".to_owned(),
        other => other.to_string(),
    }
}

/// Why an integer field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntError {
    Empty,
    NotInteger,
    Overflow,
}

impl IntError {
    pub(crate) fn reason(self, column: &str) -> String {
        match self {
            IntError::Empty => "is empty".to_owned(),
            IntError::NotInteger => "is not an integer".to_owned(),
            IntError::Overflow => format!(
                "is out of range ({column} overflow: a 64-bit integer holds at most {})",
                i64::MAX
            ),
        }
    }
}

/// Parses a plain decimal integer: optional sign and digits, nothing else. A value with a
/// fraction, even `1.0`, is refused: a quantity is counted, never measured.
pub(crate) fn parse_i64(text: &str) -> Result<i64, IntError> {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first() {
        None => return Err(IntError::Empty),
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        Some(_) => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(IntError::NotInteger);
    }
    // Accumulate negatively so that i64::MIN, whose magnitude has no positive i64, parses.
    let mut value: i64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(d - b'0')))
            .ok_or(IntError::Overflow)?;
    }
    if negative {
        Ok(value)
    } else {
        value.checked_neg().ok_or(IntError::Overflow)
    }
}

/// A JSON number from its exact text (`10.005`, `-3`, `1.25e2`), never through a float.
/// The exponent is applied by moving the decimal point.
pub(crate) fn decimal_from_json_number(text: &str) -> Result<Decimal, DecimalError> {
    let (mantissa_text, exponent_text) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let base = Decimal::parse(mantissa_text)?;
    let Some(exponent_text) = exponent_text else {
        return Ok(base);
    };
    let exponent = match parse_i64(exponent_text) {
        Ok(e) if e.unsigned_abs() <= 64 => e,
        Ok(_) => return Err(DecimalError::TooLarge),
        Err(_) => return Err(DecimalError::Malformed),
    };
    let scale = i64::from(base.scale) - exponent;
    if scale >= 0 {
        let scale = u32::try_from(scale).map_err(|_| DecimalError::TooLarge)?;
        Decimal::from_unscaled(i128::from(base.mantissa), scale)
    } else {
        let factor = 10i128
            .checked_pow(u32::try_from(-scale).map_err(|_| DecimalError::TooLarge)?)
            .ok_or(DecimalError::TooLarge)?;
        let unscaled = i128::from(base.mantissa)
            .checked_mul(factor)
            .ok_or(DecimalError::TooLarge)?;
        Decimal::from_unscaled(unscaled, 0)
    }
}

/// Checks RFC 3339 `date-time` syntax and ranges: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
/// `T` and `Z` may be lower case, and a space may separate date and time (RFC 3339 §5.6 note).
#[cfg(test)]
pub(crate) fn is_rfc3339(text: &str) -> bool {
    is_rfc3339_with(text, |date| {
        crate::model::BusinessDate::parse(date).is_some()
    })
}

/// [`is_rfc3339`] with the calendar check of the date part supplied by the caller, so that a
/// reader can remember the last valid date instead of parsing it on every row.
pub(crate) fn is_rfc3339_with(text: &str, mut date_ok: impl FnMut(&str) -> bool) -> bool {
    let b = text.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    // Byte 10 is ASCII, so it is a character boundary.
    if !text.get(..10).is_some_and(&mut date_ok) {
        return false;
    }
    match <&[u8; 25]>::try_from(b) {
        Ok(usual) if matches!(usual[19], b'+' | b'-') => usual_clock_and_offset(usual),
        _ => clock_and_zone(b),
    }
}

/// Whether `b`, the text of a timestamp (at least 20 bytes) whose date part is checked,
/// holds a valid time, any fraction and a zone from byte 11 on.
fn clock_and_zone(b: &[u8]) -> bool {
    let two = |at: usize| -> Option<u32> {
        let (h, l) = (*b.get(at)?, *b.get(at + 1)?);
        (h.is_ascii_digit() && l.is_ascii_digit())
            .then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
    };
    let time_ok = (|| {
        let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
        (b[13] == b':' && b[16] == b':' && hour <= 23 && minute <= 59 && second <= 60).then_some(())
    })()
    .is_some();
    if !time_ok {
        return false;
    }
    let mut at = 19;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return false;
        }
        at += 1 + digits;
    }
    match b.get(at) {
        Some(b'Z' | b'z') => at + 1 == b.len(),
        Some(b'+' | b'-') => {
            at + 6 == b.len()
                && b[at + 3] == b':'
                && matches!(two(at + 1), Some(h) if h <= 23)
                && matches!(two(at + 4), Some(m) if m <= 59)
        }
        _ => false,
    }
}

/// The time of `YYYY-MM-DDTHH:MM:SS±HH:MM` (the shape trade files use), checked as two
/// eight-byte words instead of field by field (digits by [`crate::digits::non_digit_bytes`]):
/// the same answer as [`clock_and_zone`] gives for it (byte 19, the sign, is the caller's to
/// check).
#[inline]
fn usual_clock_and_offset(b: &[u8; 25]) -> bool {
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    // `HH:MM:SS` at byte 11 and `SS±HH:MM` at byte 17, byte k of each in bits 8k..8k+8.
    let (clock, offset) = (word(11), word(17));
    // The digits' bytes (bit 7 of each): 0, 1, 3, 4, 6, 7 of the clock; 3, 4, 6, 7 of the
    // offset.
    const CLOCK_DIGITS: u64 = 0x8080_0080_8000_8080;
    const OFFSET_DIGITS: u64 = 0x8080_0080_8000_0000;
    // The clock's colons, bytes 2 and 5.
    const SEPARATORS: u64 = 0x0000_FF00_00FF_0000;
    const COLONS: u64 = 0x0000_3A00_003A_0000;
    let digits = |w: u64, mask: u64| crate::digits::non_digit_bytes(w) & mask == 0;
    // Byte-swapped, the first byte is the highest: the two digits at byte k read as a
    // big-endian `u16`, and two digits compare as their values do.
    let (clock_be, offset_be) = (clock.swap_bytes(), offset.swap_bytes());
    let at = |be: u64, k: u32| (be >> (48 - 8 * k)) as u16;
    let most = |two: &[u8; 2]| u16::from_be_bytes(*two);
    digits(clock, CLOCK_DIGITS)
        && digits(offset, OFFSET_DIGITS)
        && clock & SEPARATORS == COLONS
        && (offset >> 40) as u8 == b':'
        && at(clock_be, 0) <= most(b"23")
        && at(clock_be, 3) <= most(b"59")
        && at(clock_be, 6) <= most(b"60")
        && at(offset_be, 3) <= most(b"23")
        && at(offset_be, 6) <= most(b"59")
}

/// Formats days since 1970-01-01 as `YYYY-MM-DD` (proleptic Gregorian), for Parquet DATE
/// columns. `None` outside years 1..=9999.
pub(crate) fn format_days(days: i64, out: &mut String) -> Option<()> {
    let (y, m, d) = civil_from_days(days)?;
    use std::fmt::Write;
    write!(out, "{y:04}-{m:02}-{d:02}").ok()
}

/// Formats a UTC instant as RFC 3339 with the fraction the unit carries, for Parquet
/// TIMESTAMP columns: `2026-11-25T01:30:00.123Z`.
pub(crate) fn format_timestamp(value: i64, units_per_second: i64, out: &mut String) -> Option<()> {
    use std::fmt::Write;
    let seconds = value.div_euclid(units_per_second);
    let fraction = value.rem_euclid(units_per_second);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days)?;
    write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
    .ok()?;
    if units_per_second > 1 {
        let width = units_per_second.ilog10() as usize;
        write!(out, ".{fraction:0width$}").ok()?;
    }
    out.push('Z');
    Some(())
}

/// Howard Hinnant's days-to-civil algorithm, exact over the whole proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> Option<(i64, u32, u32)> {
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (1..=9999).contains(&y).then_some((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word-wise check of `…T09:30:00+08:00` answers as the general path does, for
        /// the usual shape with up to four bytes replaced anywhere by any byte.
        #[test]
        fn usual_timestamps_check_like_the_general_path(
            edits in proptest::collection::vec(
                (11usize..25, proptest::prop_oneof![
                    proptest::sample::select(b"0123456789:+-./Z".to_vec()),
                    proptest::num::u8::ANY,
                ]),
                0..4,
            ),
            west in proptest::bool::ANY,
        ) {
            let mut b = *b"2026-11-25T09:30:00+08:00";
            if west {
                b[19] = b'-';
            }
            for (at, byte) in edits {
                // The sign decides which path is taken: it stays a sign.
                if at != 19 {
                    b[at] = byte;
                }
            }
            proptest::prop_assert_eq!(usual_clock_and_offset(&b), clock_and_zone(&b), "{:?}", b);
        }

        /// Integers parse as the standard library parses them, overflow included.
        #[test]
        fn integers_parse_like_std(text in "[+-]?[0-9]{0,21}|[+-]?[0-9]{17,19}[a ]?") {
            proptest::prop_assert_eq!(parse_i64(&text).ok(), text.parse::<i64>().ok(), "{}", text);
        }

        #[test]
        fn text_is_checked_like_std(bytes in proptest::collection::vec(
            proptest::sample::select(b"a,9\n\x7f\x80\xc3\xa9\xff".to_vec()), 0..64)
        ) {
            proptest::prop_assert_eq!(text_of(&bytes), std::str::from_utf8(&bytes));
        }

        #[test]
        fn id_table_agrees_with_the_model(text in "[A-Za-z0-9_\\-é ,.]{0,40}") {
            proptest::prop_assert_eq!(id_problem(&text).is_none(), crate::model::is_valid_id(&text));
        }
    }

    /// Calls `check(bytes, place)` for `template` with every byte value put in every place.
    fn each_byte_in_each_place<const N: usize>(
        template: &[u8; N],
        mut check: impl FnMut(&[u8; N], usize),
    ) {
        for place in 0..N {
            for b in 0..=255u8 {
                let mut bytes = *template;
                bytes[place] = b;
                check(&bytes, place);
            }
        }
    }

    #[test]
    fn words_classify_every_byte_in_every_place_like_the_table() {
        each_byte_in_each_place(b"Ab3_-z9Q", |bytes, _| {
            let bits = id_byte_bits(u64::from_le_bytes(*bytes));
            for (k, &byte) in bytes.iter().enumerate() {
                let expected = ID_BYTE[usize::from(byte)];
                assert_eq!(bits >> (8 * k + 7) & 1 == 1, expected, "{bytes:?} at {k}");
            }
            assert_eq!(bits & !0x8080_8080_8080_8080, 0);
        });
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn lanes_classify_every_byte_in_every_place_like_the_table() {
        each_byte_in_each_place(b"Ab3_-z9QaZ09-_mM", |bytes, place| {
            let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            assert_eq!(
                id_lanes(word(0), word(8)),
                ID_BYTE[usize::from(bytes[place])],
                "{bytes:?} at {place}"
            );
        });
    }

    proptest::proptest! {
        #[test]
        fn long_ids_are_checked_like_the_model(
            text in "[A-Za-z0-9_\\-]{0,36}",
            bad in proptest::option::of((0usize..36, "[ é,.\\x00\\x7f/:@\\[`{]")),
        ) {
            let mut text = text;
            if let Some((at, bad)) = bad {
                let at = at.min(text.len());
                text.insert_str(at, &bad);
            }
            proptest::prop_assert_eq!(id_problem(&text).is_none(), crate::model::is_valid_id(&text));
        }
    }

    #[test]
    fn every_byte_is_classified_like_the_model() {
        for b in 0..=255u8 {
            if let Ok(text) = std::str::from_utf8(&[b]) {
                assert_eq!(
                    id_problem(text).is_none(),
                    crate::model::is_valid_id(text),
                    "{b}"
                );
            }
        }
    }

    #[test]
    fn integers_are_plain_and_range_checked() {
        assert_eq!(parse_i64("700"), Ok(700));
        assert_eq!(parse_i64("-3"), Ok(-3));
        assert_eq!(parse_i64("+3"), Ok(3));
        assert_eq!(parse_i64("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_i64("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64("9223372036854775808"), Err(IntError::Overflow));
        assert_eq!(
            parse_i64("99999999999999999999999"),
            Err(IntError::Overflow)
        );
        for bad in ["1.5", "1.0", "1e3", " 1", "1 ", "-", "+", "0x10", "١"] {
            assert_eq!(parse_i64(bad), Err(IntError::NotInteger), "{bad:?}");
        }
        assert_eq!(parse_i64(""), Err(IntError::Empty));
    }

    #[test]
    fn json_numbers_keep_their_decimal_text() {
        let d = |t: &str| decimal_from_json_number(t).map(|d| d.to_text());
        assert_eq!(d("10.005"), Ok("10.005".into()));
        assert_eq!(d("1.0005e3"), Ok("1000.5".into()));
        assert_eq!(d("125E-2"), Ok("1.25".into()));
        assert_eq!(d("2e2"), Ok("200".into()));
        assert_eq!(d("-0.1e+1"), Ok("-1".into()));
        assert_eq!(d("1e400"), Err(DecimalError::TooLarge));
        assert_eq!(d("1e"), Err(DecimalError::Malformed));
        assert_eq!(d("9e18"), Err(DecimalError::TooLarge));
    }

    #[test]
    fn rfc3339_timestamps() {
        for good in [
            "2026-11-25T09:30:00Z",
            "2026-11-25T09:30:00.123456+08:00",
            "2026-11-25t09:30:00z",
            "2026-11-25 09:30:00-05:30",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60+23:59",
            "2026-11-25T00:00:00-00:00",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "",
            "2026-11-25",
            "2026-11-25T09:30:00",
            "2026-11-25T24:00:00Z",
            "2026-02-30T09:30:00Z",
            "2026-11-25T09:30:00.Z",
            "2026-11-25T09:30:00+0800",
            "2026-11-25T09:30:00+08:00 ",
            "2026-11-25T9:30:00Z",
            "2026-11-25T09:30:00+24:00",
            "2026-11-25T09:30:00é",
            // The usual shape, each field one past its range or one byte off a digit.
            "2026-11-25T24:00:00+08:00",
            "2026-11-25T09:60:00+08:00",
            "2026-11-25T09:30:61+08:00",
            "2026-11-25T09:30:00+24:00",
            "2026-11-25T09:30:00+08:60",
            "2026-11-25T0/:30:00+08:00",
            "2026-11-25T09:3::00+08:00",
            "2026-11-25T09:30:00+08:0:",
            "2026-11-25T09;30:00+08:00",
            "2026-11-25T09:30.00+08:00",
            "2026-11-25T09:30:00+08-00",
            "2026-11-25T09:30:00+0é:0",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn days_and_timestamps_format_in_utc() {
        let mut s = String::new();
        format_days(0, &mut s).unwrap();
        assert_eq!(s, "1970-01-01");
        s.clear();
        format_days(20_417, &mut s).unwrap();
        assert_eq!(s, "2025-11-25");
        s.clear();
        format_days(-1, &mut s).unwrap();
        assert_eq!(s, "1969-12-31");
        assert!(format_days(i64::MAX, &mut String::new()).is_none());
        s.clear();
        format_timestamp(1_764_063_000_123, 1000, &mut s).unwrap();
        assert_eq!(s, "2025-11-25T09:30:00.123Z");
        s.clear();
        format_timestamp(-1, 1, &mut s).unwrap();
        assert_eq!(s, "1969-12-31T23:59:59Z");
        assert!(is_rfc3339(&s));
    }
}
