//! Allocation-free text encoding shared by the writers: CSV fields, integers and decimals.

/// Appends a field, quoted per RFC 4180 only when it has to be.
pub(crate) fn push_csv_field(out: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
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

/// Appends an integer's decimal digits without allocating.
pub(crate) fn push_int(out: &mut Vec<u8>, value: i128) {
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
