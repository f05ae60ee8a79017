//! ASCII digits eight at a time in one `u64` (SWAR): which bytes are digits, and the number
//! eight digits spell. Used where a per-digit multiply chain was a hot loop: trade ids,
//! prices.

/// Eight ASCII '0's.
pub const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// Bit 7 of each byte of `word` that is not an ASCII digit, and no other bit.
#[inline(always)]
pub fn non_digit_bytes(word: u64) -> u64 {
    // A digit's byte is 0..=9 after the xor; masking bit 7 first keeps the add from carrying
    // into the next byte, and the `| x` catches bytes that had bit 7 set.
    let x = word ^ ASCII_ZEROS;
    (((x & 0x7F7F_7F7F_7F7F_7F7F) + 0x7676_7676_7676_7676) | x) & 0x8080_8080_8080_8080
}

/// The number an eight-digit text spells, its first digit in the lowest byte (the text loaded
/// little-endian): pairs, then fours, then the eight, by multiply and shift.
#[inline(always)]
pub fn eight_digits(text: u64) -> u64 {
    let v = text.wrapping_sub(ASCII_ZEROS);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let pairs_low = (v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let pairs_high = ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    pairs_low.wrapping_add(pairs_high) >> 32
}

/// The last `min(8, bytes.len())` bytes of `bytes` as the top bytes of a little-endian word,
/// the bytes below them '0's: the text right-aligned in eight, padded with leading zeros.
/// Whole-word loads only (a byte copy into a buffer read back as a word stalls the load on
/// the copy's stores).
#[inline(always)]
pub fn right_aligned(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            bytes[at..at + 4].try_into().unwrap_or_default(),
        ))
    };
    let (top, len) = match n {
        8.. => return word(n - 8),
        // The first and last four bytes overlap for n < 8; both hold the same bytes there.
        4..=7 => ((half(n - 4) << 32) | (half(0) << (8 * (8 - n))), n),
        _ => (
            bytes
                .iter()
                .fold(0u64, |w, &b| (w >> 8) | (u64::from(b) << 56)),
            n,
        ),
    };
    let pad = u64::MAX.checked_shr(8 * len as u32).unwrap_or(0);
    top | (ASCII_ZEROS & pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn eight_digits_reads_every_eight_digit_text(value in 0u64..100_000_000) {
            let text = format!("{value:08}");
            let word = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            proptest::prop_assert_eq!(eight_digits(word), value);
            proptest::prop_assert_eq!(non_digit_bytes(word), 0);
        }

        #[test]
        fn right_aligned_pads_with_leading_zeros(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..12)) {
            let tail = &bytes[bytes.len().saturating_sub(8)..];
            let mut want = [b'0'; 8];
            want[8 - tail.len()..].copy_from_slice(tail);
            proptest::prop_assert_eq!(right_aligned(&bytes), u64::from_le_bytes(want));
        }

        #[test]
        fn non_digit_bytes_marks_exactly_the_other_bytes(bytes in proptest::array::uniform8(proptest::num::u8::ANY)) {
            let want = bytes.iter().enumerate().fold(0u64, |m, (i, b)| {
                m | (u64::from(!b.is_ascii_digit()) << (8 * i + 7))
            });
            proptest::prop_assert_eq!(non_digit_bytes(u64::from_le_bytes(bytes)), want);
        }
    }
}
