//! Money without binary floats: integer minor units, ISO 4217 currencies and exact decimal text.
//!
//! Every amount in the engine is an [`AmountMinor`] in the minor unit of its currency
//! (cents for CNY, yen for JPY). Decimal text is parsed into an integer mantissa and a scale,
//! never through `f64`; rounding is half away from zero and is only done by the callers that
//! SPEC §3 names.

use crate::digits;
use std::fmt;

/// An amount of money in the minor unit of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AmountMinor(pub i64);

impl AmountMinor {
    pub const ZERO: AmountMinor = AmountMinor(0);

    pub fn checked_add(self, other: AmountMinor) -> Option<AmountMinor> {
        self.0.checked_add(other.0).map(AmountMinor)
    }

    pub fn checked_sub(self, other: AmountMinor) -> Option<AmountMinor> {
        self.0.checked_sub(other.0).map(AmountMinor)
    }

    pub fn checked_neg(self) -> Option<AmountMinor> {
        self.0.checked_neg().map(AmountMinor)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// An ISO 4217 currency with its number of minor digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency {
    code: [u8; 3],
    minor_digits: u8,
}

/// ISO 4217 minor units of the currencies a clearing house meets. Codes not listed here are
/// refused rather than guessed, because a wrong minor unit silently scales every amount.
const MINOR_DIGITS: &[(&str, u8)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNH", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MOP", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("RUB", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

impl Currency {
    /// Looks up an ISO 4217 code (upper case, three letters).
    pub fn from_code(code: &str) -> Option<Currency> {
        MINOR_DIGITS
            .binary_search_by(|(c, _)| (*c).cmp(code))
            .ok()
            .map(|i| {
                let bytes = code.as_bytes();
                Currency {
                    code: [bytes[0], bytes[1], bytes[2]],
                    minor_digits: MINOR_DIGITS[i].1,
                }
            })
    }

    pub fn code(&self) -> &str {
        // The code bytes come from the ASCII table above.
        std::str::from_utf8(&self.code).expect("currency codes are ASCII")
    }

    pub fn minor_digits(&self) -> u32 {
        u32::from(self.minor_digits)
    }

    /// Formats an amount with exactly this currency's minor digits: `1234.50`, `-3.00`, `7`.
    pub fn format(&self, amount: AmountMinor) -> String {
        format_scaled(i128::from(amount.0), self.minor_digits())
    }

    /// Parses decimal text into minor units. More decimals than the currency has are refused,
    /// trailing zeros aside (`5.000` is 5.00 CNY), because they would need a rounding SPEC §3
    /// does not name.
    pub fn parse_amount(&self, text: &str) -> Result<AmountMinor, DecimalError> {
        let dec = Decimal::parse(text)?;
        dec.to_minor(self.minor_digits())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Formats `mantissa / 10^scale` with exactly `scale` decimals.
pub fn format_scaled(mantissa: i128, scale: u32) -> String {
    let negative = mantissa < 0;
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let mut out = String::with_capacity(digits.len() + 3);
    if negative {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
        return out;
    }
    if digits.len() <= scale {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (int_part, frac_part) = digits.split_at(digits.len() - scale);
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
    }
    out
}

/// Why decimal text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("is empty")]
    Empty,
    #[error("is not a decimal number")]
    Malformed,
    #[error("has too many digits")]
    TooLarge,
    #[error("has {found} decimals, at most {allowed} allowed")]
    TooManyDecimals { found: u32, allowed: u32 },
}

/// An exact decimal `mantissa / 10^scale`, normalised so that the mantissa has no trailing
/// zero decimal (`21.540` is stored as 2154 / 10^2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub mantissa: i64,
    pub scale: u32,
}

/// The most significant digits a [`Decimal`] holds: 18 always fit an `i64`.
const MAX_DIGITS: u32 = 18;

impl Decimal {
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    /// Parses plain decimal text: optional sign, digits, optional `.` and digits. No exponent,
    /// no thousands separators, no surrounding spaces: a trade file that has them is malformed.
    ///
    /// Inlined for the usual short price; the general loop is out of line.
    #[inline]
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let bytes = text.as_bytes();
        match Decimal::parse_short(bytes) {
            Some(short) => Ok(short),
            None => Decimal::parse_long(bytes),
        }
    }

    /// [`Decimal::parse`] of any text [`Decimal::parse_short`] does not read.
    #[inline(never)]
    fn parse_long(bytes: &[u8]) -> Result<Decimal, DecimalError> {
        if bytes.is_empty() {
            return Err(DecimalError::Empty);
        }
        let (negative, body) = match bytes[0] {
            b'-' => (true, &bytes[1..]),
            b'+' => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let mut mantissa: i64 = 0;
        let mut scale: u32 = 0;
        let mut significant: u32 = 0;
        let mut seen_digit = false;
        let mut seen_point = false;
        for &b in body {
            match b {
                b'0'..=b'9' => {
                    seen_digit = true;
                    if mantissa != 0 || b != b'0' {
                        significant += 1;
                    }
                    if significant > MAX_DIGITS {
                        return Err(DecimalError::TooLarge);
                    }
                    mantissa = mantissa * 10 + i64::from(b - b'0');
                    if seen_point {
                        scale += 1;
                        if scale > MAX_DIGITS {
                            return Err(DecimalError::TooLarge);
                        }
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => return Err(DecimalError::Malformed),
            }
        }
        if !seen_digit {
            return Err(DecimalError::Malformed);
        }
        if negative {
            mantissa = -mantissa;
        }
        Ok(Decimal { mantissa, scale }.normalized())
    }

    /// [`Decimal::parse`] of the usual short price, eight bytes at once: up to eight bytes
    /// of digits, with at most one '.' that has a digit on each side, and no sign (`293.088`,
    /// `15`). `None` for any other text, which the general loop reads.
    #[inline]
    fn parse_short(bytes: &[u8]) -> Option<Decimal> {
        let n = bytes.len();
        if !(1..=8).contains(&n) {
            return None;
        }
        // Right-aligned, leading '0's: the text's value is unchanged.
        let word = digits::right_aligned(bytes);
        let others = digits::non_digit_bytes(word);
        if others == 0 {
            return Some(Decimal {
                mantissa: digits::eight_digits(word) as i64,
                scale: 0,
            });
        }
        let at = (others.trailing_zeros() / 8) as usize;
        // One other byte, a '.', neither the text's first byte nor its last.
        if others & (others - 1) != 0 || (word >> (8 * at)) as u8 != b'.' || at == 8 - n || at == 7
        {
            return None;
        }
        // Take the '.' out: the bytes below it move up one, a '0' comes in at the bottom.
        let below = (1u64 << (8 * at)) - 1;
        let above = !below << 8;
        let text = ((word & below) << 8) | (word & above) | u64::from(b'0');
        let decimal = Decimal {
            mantissa: digits::eight_digits(text) as i64,
            scale: (7 - at) as u32,
        };
        Some(decimal.normalized())
    }

    /// Builds a decimal from an unscaled integer as Parquet DECIMAL columns store it. Values
    /// that fit 64 bits (every real price) take 64-bit arithmetic: a 128-bit remainder is a
    /// library call, once per Parquet price.
    #[inline]
    pub fn from_unscaled(unscaled: i128, scale: u32) -> Result<Decimal, DecimalError> {
        match i64::try_from(unscaled) {
            Ok(unscaled) => Decimal::from_unscaled_i64(unscaled, scale),
            Err(_) => Decimal::from_unscaled_wide(unscaled, scale),
        }
    }

    /// [`Decimal::from_unscaled`] of a 64-bit value.
    #[inline]
    pub fn from_unscaled_i64(unscaled: i64, scale: u32) -> Result<Decimal, DecimalError> {
        let mut mantissa = unscaled;
        let mut scale = scale;
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        if scale > MAX_DIGITS || mantissa.unsigned_abs() >= 10u64.pow(MAX_DIGITS) {
            return Err(DecimalError::TooLarge);
        }
        Ok(Decimal { mantissa, scale })
    }

    /// [`Decimal::from_unscaled`] in 128 bits: trailing zeros may bring a wider value into
    /// range, and what is left must fit 64 bits.
    fn from_unscaled_wide(unscaled: i128, scale: u32) -> Result<Decimal, DecimalError> {
        let mut mantissa = unscaled;
        let mut scale = scale;
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        let mantissa = i64::try_from(mantissa).map_err(|_| DecimalError::TooLarge)?;
        Decimal::from_unscaled_i64(mantissa, scale)
    }

    fn normalized(mut self) -> Decimal {
        while self.scale > 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        self
    }

    pub fn is_positive(&self) -> bool {
        self.mantissa > 0
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The value in units of `10^-digits`, refusing any loss of precision.
    pub fn to_minor(&self, digits: u32) -> Result<AmountMinor, DecimalError> {
        if self.scale > digits {
            return Err(DecimalError::TooManyDecimals {
                found: self.scale,
                allowed: digits,
            });
        }
        let factor = 10i128.pow(digits - self.scale);
        i64::try_from(i128::from(self.mantissa) * factor)
            .map(AmountMinor)
            .map_err(|_| DecimalError::TooLarge)
    }

    /// Canonical text: no trailing zeros, no `+`, `0` for zero.
    pub fn to_text(&self) -> String {
        format_scaled(i128::from(self.mantissa), self.scale)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// `numerator / denominator` rounded half away from zero (四舍五入). The denominator is
/// positive. This is the one rounding primitive; SPEC §3 says where it is applied.
pub fn div_round_half_away(numerator: i128, denominator: i128) -> i128 {
    debug_assert!(denominator > 0);
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.unsigned_abs() * 2 >= denominator.unsigned_abs() {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`Decimal::parse`] without its short path: the loop every text can take.
    fn parse_by_loop(text: &str) -> Result<Decimal, DecimalError> {
        let mut long = text.to_owned();
        // Nine bytes or more never take the short path; a leading '+' keeps the value.
        if !text.is_empty() && text.len() <= 8 && !text.starts_with(['+', '-']) {
            long.insert(0, '+');
        }
        Decimal::parse(&long)
    }

    proptest! {
        #[test]
        fn unscaled_in_64_bits_is_unscaled_in_128(
            unscaled in prop_oneof![any::<i64>(), (-99_999i64..99_999).prop_map(|m| m * 1000)],
            scale in 0u32..40,
        ) {
            prop_assert_eq!(
                Decimal::from_unscaled_i64(unscaled, scale),
                Decimal::from_unscaled_wide(i128::from(unscaled), scale)
            );
        }
    }

    proptest! {
        #[test]
        fn short_prices_parse_as_the_loop_does(text in "[0-9.]{0,9}|[0-9]{1,4}[.][0-9]{1,4}|[+-]?[0-9a.]{1,8}") {
            prop_assert_eq!(Decimal::parse(&text), parse_by_loop(&text), "{}", text);
        }
    }

    #[test]
    fn short_prices_take_every_dot_position() {
        for text in [
            "1.5", "293.088", "0.0", "00.50", "1234.567", "9.999999", "12345678", "0", "100.000",
        ] {
            assert_eq!(Decimal::parse(text), parse_by_loop(text), "{text}");
        }
        assert_eq!(
            Decimal::parse("293.088").unwrap(),
            Decimal {
                mantissa: 293088,
                scale: 3
            }
        );
        assert_eq!(
            Decimal::parse("100.000").unwrap(),
            Decimal {
                mantissa: 100,
                scale: 0
            }
        );
        for text in [".5", "5.", "1..2", "1.2.3", "", "."] {
            assert_eq!(Decimal::parse(text), parse_by_loop(text), "{text}");
        }
    }

    fn cny() -> Currency {
        Currency::from_code("CNY").unwrap()
    }

    #[test]
    fn currency_table_is_sorted_for_binary_search() {
        assert!(MINOR_DIGITS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn formats_with_exact_minor_digits() {
        assert_eq!(cny().format(AmountMinor(123450)), "1234.50");
        assert_eq!(cny().format(AmountMinor(-300)), "-3.00");
        assert_eq!(cny().format(AmountMinor(-5)), "-0.05");
        assert_eq!(cny().format(AmountMinor(0)), "0.00");
        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!(jpy.format(AmountMinor(-7)), "-7");
        let bhd = Currency::from_code("BHD").unwrap();
        assert_eq!(bhd.format(AmountMinor(1)), "0.001");
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(
            Decimal::parse("10.005").unwrap(),
            Decimal {
                mantissa: 10005,
                scale: 3
            }
        );
        assert_eq!(
            Decimal::parse("21.540").unwrap(),
            Decimal {
                mantissa: 2154,
                scale: 2
            }
        );
        assert_eq!(Decimal::parse("-0.50").unwrap().to_text(), "-0.5");
        assert_eq!(Decimal::parse("007").unwrap().to_text(), "7");
        assert_eq!(Decimal::parse(".5").unwrap().to_text(), "0.5");
        for bad in [
            "", "-", ".", "1e5", "1.2.3", " 1", "1,000", "abc", "1.", "NaN",
        ] {
            if bad == "1." {
                // "1." is accepted as 1 by most decimal readers; we keep it.
                assert_eq!(Decimal::parse(bad).unwrap().to_text(), "1");
                continue;
            }
            assert!(Decimal::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            Decimal::parse("1234567890123456789"),
            Err(DecimalError::TooLarge)
        );
    }

    #[test]
    fn amounts_refuse_excess_decimals() {
        assert_eq!(cny().parse_amount("5.000").unwrap(), AmountMinor(500));
        assert_eq!(
            cny().parse_amount("5.005"),
            Err(DecimalError::TooManyDecimals {
                found: 3,
                allowed: 2
            })
        );
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round_half_away(10005, 10), 1001);
        assert_eq!(div_round_half_away(-10005, 10), -1001);
        assert_eq!(div_round_half_away(10004, 10), 1000);
        assert_eq!(div_round_half_away(-10004, 10), -1000);
        assert_eq!(div_round_half_away(25025, 10000), 3);
        assert_eq!(div_round_half_away(0, 7), 0);
    }

    proptest! {
        #[test]
        fn parse_format_round_trips(mantissa in -999_999_999_999_999_999i64..=999_999_999_999_999_999i64, scale in 0u32..=8) {
            let text = format_scaled(i128::from(mantissa), scale);
            let dec = Decimal::parse(&text).unwrap();
            prop_assert_eq!(dec.to_minor(scale).unwrap(), AmountMinor(mantissa));
        }

        #[test]
        fn rounding_is_within_half_a_unit(n in -1_000_000_000i128..1_000_000_000, d in 1i128..100_000) {
            let q = div_round_half_away(n, d);
            // |n - q*d| <= d/2, with ties going away from zero.
            let diff = n - q * d;
            prop_assert!(diff.abs() * 2 <= d);
            if diff.abs() * 2 == d {
                prop_assert!(q.signum() == n.signum());
            }
        }
    }
}
