//! Reading a journal directory: full verification of every segment (used by `read_all`,
//! `verify` and `Journal::open`), and the torn-tail analysis used by recovery.
//!
//! The scanner never repairs anything; it reports where appending can continue and, in
//! recovery mode, which tail range is torn. `Journal::open` applies the repair.

use super::error::{Defect, JournalError};
use super::format::{
    check_link, parse_record, RecordKind, SegmentHeader, GENESIS_CHAIN, RECORD_ALIGN,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_SIZE_MAX,
};
use super::segment::list_segments;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Any irregularity is an error, including a torn tail.
    Strict,
    /// A torn tail in the last segment is reported (not an error) so it can be truncated.
    Recover,
}

/// The end of the journal as found on disk.
pub(crate) struct Tail {
    pub number: u64,
    pub path: PathBuf,
    pub size: u64,
    /// Offset after the last valid record.
    pub end: u64,
    /// The last valid record is a segment-end record: appending continues in a new segment.
    pub ended: bool,
}

pub(crate) struct TornRange {
    pub file: PathBuf,
    pub offset: u64,
    /// Exclusive end of the non-zero bytes at or after `offset`.
    pub end: u64,
    /// CRC-valid records found inside the torn range (written but never made durable).
    pub records: u64,
}

pub(crate) struct ScanOutcome {
    pub segments: u64,
    pub records: u64,
    pub payload_bytes: u64,
    pub last_seq: u64,
    pub chain: [u8; 16],
    pub sealed: bool,
    pub tail: Option<Tail>,
    pub torn: Option<TornRange>,
    /// A last segment file without records or a valid header: created in advance but never
    /// given a header, or whose header write was torn.
    pub unused_segment: Option<PathBuf>,
}

/// Reads and checks every segment in order, calling `on_data(seq, payload)` for each data
/// record once its CRC and chain link are verified.
pub(crate) fn scan(
    dir: &Path,
    mode: Mode,
    on_data: &mut dyn FnMut(u64, &[u8]),
) -> Result<ScanOutcome, JournalError> {
    let mut segments = list_segments(dir)?;
    let mut buf = Vec::new();
    let mut out = ScanOutcome {
        segments: 0,
        records: 0,
        payload_bytes: 0,
        last_seq: 0,
        chain: GENESIS_CHAIN,
        sealed: false,
        tail: None,
        torn: None,
        unused_segment: None,
    };
    // A last segment with no records and no valid header was created ahead of time (or its
    // header write was torn): it holds nothing and is not part of the journal.
    if let Some((_, path)) = segments.last() {
        read_segment(path, &mut buf)?;
        let body = buf.get(SEGMENT_HEADER_LEN..).unwrap_or(&[]);
        if first_nonzero(body).is_none() && SegmentHeader::decode(&buf).is_err() {
            out.unused_segment = Some(path.clone());
            segments.pop();
        }
    }
    let count = segments.len();
    for (i, (number, path)) in segments.iter().enumerate() {
        if out.sealed {
            return Err(corrupt(path, 0, Defect::SegmentAfterSeal));
        }
        read_segment(path, &mut buf)?;
        let segment = SegmentScan {
            path,
            number: *number,
            is_last: i + 1 == count,
            mode,
        };
        segment.scan(&mut buf, &mut out, on_data)?;
    }
    Ok(out)
}

struct SegmentScan<'a> {
    path: &'a Path,
    number: u64,
    is_last: bool,
    mode: Mode,
}

/// How the records of a segment ended.
enum End {
    /// With a segment-end or seal record.
    Closed(RecordKind),
    /// At the first record that is not valid at its place.
    Defect(Defect),
}

impl SegmentScan<'_> {
    fn scan(
        &self,
        buf: &mut [u8],
        out: &mut ScanOutcome,
        on_data: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), JournalError> {
        let header = self.check_header(buf, out)?;
        let (off, end) = read_records(buf, out, on_data);
        out.segments += 1;
        let tail = Tail {
            number: self.number,
            path: self.path.to_path_buf(),
            size: header.size,
            end: off as u64,
            ended: false,
        };
        match end {
            End::Closed(kind) => {
                if let Some(nz) = first_nonzero(&buf[off..]) {
                    let offset = (off + nz) as u64;
                    return Err(corrupt(self.path, offset, Defect::GarbageAfterEnd));
                }
                out.sealed = kind == RecordKind::Seal;
                if self.is_last {
                    let ended = kind == RecordKind::SegmentEnd;
                    out.tail = Some(Tail { ended, ..tail });
                }
                Ok(())
            }
            End::Defect(defect) => self.after_defect(buf, off, defect, tail, out),
        }
    }

    /// Decides what the first invalid bytes at `off` are: the normal end (zeros), a torn tail
    /// (recovery mode, last segment, nothing proves it was durable) or corruption.
    fn after_defect(
        &self,
        buf: &[u8],
        off: usize,
        defect: Defect,
        tail: Tail,
        out: &mut ScanOutcome,
    ) -> Result<(), JournalError> {
        let Some(last_nonzero) = last_nonzero(&buf[off..]).map(|i| off + i) else {
            if !self.is_last {
                return Err(corrupt(self.path, off as u64, Defect::MissingSegmentEnd));
            }
            // Zeros after the last record: the normal end of an open journal.
            out.tail = Some(tail);
            return Ok(());
        };
        if !self.is_last {
            return Err(corrupt(self.path, off as u64, defect));
        }
        let search = search_after(buf, off, buf.len());
        if let Some(witness) = search.durable_witness {
            let defect = Defect::CorruptDurable {
                inner: Box::new(defect),
                witness_offset: witness as u64,
            };
            return Err(corrupt(self.path, off as u64, defect));
        }
        if self.mode == Mode::Strict {
            let defect = Defect::TornTail {
                inner: Box::new(defect),
            };
            return Err(corrupt(self.path, off as u64, defect));
        }
        out.torn = Some(TornRange {
            file: self.path.to_path_buf(),
            offset: off as u64,
            end: last_nonzero as u64 + 1,
            records: search.records,
        });
        out.tail = Some(tail);
        Ok(())
    }

    fn check_header(&self, buf: &[u8], out: &ScanOutcome) -> Result<SegmentHeader, JournalError> {
        let header =
            SegmentHeader::decode(buf).map_err(|(off, defect)| corrupt(self.path, off, defect))?;
        let mismatch = if header.number != self.number {
            Some((
                16,
                Defect::SegmentNumber {
                    expected: self.number,
                    found: header.number,
                },
            ))
        } else if header.base_seq != out.last_seq {
            Some((
                24,
                Defect::BaseSeq {
                    expected: out.last_seq,
                    found: header.base_seq,
                },
            ))
        } else if header.prev_chain != out.chain {
            Some((40, Defect::PrevChain))
        } else if buf.len() as u64 > header.size {
            Some((header.size, Defect::FileLargerThanSegment))
        } else {
            None
        };
        match mismatch {
            Some((off, defect)) => Err(corrupt(self.path, off, defect)),
            None => Ok(header),
        }
    }
}

/// Reads records from just after the segment header until a closing record or a defect,
/// delivering data records. Returns the offset after the last valid record and how it ended.
fn read_records(
    buf: &mut [u8],
    out: &mut ScanOutcome,
    on_data: &mut dyn FnMut(u64, &[u8]),
) -> (usize, End) {
    let limit = buf.len();
    let mut off = SEGMENT_HEADER_LEN;
    // Each iteration consumes one record (at least RECORD_HEADER_LEN bytes) or returns.
    loop {
        match next_record(buf, off, limit, out) {
            Ok((kind, seq, (frame_len, payload_len))) => {
                if kind == RecordKind::Data {
                    let payload = &buf[off + RECORD_HEADER_LEN..][..payload_len];
                    on_data(seq, payload);
                    out.records += 1;
                    out.payload_bytes += payload_len as u64;
                }
                off += frame_len;
                if kind != RecordKind::Data {
                    return (off, End::Closed(kind));
                }
            }
            Err(defect) => return (off, End::Defect(defect)),
        }
    }
}

/// Parses and links the record at `off`; on success advances the chain state in `out` and
/// returns (kind, seq, (frame length, payload length)).
fn next_record(
    buf: &mut [u8],
    off: usize,
    limit: usize,
    out: &mut ScanOutcome,
) -> Result<(RecordKind, u64, (usize, usize)), Defect> {
    let view = parse_record(buf, off, limit)?;
    check_link(
        &buf[off..off + view.frame_len],
        off,
        &view,
        out.last_seq,
        &out.chain,
    )?;
    out.last_seq = view.seq;
    out.chain = view.chain;
    Ok((view.kind, view.seq, (view.frame_len, view.payload_len)))
}

struct Search {
    /// CRC-valid records found.
    records: u64,
    /// Offset of a CRC-valid record whose synced offset lies after the start of the search:
    /// it was written after the bytes at the start had been made durable.
    durable_witness: Option<usize>,
}

/// Looks for CRC-valid records at or after the first bad offset `from`. Torn writes (a crash
/// during an unsynced write) can leave later records intact while an earlier page is missing;
/// such records carry a synced offset at or before `from` (the start of the unsynced write is
/// at or before the first damage). A record whose synced offset is past `from` proves the bad
/// bytes had been durable (or that records were moved): corruption, not a torn write.
fn search_after(buf: &[u8], from: usize, limit: usize) -> Search {
    let mut search = Search {
        records: 0,
        durable_witness: None,
    };
    let mut off = from;
    // Each iteration advances by at least RECORD_ALIGN.
    while off + RECORD_HEADER_LEN <= limit {
        let plausible = (1..=3).contains(&buf[off]) && buf[off + 1..off + 4] == [0, 0, 0];
        if plausible {
            if let Ok(view) = parse_record(buf, off, limit) {
                if view.synced_offset > from as u64 {
                    search.durable_witness = Some(off);
                    return search;
                }
                search.records += 1;
                off += view.frame_len;
                continue;
            }
        }
        off += RECORD_ALIGN;
    }
    search
}

/// Reads a whole segment file into `buf`, refusing files beyond the format's size bound.
fn read_segment(path: &Path, buf: &mut Vec<u8>) -> Result<(), JournalError> {
    let mut file = std::fs::File::open(path).map_err(|e| JournalError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| JournalError::io("stat", path, e))?
        .len();
    if len > SEGMENT_SIZE_MAX {
        return Err(corrupt(
            path,
            SEGMENT_SIZE_MAX,
            Defect::SegmentSize { size: len },
        ));
    }
    buf.clear();
    buf.reserve(len as usize);
    file.by_ref()
        .take(SEGMENT_SIZE_MAX)
        .read_to_end(buf)
        .map_err(|e| JournalError::io("read", path, e))?;
    Ok(())
}

fn corrupt(path: &Path, offset: u64, defect: Defect) -> JournalError {
    JournalError::Corrupt {
        file: path.to_path_buf(),
        offset,
        defect,
    }
}

/// Index of the first non-zero byte. Compares 8 bytes at a time: zero tails of pre-allocated
/// segments are long.
pub(crate) fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in chunks.by_ref() {
        if u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) != 0 {
            return chunk.iter().position(|&b| b != 0).map(|i| base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b != 0)
        .map(|i| base + i)
}

/// Index of the last non-zero byte, 8 bytes at a time from the end.
fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.rchunks_exact(8);
    let mut end = bytes.len();
    for chunk in chunks.by_ref() {
        if u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) != 0 {
            return chunk.iter().rposition(|&b| b != 0).map(|i| end - 8 + i);
        }
        end -= 8;
    }
    chunks.remainder().iter().rposition(|&b| b != 0)
}
