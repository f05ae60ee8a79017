//! The journal's per-record work without its ring or its files, for the `journal-ceiling`
//! measurement in `bench/` (what this machine allows, BENCHMARKS.md). Not an API.

use super::format::{self, RecordKind, RECORD_HEADER_LEN};

/// Header length of every record.
pub const HEADER_BYTES: usize = RECORD_HEADER_LEN;

/// What a producer computes before it claims: the data record header of `payload` with
/// the payload's CRC32C and digest.
pub fn producer_header(payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    format::producer_header(RecordKind::Data, payload)
}

/// What the writer does per record, in claim order: sequence number, chain value and
/// record CRC, in place (as for a record in a segment whose header alone is synced).
/// Returns the new chain value.
pub fn finish_record(header: &mut [u8], seq: u64, prev_chain: &[u8; 16]) -> [u8; 16] {
    let synced = format::SEGMENT_HEADER_LEN as u32;
    format::finish_record(header, seq, synced, prev_chain)
}

#[cfg(test)]
mod tests {
    use super::super::format::{check_link, parse_record, GENESIS_CHAIN};
    use super::*;

    /// The bench times the journal's real work only if what it builds is a valid record.
    #[test]
    fn builds_records_that_verify_in_a_chain() {
        let mut segment = vec![0u8; format::SEGMENT_HEADER_LEN];
        let mut offsets = Vec::new();
        let mut chain = GENESIS_CHAIN;
        let payloads: [&[u8]; 3] = [b"trade 1", &[0x5A; 64], b""];
        for (i, payload) in payloads.iter().enumerate() {
            let mut frame = vec![0u8; format::frame_len(payload.len())];
            frame[..HEADER_BYTES].copy_from_slice(&producer_header(payload));
            frame[HEADER_BYTES..HEADER_BYTES + payload.len()].copy_from_slice(payload);
            chain = finish_record(&mut frame[..HEADER_BYTES], i as u64 + 1, &chain);
            offsets.push(segment.len());
            segment.extend_from_slice(&frame);
        }
        let (mut seq, mut chain) = (0, GENESIS_CHAIN);
        for &off in &offsets {
            let view = parse_record(&segment, off, segment.len()).expect("CRC and layout");
            let frame = &segment[off..off + view.frame_len];
            check_link(frame, off, &view, seq, &chain).expect("sequence and chain");
            (seq, chain) = (view.seq, view.chain);
        }
        assert_eq!(seq, 3);
        // A flipped payload byte breaks the record's CRC, as on disk.
        segment[offsets[1] + HEADER_BYTES + 10] ^= 1;
        assert!(matches!(
            parse_record(&segment, offsets[1], segment.len()),
            Err(crate::journal::Defect::Crc { .. })
        ));
    }
}
