//! The on-disk layout: constants, segment-header and record encoding, and the pure checks shared
//! by the writer (which frames records) and the scanner (which verifies and recovers them).
//!
//! Everything here is a pure function of its byte input; no I/O, no clock. See the module doc of
//! `journal` for the layout tables.

use super::error::Defect;

/// First 8 bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"CLHJRNL\0";
/// Bumped on any incompatible change of the layout below.
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const SEGMENT_HEADER_LEN: usize = 64;
pub(crate) const RECORD_HEADER_LEN: usize = 40;
/// Records start at multiples of 8 so the ring can use an aligned atomic commit word and the
/// torn-tail search only probes 8-aligned offsets.
pub(crate) const RECORD_ALIGN: usize = 8;
/// The chain value the first record of the first segment links to.
pub(crate) const GENESIS_CHAIN: [u8; 16] = *b"CLEARHOUSE-JRNL1";

/// Bounds on a segment file. The upper bound keeps every file offset in a `u32` (the
/// synced-offset field) and bounds the memory the scanner needs per segment.
pub(crate) const SEGMENT_SIZE_MIN: u64 = 4096;
pub(crate) const SEGMENT_SIZE_MAX: u64 = 1 << 30;

/// Record header field offsets.
const OFF_KIND: usize = 0;
const OFF_LEN: usize = 4;
const OFF_SEQ: usize = 8;
const OFF_SYNCED: usize = 16;
const OFF_CRC: usize = 20;
const OFF_CHAIN: usize = 24;

/// Segment header field offsets.
const SH_MAGIC: usize = 0;
const SH_VERSION: usize = 8;
const SH_NUMBER: usize = 16;
const SH_BASE_SEQ: usize = 24;
const SH_SIZE: usize = 32;
const SH_PREV_CHAIN: usize = 40;
const SH_CRC: usize = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// An opaque payload appended by a producer. Data records are numbered 1, 2, 3, ...
    Data = 1,
    /// Last record of a segment that is followed by another segment.
    SegmentEnd = 2,
    /// Last record of the journal: no record may follow.
    Seal = 3,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Data),
            2 => Some(RecordKind::SegmentEnd),
            3 => Some(RecordKind::Seal),
            _ => None,
        }
    }
}

/// Whether `n` is a multiple of the record alignment.
pub(crate) const fn is_aligned(n: u64) -> bool {
    n & (RECORD_ALIGN as u64 - 1) == 0
}

/// Payload length rounded up to the record alignment.
pub(crate) const fn padded_len(payload_len: usize) -> usize {
    (payload_len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Bytes a record with this payload occupies on disk (and in the ring).
pub(crate) const fn frame_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + padded_len(payload_len)
}

/// Segment header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub number: u64,
    /// Sequence number of the last data record before this segment (0 for segment 1).
    pub base_seq: u64,
    /// Size the file was pre-allocated to; records never extend past it.
    pub size: u64,
    /// Chain value of the last record of the previous segment ([`GENESIS_CHAIN`] for segment 1).
    pub prev_chain: [u8; 16],
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[SH_MAGIC..SH_MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
        out[SH_VERSION..SH_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[SH_NUMBER..SH_NUMBER + 8].copy_from_slice(&self.number.to_le_bytes());
        out[SH_BASE_SEQ..SH_BASE_SEQ + 8].copy_from_slice(&self.base_seq.to_le_bytes());
        out[SH_SIZE..SH_SIZE + 8].copy_from_slice(&self.size.to_le_bytes());
        out[SH_PREV_CHAIN..SH_PREV_CHAIN + 16].copy_from_slice(&self.prev_chain);
        let crc = crc32c::crc32c(&out[..SH_CRC]);
        out[SH_CRC..SH_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks the header's own integrity (magic, version, CRC, size bounds); the
    /// caller checks it against its neighbours. Returns the defect and its byte offset.
    pub(crate) fn decode(buf: &[u8]) -> Result<SegmentHeader, (u64, Defect)> {
        if buf.len() < SEGMENT_HEADER_LEN {
            return Err((0, Defect::Truncated));
        }
        let h = &buf[..SEGMENT_HEADER_LEN];
        if h[SH_MAGIC..SH_MAGIC + 8] != SEGMENT_MAGIC {
            return Err((SH_MAGIC as u64, Defect::BadMagic));
        }
        let stored = read_u32(h, SH_CRC);
        let computed = crc32c::crc32c(&h[..SH_CRC]);
        if stored != computed {
            // The CRC covers the whole header: name the header's start.
            return Err((0, Defect::Crc { stored, computed }));
        }
        let version = read_u32(h, SH_VERSION);
        if version != FORMAT_VERSION {
            return Err((SH_VERSION as u64, Defect::UnsupportedVersion(version)));
        }
        let header = SegmentHeader {
            number: read_u64(h, SH_NUMBER),
            base_seq: read_u64(h, SH_BASE_SEQ),
            size: read_u64(h, SH_SIZE),
            prev_chain: h[SH_PREV_CHAIN..SH_PREV_CHAIN + 16]
                .try_into()
                .expect("16 bytes"),
        };
        let size_ok =
            (SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX).contains(&header.size) && is_aligned(header.size);
        if !size_ok {
            return Err((SH_SIZE as u64, Defect::SegmentSize { size: header.size }));
        }
        Ok(header)
    }
}

/// Producer-side sums of a payload: the CRC32C of payload and zero padding (the record CRC is
/// this CRC continued over the header), and the XXH3-128 digest of the payload (the chain hashes
/// it). Computed by each producer in parallel, so the single writer only hashes 40-byte headers,
/// and computed from the producer's own bytes, so a fault between producer and disk is caught.
pub(crate) fn payload_sums(payload: &[u8]) -> (u32, [u8; 16]) {
    const ZEROS: [u8; RECORD_ALIGN] = [0; RECORD_ALIGN];
    let padding = padded_len(payload.len()) - payload.len();
    let crc = crc::append(crc::append(0, payload), &ZEROS[..padding]);
    (crc, xxhash_rust::xxh3::xxh3_128(payload).to_le_bytes())
}

/// Writes what a producer contributes to a record header: kind, length, payload CRC (in the crc
/// field) and payload digest (in the chain field). The rest stays zero for the writer.
pub(crate) fn producer_header(kind: RecordKind, payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    assert!(payload.len() <= u32::MAX as usize);
    assert!(kind == RecordKind::Data || payload.is_empty());
    let (crc, digest) = payload_sums(payload);
    let mut out = [0u8; RECORD_HEADER_LEN];
    out[OFF_KIND] = kind as u8;
    out[OFF_LEN..OFF_LEN + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    out[OFF_CHAIN..OFF_CHAIN + 16].copy_from_slice(&digest);
    out
}

/// The header fields the chain and the record CRC cover, as little-endian words: the writer
/// (once per record, on the single thread every append goes through) works on these in
/// registers instead of re-reading byte slices it has just assembled.
#[derive(Clone, Copy)]
struct HeaderWords {
    /// Bytes 0..8: kind, reserved, payload length.
    kind_len: u64,
    seq: u64,
    synced: u32,
}

impl HeaderWords {
    fn read(header: &[u8]) -> HeaderWords {
        HeaderWords {
            kind_len: read_u64(header, OFF_KIND),
            seq: read_u64(header, OFF_SEQ),
            synced: read_u32(header, OFF_SYNCED),
        }
    }
}

/// Completes a record header prepared by [`producer_header`]: fills seq and the synced offset,
/// replaces the payload digest with the chain value and the payload CRC with the record CRC.
/// Returns the chain value. Reads only the 40 header bytes, never the payload.
pub(crate) fn finish_record(
    header: &mut [u8],
    seq: u64,
    synced_offset: u32,
    prev_chain: &[u8; 16],
) -> [u8; 16] {
    assert_eq!(header.len(), RECORD_HEADER_LEN);
    debug_assert!(header[OFF_SEQ..OFF_CRC].iter().all(|&b| b == 0));
    let words = HeaderWords {
        kind_len: read_u64(header, OFF_KIND),
        seq,
        synced: synced_offset,
    };
    let payload_crc = read_u32(header, OFF_CRC);
    let digest = read_u128(header, OFF_CHAIN);
    let chain = chain_hash(read_u128(prev_chain, 0), words, digest);
    let crc = header_crc(payload_crc, words, chain);
    header[OFF_SEQ..OFF_SEQ + 8].copy_from_slice(&seq.to_le_bytes());
    header[OFF_SYNCED..OFF_SYNCED + 4].copy_from_slice(&synced_offset.to_le_bytes());
    header[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    header[OFF_CHAIN..OFF_CHAIN + 16].copy_from_slice(&chain.to_le_bytes());
    chain.to_le_bytes()
}

/// The first 64 bytes of XXH3's default secret (`kSecret` of the reference implementation),
/// as little-endian words: the part a 52-byte input uses. `chain_hash_is_xxh3_128` checks
/// them against the `xxhash-rust` crate, which does not export its copy.
const XXH3_SECRET: [u64; 8] = [
    0xbe4b_a423_396c_feb8,
    0x1cad_21f7_2c81_017c,
    0xdb97_9083_e96d_d4de,
    0x1f67_b3b7_a4a4_4072,
    0x78e5_c0cc_4ee6_79cb,
    0x2172_ffcc_7dd0_5a82,
    0x8e24_43f7_7446_08b8,
    0x4c26_3a81_e690_35e0,
];
const XXH_PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const XXH_PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const XXH_PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
/// Bytes the chain hashes: previous chain value, header bytes 0..20, payload digest.
const CHAIN_INPUT_LEN: u64 = 16 + OFF_CRC as u64 + 16;

/// The chain value: XXH3-128 (seed 0) of `prev_chain ‖ header bytes 0..20 ‖ payload digest`,
/// the 52 bytes documented in the format. This is XXH3's 17..=128-byte path unrolled for
/// exactly 52 bytes, fed from words: assembling the 52 bytes in memory and hashing them made
/// the single writer stall on the reloads of the overlapping unaligned words XXH3 reads
/// (store forwarding fails), a third of the writer's per-record hashing time.
fn chain_hash(prev: u128, words: HeaderWords, digest: u128) -> u128 {
    let mix16 = |lo: u64, hi: u64, secret: usize| {
        let product =
            u128::from(lo ^ XXH3_SECRET[secret]) * u128::from(hi ^ XXH3_SECRET[secret + 1]);
        product as u64 ^ (product >> 64) as u64
    };
    // The input as XXH3 reads it: words at byte offsets 0, 8 (prev), 16, 24 (header), 20, 28
    // (the last 32 bytes start at 20), 36, 44 (digest).
    let (w0, w8) = (prev as u64, (prev >> 64) as u64);
    let (w16, w24) = (words.kind_len, words.seq);
    let w20 = (words.kind_len >> 32) | (words.seq << 32);
    let w28 = (words.seq >> 32) | (u64::from(words.synced) << 32);
    let (w36, w44) = (digest as u64, (digest >> 64) as u64);
    let mut lo = CHAIN_INPUT_LEN.wrapping_mul(XXH_PRIME64_1);
    let mut hi = 0u64;
    // mix32B(input + 16, input + len - 32, secret + 32)
    lo = lo.wrapping_add(mix16(w16, w24, 4));
    lo ^= w20.wrapping_add(w28);
    hi = hi.wrapping_add(mix16(w20, w28, 6));
    hi ^= w16.wrapping_add(w24);
    // mix32B(input, input + len - 16, secret)
    lo = lo.wrapping_add(mix16(w0, w8, 0));
    lo ^= w36.wrapping_add(w44);
    hi = hi.wrapping_add(mix16(w36, w44, 2));
    hi ^= w0.wrapping_add(w8);
    let low = xxh3_avalanche(lo.wrapping_add(hi));
    let high = 0u64.wrapping_sub(xxh3_avalanche(
        lo.wrapping_mul(XXH_PRIME64_1)
            .wrapping_add(hi.wrapping_mul(XXH_PRIME64_4))
            .wrapping_add(CHAIN_INPUT_LEN.wrapping_mul(XXH_PRIME64_2)),
    ));
    u128::from(low) | (u128::from(high) << 64)
}

fn xxh3_avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(0x1656_6791_9E37_79F9);
    h ^ (h >> 32)
}

/// The record CRC: CRC32C of `payload ‖ padding ‖ header without its crc field`, continued from
/// the payload's CRC.
fn header_crc(payload_crc: u32, words: HeaderWords, chain: u128) -> u32 {
    // The 36 covered bytes as four words and a 4-byte tail (the chain starts at byte 20).
    let chain_lo = chain as u64;
    let chain_hi = (chain >> 64) as u64;
    let head = [
        words.kind_len,
        words.seq,
        u64::from(words.synced) | (chain_lo << 32),
        (chain_lo >> 32) | (chain_hi << 32),
    ];
    crc::append_words(payload_crc, &head, (chain_hi >> 32) as u32)
}

/// CRC32C (Castagnoli) continuation. Journal inputs are short (a 64-byte payload, a 36-byte
/// header): the `crc32c` crate's path for long inputs (three interleaved streams and a
/// combination step) costs more than the checksum itself there, so short inputs are folded a
/// word at a time with the SSE 4.2 instruction and the rest is left to the crate.
pub(crate) mod crc {
    /// Inputs at most this long take the word-at-a-time path.
    const SHORT_MAX: usize = 256;

    pub(crate) fn append(crc: u32, data: &[u8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            if data.len() <= SHORT_MAX && std::arch::is_x86_feature_detected!("sse4.2") {
                // SAFETY: the CPU supports SSE 4.2 (checked just above).
                return unsafe { append_sse42(crc, data) };
            }
        }
        crc32c::crc32c_append(crc, data)
    }

    /// `append` over the little-endian bytes of `words` followed by those of `tail`, without
    /// storing them to memory first.
    pub(crate) fn append_words(crc: u32, words: &[u64; 4], tail: u32) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("sse4.2") {
                // SAFETY: the CPU supports SSE 4.2 (checked just above).
                return unsafe { append_words_sse42(crc, words, tail) };
            }
        }
        let mut bytes = [0u8; 36];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes[32..].copy_from_slice(&tail.to_le_bytes());
        crc32c::crc32c_append(crc, &bytes)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.2")]
    unsafe fn append_words_sse42(crc: u32, words: &[u64; 4], tail: u32) -> u32 {
        use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64};
        let mut state = u64::from(!crc);
        for &word in words {
            state = _mm_crc32_u64(state, word);
        }
        !_mm_crc32_u32(state as u32, tail)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.2")]
    unsafe fn append_sse42(crc: u32, data: &[u8]) -> u32 {
        use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
        let mut state = u64::from(!crc);
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            state = _mm_crc32_u64(state, word);
        }
        let mut state = state as u32;
        for &byte in words.remainder() {
            state = _mm_crc32_u8(state, byte);
        }
        !state
    }
}

/// A record whose structure and CRC are valid (its place in the chain is checked separately).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordView {
    pub kind: RecordKind,
    pub payload_len: usize,
    pub seq: u64,
    pub synced_offset: u64,
    pub chain: [u8; 16],
    pub frame_len: usize,
}

/// Checks the record at `off` in a segment image whose records must end by `limit`: kind,
/// reserved bytes, length bounds, CRC, zero padding. Does not look at the chain, the sequence
/// or the synced offset, which depend on the record's place: see [`check_link`].
pub(crate) fn parse_record(buf: &[u8], off: usize, limit: usize) -> Result<RecordView, Defect> {
    assert!(limit <= buf.len() && is_aligned(off as u64));
    if off + RECORD_HEADER_LEN > limit {
        return Err(Defect::Truncated);
    }
    let h = &buf[off..off + RECORD_HEADER_LEN];
    let kind = RecordKind::from_byte(h[OFF_KIND]).ok_or(Defect::BadKind(h[OFF_KIND]))?;
    if h[1..4] != [0, 0, 0] {
        return Err(Defect::NonZeroReserved);
    }
    let payload_len = read_u32(h, OFF_LEN) as usize;
    let frame = frame_len(payload_len);
    if frame > limit - off {
        return Err(Defect::Truncated);
    }
    let body = &buf[off + RECORD_HEADER_LEN..off + frame];
    let stored = read_u32(h, OFF_CRC);
    let computed = header_crc(
        crc::append(0, body),
        HeaderWords::read(h),
        read_u128(h, OFF_CHAIN),
    );
    if stored != computed {
        return Err(Defect::Crc { stored, computed });
    }
    // The CRC already covers the padding; a CRC-valid record with non-zero padding or a control
    // record with a payload can only come from a writer bug, so it is named as such.
    if body[payload_len..].iter().any(|&b| b != 0) {
        return Err(Defect::NonZeroPadding);
    }
    if kind != RecordKind::Data && payload_len != 0 {
        return Err(Defect::ControlPayload);
    }
    Ok(RecordView {
        kind,
        payload_len,
        seq: read_u64(h, OFF_SEQ),
        synced_offset: u64::from(read_u32(h, OFF_SYNCED)),
        chain: h[OFF_CHAIN..OFF_CHAIN + 16].try_into().expect("16 bytes"),
        frame_len: frame,
    })
}

/// Checks that a parsed record at `off` belongs there: its synced offset lies before it, its
/// sequence number follows `prev_seq` (data records take the next number, control records
/// repeat the last one) and its chain value is the hash of itself linked to `prev_chain`.
/// `frame` is the record's bytes.
pub(crate) fn check_link(
    frame: &[u8],
    off: usize,
    view: &RecordView,
    prev_seq: u64,
    prev_chain: &[u8; 16],
) -> Result<(), Defect> {
    assert_eq!(frame.len(), view.frame_len);
    // The writer only ever records an offset it has synced before writing this record.
    let synced_offset = view.synced_offset;
    if synced_offset < SEGMENT_HEADER_LEN as u64 || synced_offset > off as u64 {
        return Err(Defect::SyncedOffset { synced_offset });
    }
    let expected_seq = match view.kind {
        RecordKind::Data => prev_seq.checked_add(1).ok_or(Defect::Seq {
            expected: u64::MAX,
            found: view.seq,
        })?,
        RecordKind::SegmentEnd | RecordKind::Seal => prev_seq,
    };
    if view.seq != expected_seq {
        return Err(Defect::Seq {
            expected: expected_seq,
            found: view.seq,
        });
    }
    let payload = &frame[RECORD_HEADER_LEN..RECORD_HEADER_LEN + view.payload_len];
    let digest = xxhash_rust::xxh3::xxh3_128(payload);
    let chain = chain_hash(read_u128(prev_chain, 0), HeaderWords::read(frame), digest);
    if chain.to_le_bytes() != view.chain {
        return Err(Defect::Chain);
    }
    Ok(())
}

/// Ring-only frame kinds (never on disk): they occupy the kind byte of a ring frame.
pub(crate) mod ring_kind {
    /// Skip marker written by a producer whose claim would cross the end of the ring.
    pub(crate) const PAD: u8 = 0x80;
    /// Written by `Journal::seal`: the writer appends the seal record and stops.
    pub(crate) const SEAL: u8 = 0x81;
    /// Written by `Journal::close` / drop: the writer syncs and stops.
    pub(crate) const SHUTDOWN: u8 = 0x82;
}

pub(crate) fn read_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(buf[off..off + 4].try_into().expect("4 bytes"))
}

pub(crate) fn read_u64(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(buf[off..off + 8].try_into().expect("8 bytes"))
}

fn read_u128(buf: &[u8], off: usize) -> u128 {
    u128::from_le_bytes(buf[off..off + 16].try_into().expect("16 bytes"))
}

/// Byte offset of the length field inside a record header (the producer writes it).
pub(crate) const RECORD_LEN_OFFSET: usize = OFF_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    fn data_record(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; frame_len(payload.len())];
        frame[..RECORD_HEADER_LEN].copy_from_slice(&producer_header(RecordKind::Data, payload));
        frame[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
        frame
    }

    #[test]
    fn record_round_trips_and_links() {
        let mut buf = vec![0u8; SEGMENT_HEADER_LEN];
        let mut chain = GENESIS_CHAIN;
        for (i, payload) in [&b""[..], b"a", b"12345678", b"123456789"]
            .iter()
            .enumerate()
        {
            let off = buf.len();
            let mut frame = data_record(payload);
            chain = finish_record(&mut frame[..RECORD_HEADER_LEN], i as u64 + 1, 64, &chain);
            buf.extend_from_slice(&frame);
            let view = parse_record(&buf, off, buf.len()).expect("valid");
            assert_eq!(view.payload_len, payload.len());
            assert_eq!(view.chain, chain);
        }
        let mut off = SEGMENT_HEADER_LEN;
        let (mut seq, mut prev) = (0, GENESIS_CHAIN);
        while off < buf.len() {
            let view = parse_record(&buf, off, buf.len()).expect("valid");
            let end = off + view.frame_len;
            check_link(&buf[off..end], off, &view, seq, &prev).expect("linked");
            (seq, prev, off) = (view.seq, view.chain, end);
        }
        assert_eq!(seq, 4);
        // Linking to the wrong predecessor is detected.
        let view = parse_record(&buf, SEGMENT_HEADER_LEN, buf.len()).expect("valid");
        let end = SEGMENT_HEADER_LEN + view.frame_len;
        let wrong = [7u8; 16];
        let err = check_link(
            &buf[SEGMENT_HEADER_LEN..end],
            SEGMENT_HEADER_LEN,
            &view,
            0,
            &wrong,
        );
        assert_eq!(err, Err(Defect::Chain));
    }

    /// The unrolled chain hash is the documented one: XXH3-128 of the 52 assembled bytes.
    #[test]
    fn chain_hash_is_xxh3_128() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let prev = u128::from(next()) | (u128::from(next()) << 64);
            let digest = u128::from(next()) | (u128::from(next()) << 64);
            let words = HeaderWords {
                kind_len: if round % 3 == 0 {
                    next()
                } else {
                    next() & 0xFFFF_FFFF_0000_00FF
                },
                seq: if round % 2 == 0 { next() } else { next() >> 40 },
                synced: next() as u32,
            };
            let mut input = Vec::with_capacity(52);
            input.extend_from_slice(&prev.to_le_bytes());
            input.extend_from_slice(&words.kind_len.to_le_bytes());
            input.extend_from_slice(&words.seq.to_le_bytes());
            input.extend_from_slice(&words.synced.to_le_bytes());
            input.extend_from_slice(&digest.to_le_bytes());
            assert_eq!(input.len() as u64, CHAIN_INPUT_LEN);
            assert_eq!(
                chain_hash(prev, words, digest),
                xxhash_rust::xxh3::xxh3_128(&input),
                "round {round}"
            );
        }
    }

    /// The short-input CRC path computes the same CRC32C as the crate, at every length and
    /// split point around the word boundaries.
    #[test]
    fn short_crc_matches_the_crate() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            let expected = crc32c::crc32c(&data[..len]);
            assert_eq!(crc::append(0, &data[..len]), expected, "len {len}");
            let split = len / 3;
            let first = crc::append(0, &data[..split]);
            assert_eq!(crc::append(first, &data[split..len]), expected, "len {len}");
        }
    }

    #[test]
    fn segment_header_round_trips() {
        let header = SegmentHeader {
            number: 3,
            base_seq: 17,
            size: 1 << 20,
            prev_chain: [9; 16],
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for i in 0..bytes.len() {
            let mut flipped = bytes;
            flipped[i] ^= 0x10;
            assert!(SegmentHeader::decode(&flipped).is_err(), "flip at {i}");
        }
    }
}
