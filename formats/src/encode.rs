//! Allocation-free text encoding shared by the writers: CSV fields, integers and decimals.

/// The bytes that make a CSV field need quotes, by byte value: one load per byte rather than
/// four comparisons, for the millions of fields an output table has.
const NEEDS_QUOTES: [bool; 256] = {
    let mut table = [false; 256];
    table[b',' as usize] = true;
    table[b'"' as usize] = true;
    table[b'\n' as usize] = true;
    table[b'\r' as usize] = true;
    table
};

/// Whether a field needs quotes: eight bytes at a time (most fields are short ids, and an
/// output table has millions), the rest by [`NEEDS_QUOTES`].
fn needs_quotes(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Some byte of `word` equals `byte`: XOR makes that byte zero, and a word has a zero
    // byte exactly when this expression is non-zero.
    let has = |word: u64, byte: u8| {
        let v = word ^ (ONES * u64::from(byte));
        v.wrapping_sub(ONES) & !v & HIGHS != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        if has(word, b',') | has(word, b'"') | has(word, b'\n') | has(word, b'\r') {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| NEEDS_QUOTES[b as usize])
}

/// Appends a field, quoted per RFC 4180 only when it has to be.
pub(crate) fn push_csv_field(out: &mut Vec<u8>, text: &str) {
    if needs_quotes(text.as_bytes()) {
        out.push(b'"');
        for b in text.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// "00" to "99": two digits per division, half the divisions of one digit at a time.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// `n`'s decimal digits, right-aligned in `buf`; returns where they start.
fn u64_digits(buf: &mut [u8; 20], mut n: u64) -> usize {
    let mut at = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    at
}

/// Appends an i64's decimal digits, as `Display` prints them. Without `core::fmt` and in
/// 64-bit arithmetic: output tables print millions of integers.
pub(crate) fn push_i64(out: &mut Vec<u8>, value: i64) {
    let mut buf = [0u8; 20];
    let at = u64_digits(&mut buf, value.unsigned_abs());
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[at..]);
}

/// Appends `minor / 10^scale` with exactly `scale` decimals, as
/// [`crate::money::format_scaled`] prints it, without allocating.
pub(crate) fn push_scaled(out: &mut Vec<u8>, minor: i64, scale: u32) {
    let mut buf = [0u8; 20];
    let at = u64_digits(&mut buf, minor.unsigned_abs());
    let digits = &buf[at..];
    let scale = scale as usize;
    if minor < 0 {
        out.push(b'-');
    }
    if scale == 0 {
        out.extend_from_slice(digits);
    } else if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits);
    } else {
        let (int_part, frac_part) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int_part);
        out.push(b'.');
        out.extend_from_slice(frac_part);
    }
}

/// Appends an integer's decimal digits without allocating.
pub(crate) fn push_int(out: &mut Vec<u8>, value: i128) {
    // 128-bit division is a library call: nearly every value fits 64 bits.
    if let Ok(small) = i64::try_from(value) {
        push_i64(out, small);
        return;
    }
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends a decimal's canonical text (as [`crate::money::Decimal::to_text`]) without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, value: crate::money::Decimal) {
    let start = out.len();
    push_int(out, i128::from(value.mantissa));
    if value.scale == 0 {
        return;
    }
    let scale = value.scale as usize;
    let sign = usize::from(value.mantissa < 0);
    let digits = out.len() - start - sign;
    if digits <= scale {
        // 0.00ddd: pad with zeros between the point and the digits.
        let pad = scale - digits;
        let at = start + sign;
        out.splice(
            at..at,
            std::iter::once(b'0')
                .chain(std::iter::once(b'.'))
                .chain(std::iter::repeat_n(b'0', pad)),
        );
    } else {
        let at = out.len() - scale;
        out.insert(at, b'.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Decimal;

    proptest::proptest! {
        #[test]
        fn needs_quotes_finds_every_special_byte(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'Z', b'0', b' ', 0x80, 0xff, 0, b',', b'"', b'\n', b'\r', 0x2c | 0x80]),
                0..40,
            )
        ) {
            let expected = bytes.iter().any(|&b| NEEDS_QUOTES[b as usize]);
            proptest::prop_assert_eq!(needs_quotes(&bytes), expected);
        }
    }

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        for (text, printed) in [
            ("M00001", "M00001"),
            ("SEC-I00001-0000", "SEC-I00001-0000"),
            ("a,b", "\"a,b\""),
            ("0123456789abcdef,", "\"0123456789abcdef,\""),
            ("0123456789abcde\"", "\"0123456789abcde\"\"\""),
            ("01234567\r", "\"01234567\r\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("", ""),
        ] {
            let mut out = Vec::new();
            push_csv_field(&mut out, text);
            assert_eq!(String::from_utf8(out).unwrap(), printed, "{text:?}");
        }
    }

    #[test]
    fn decimals_and_ints_print_like_to_text() {
        for text in [
            "0",
            "7",
            "-7",
            "10.005",
            "-0.05",
            "0.00000001",
            "123456789012345678",
            "-1.5",
        ] {
            let d = Decimal::parse(text).unwrap();
            let mut out = b"x".to_vec();
            push_decimal(&mut out, d);
            assert_eq!(&out[1..], d.to_text().as_bytes(), "{text}");
        }
        let mut out = Vec::new();
        push_int(&mut out, i128::from(i64::MIN));
        assert_eq!(out, i64::MIN.to_string().as_bytes());
    }

    #[test]
    fn integers_and_scaled_amounts_print_like_display_and_format_scaled() {
        let mut values = vec![
            0i64,
            1,
            -1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            i64::MAX,
            i64::MIN,
        ];
        let mut power = 1i64;
        while let Some(next) = power.checked_mul(10) {
            values.extend([power - 1, power, power + 1, -power, -(power - 1), next / 3]);
            power = next;
        }
        for v in values {
            let mut out = Vec::new();
            push_i64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes(), "{v}");
            out.clear();
            push_int(&mut out, i128::from(v));
            assert_eq!(out, v.to_string().as_bytes(), "{v}");
            for scale in 0..=4 {
                out.clear();
                push_scaled(&mut out, v, scale);
                let expected = crate::money::format_scaled(i128::from(v), scale);
                assert_eq!(out, expected.as_bytes(), "{v} at scale {scale}");
            }
        }
        let mut out = Vec::new();
        push_int(&mut out, i128::MIN);
        assert_eq!(out, i128::MIN.to_string().as_bytes());
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        push_csv_field(&mut out, "plain");
        out.push(b'|');
        push_csv_field(&mut out, "a,b");
        out.push(b'|');
        push_csv_field(&mut out, "say \"hi\"");
        out.push(b'|');
        push_csv_field(&mut out, "two\nlines");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\""
        );
    }
}
