//! Trades from CSV: the scanner splits records in place, fields are checked as borrowed text,
//! and nothing is allocated for a good row.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use super::key_cache::KeyCache;
use super::{
    check_text_with, optional_text, price_from_text, quantity_from_text, Bad, DateMemo, FilePart,
    KeyColumn, PartStats, ReadStats, TradeKeys, TradeSink, BUSINESS_DATE, BUYER, EXECUTED_AT,
    INSTRUMENT, PRICE, QUANTITY, SELLER, TRADE_COLUMNS, TRADE_ID,
};
use crate::csvscan::{read_header, width_error, CsvScanner, Layout, Scan};
use crate::fields::UTF8_REASON;
use crate::model::{Location, RowError, TradeFields};
use crate::FormatError;

pub(super) fn read<S: TradeSink>(path: &Path, sink: &mut S) -> Result<ReadStats, FormatError> {
    read_range(path, 0..u64::MAX, 1, sink).map(|part| part.stats)
}

/// Which way plain lines are read: [`Lines::Plain`] in blocks (the reader's own choice), or
/// each one through the record path that quoted lines take (tests compare the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lines {
    Plain,
    #[cfg(test)]
    RecordByRecord,
}

/// Up to `parts` parts that start at line starts near equal byte offsets, each numbered by
/// counting the line ends before it. A split that falls inside a quoted field is found out by
/// the reader of the part before it (it does not end where the next starts).
pub(super) fn split(
    path: &Path,
    parts: usize,
    min_part_bytes: u64,
) -> Result<Vec<FilePart>, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    let parts = (parts as u64).min(size / min_part_bytes).max(1);
    let mut starts: Vec<u64> = Vec::new();
    let mut window = vec![0u8; 64 * 1024];
    for k in 1..parts {
        let nominal = size * k / parts;
        file.seek(SeekFrom::Start(nominal)).map_err(io_error)?;
        let n = read_full(&mut file, &mut window).map_err(io_error)?;
        if let Some(i) = memchr::memchr(b'\n', &window[..n]) {
            let start = nominal + i as u64 + 1;
            if start < size && starts.last().is_none_or(|&last| start > last) {
                starts.push(start);
            }
        }
    }
    if starts.is_empty() {
        return Ok(vec![FilePart::Whole]);
    }
    // Physical line numbers: one plus the line ends before each start.
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let mut lines = Vec::with_capacity(starts.len());
    let mut buf = vec![0u8; 4 << 20];
    let (mut offset, mut newlines) = (0u64, 0u64);
    for &start in &starts {
        while offset < start {
            let want = usize::try_from(start - offset)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = read_full(&mut file, &mut buf[..want]).map_err(io_error)?;
            if n == 0 {
                break;
            }
            newlines += count_newlines(&buf[..n]);
            offset += n as u64;
        }
        lines.push(newlines + 1);
    }
    let mut out = Vec::with_capacity(starts.len() + 1);
    let (mut from, mut line) = (0u64, 1u64);
    for (&start, &next_line) in starts.iter().zip(&lines) {
        out.push(FilePart::CsvRecords {
            bytes: from..start,
            first_line: line,
        });
        (from, line) = (start, next_line);
    }
    out.push(FilePart::CsvRecords {
        bytes: from..u64::MAX,
        first_line: line,
    });
    Ok(out)
}

/// Counts `\n` bytes. A `u8` counter per chunk of 255 bytes cannot overflow, so its adds may
/// wrap (an add checked for overflow kept the loop from vectorising); memchr's iterator would
/// stop at every match.
fn count_newlines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|c| {
            let n = c
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n')));
            u64::from(n)
        })
        .sum()
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the records that start in `bytes`; `first_line` is the line starting at
/// `bytes.start`. The header is read for the layout and reported only from the first part.
pub(super) fn read_range<S: TradeSink>(
    path: &Path,
    bytes: Range<u64>,
    first_line: u64,
    sink: &mut S,
) -> Result<PartStats, FormatError> {
    read_range_with(path, bytes, first_line, sink, Lines::Plain)
}

pub(super) fn read_range_with<S: TradeSink>(
    path: &Path,
    bytes: Range<u64>,
    first_line: u64,
    sink: &mut S,
    lines: Lines,
) -> Result<PartStats, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    // The scanner reads in large blocks itself; a BufReader would only add a copy.
    let file = File::open(path).map_err(io_error)?;
    let mut scanner = CsvScanner::new(file);
    let mut stats = ReadStats::default();
    let first_part = bytes.start == 0;
    let layout = match read_header(&mut scanner, path, TRADE_COLUMNS).map_err(io_error)? {
        Ok(layout) => layout,
        Err(errors) => {
            if first_part {
                errors.into_iter().for_each(|e| sink.bad_row(e));
            }
            stats.bytes = scanner.bytes_read();
            return Ok(PartStats {
                stats,
                ends_at: None,
                complete: true,
            });
        }
    };
    if !first_part {
        if scanner.next_position().0 > bytes.start {
            // The part starts inside the header: not a split this reader can honour.
            return Ok(PartStats {
                stats,
                ends_at: None,
                complete: false,
            });
        }
        scanner.seek_to(bytes.start, first_line).map_err(io_error)?;
    }
    scanner.stop_at(bytes.end);
    read_records(path, &mut scanner, &layout, &mut stats, sink, lines).map_err(io_error)?;
    stats.bytes = scanner.bytes_read();
    Ok(PartStats {
        stats,
        ends_at: Some(scanner.next_position()),
        complete: true,
    })
}

fn read_records<S: TradeSink>(
    path: &Path,
    scanner: &mut CsvScanner<File>,
    layout: &Layout,
    stats: &mut ReadStats,
    sink: &mut S,
    lines: Lines,
) -> std::io::Result<()> {
    // Required columns are present once the header matched; `usize::MAX` marks the absent
    // optional column and reads as an empty field.
    let column = |k: usize| layout.index[k].unwrap_or(usize::MAX);
    let index = [
        column(TRADE_ID),
        column(BUSINESS_DATE),
        column(INSTRUMENT),
        column(BUYER),
        column(SELLER),
        column(PRICE),
        column(QUANTITY),
        column(EXECUTED_AT),
    ];
    // The columns in the order the reader wants them (the usual header): a row is its fields.
    let in_order = index == [0, 1, 2, 3, 4, 5, 6, 7];
    let mut dates = DateMemo::default();
    let mut keys = KeyCache::default();
    loop {
        if lines == Lines::Plain {
            let each = |line, fields: &[&str]| {
                stats.rows += 1;
                if fields.len() != layout.width {
                    let at = Location::new(path, line);
                    sink.bad_row(width_error(at, fields.len(), layout));
                    return;
                }
                let reordered;
                let row = match <&[&str; 8]>::try_from(fields) {
                    Ok(row) if in_order => row,
                    _ => {
                        reordered = index.map(|i| fields.get(i).copied().unwrap_or(""));
                        &reordered
                    }
                };
                decode_plain(row, &mut dates, &mut keys, path, line, sink);
            };
            if in_order {
                scanner.plain_rows::<8>(each);
            } else {
                scanner.plain_lines(layout.width, each);
            }
        }
        let line = match scanner.next_record()? {
            Scan::End => break,
            Scan::Malformed { line, reason } => {
                stats.rows += 1;
                sink.bad_row(RowError::new(Location::new(path, line), "", "", "", reason));
                continue;
            }
            Scan::Record(line) => line,
        };
        stats.rows += 1;
        if scanner.len() != layout.width {
            sink.bad_row(width_error(
                Location::new(path, line),
                scanner.len(),
                layout,
            ));
            continue;
        }
        match decode(scanner, &index, &mut dates, line, sink) {
            Ok(()) => {}
            Err((bad, trade_id)) => sink.bad_row(bad.into_row_error(path, line, &trade_id)),
        }
    }
    Ok(())
}

/// Decodes a plain line's fields, in the order of [`super::TRADE_COLUMN_NAMES`]. Its ids are
/// looked up in `keys` first; a row whose ids all are ids skips their syntax checks and brings
/// the sink its keys, and any other row gets [`decode_text`]'s checks and messages.
#[inline]
fn decode_plain<S: TradeSink>(
    row: &[&str; 8],
    dates: &mut DateMemo,
    keys: &mut KeyCache,
    path: &Path,
    line: u64,
    sink: &mut S,
) {
    let &[trade_id, _, instrument, buyer, seller, ..] = row;
    let known = (
        keys.key(KeyColumn::Instrument, instrument, sink),
        keys.key(KeyColumn::Member, buyer, sink),
        keys.key(KeyColumn::Member, seller, sink),
    );
    let (Some(instrument_key), Some(buyer_key), Some(seller_key)) = known else {
        if let Err(bad) = decode_text(row, dates, line, sink) {
            sink.bad_row(bad.into_row_error(path, line, trade_id));
        }
        return;
    };
    let decoded = checked_fields(row, dates, true);
    match (decoded, instrument_key, buyer_key, seller_key) {
        (Ok(fields), Some(instrument), Some(buyer), Some(seller)) => sink.trade_keyed(
            line,
            &fields,
            TradeKeys {
                instrument: Some(instrument),
                buyer: Some(buyer),
                seller: Some(seller),
            },
        ),
        // An id the sink does not know: it looks again and says so.
        (Ok(fields), ..) => sink.trade(line, &fields),
        (Err(bad), ..) => sink.bad_row(bad.into_row_error(path, line, trade_id)),
    }
}

/// Decodes the current record and hands it to the sink; on failure returns the problem and the
/// trade id text (for the message).
fn decode<R: std::io::Read, S: TradeSink>(
    scanner: &CsvScanner<R>,
    index: &[usize; 8],
    dates: &mut DateMemo,
    line: u64,
    sink: &mut S,
) -> Result<(), (Bad, String)> {
    let record = match scanner.record() {
        Ok(record) => record,
        Err(field) => {
            let k = index.iter().position(|&i| i == field).unwrap_or(TRADE_ID);
            let shown = scanner.field_str(field).err().unwrap_or_default();
            let trade_id = scanner.field_str(index[TRADE_ID]).unwrap_or("");
            return Err((Bad::new(k, &shown, UTF8_REASON), trade_id.to_owned()));
        }
    };
    let text = index.map(|i| record.get(i));
    decode_text(&text, dates, line, sink).map_err(|bad| (bad, text[TRADE_ID].to_owned()))
}

/// Checks and decodes a row's fields (in the order of [`super::TRADE_COLUMN_NAMES`]) and hands
/// it to the sink, or says what is wrong with it.
fn decode_text<S: TradeSink>(
    text: &[&str; 8],
    dates: &mut DateMemo,
    line: u64,
    sink: &mut S,
) -> Result<(), Bad> {
    let fields = checked_fields(text, dates, false)?;
    sink.trade(line, &fields);
    Ok(())
}

/// A row's fields checked and decoded; `ids_known_good` skips the syntax checks of instrument,
/// buyer and seller (see [`check_text_with`]), every other check runs in the same order.
#[inline]
fn checked_fields<'a>(
    row: &[&'a str; 8],
    dates: &mut DateMemo,
    ids_known_good: bool,
) -> Result<TradeFields<'a>, Bad> {
    let &[trade_id, business_date, instrument, buyer, seller, price, quantity, executed_at] = row;
    let executed_at = optional_text(executed_at);
    check_text_with(
        dates,
        trade_id,
        business_date,
        [instrument, buyer, seller],
        ids_known_good,
        executed_at,
    )?;
    Ok(TradeFields {
        trade_id,
        business_date,
        instrument,
        buyer,
        seller,
        price: price_from_text(price)?,
        quantity: quantity_from_text(quantity)?,
        executed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::count_newlines;

    proptest::proptest! {
        #[test]
        fn counts_line_ends_like_a_plain_count(
            bytes in proptest::collection::vec(proptest::sample::select(b"\n\nab".to_vec()), 0..2000),
        ) {
            let plain = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            proptest::prop_assert_eq!(count_newlines(&bytes), plain);
        }
    }

    #[test]
    fn counts_more_line_ends_than_a_byte_holds() {
        assert_eq!(count_newlines(&[b'\n'; 1000]), 1000);
    }
}
