//! A streaming RFC 4180 record scanner and the header matching every CSV reader shares.
//!
//! Hand-rolled rather than the `csv` crate because trade files are large and must be read at
//! memory speed: a line without a quote (nearly all of them) is split in place with `memchr`,
//! without copying; only a line with a quote takes the byte-by-byte path that unescapes into a
//! scratch buffer and may run over several physical lines. Line numbers are physical lines
//! (the header is line 1), and a record is numbered by the line it starts on.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;

use memchr::{memchr, memchr3, memchr_iter, memrchr};

use crate::fields::UTF8_REASON;
use crate::model::{Location, RowError};

const INITIAL_BUFFER: usize = 1 << 20;

/// A record longer than this is refused rather than buffered: a file without line ends (or
/// with an unclosed quote) must not exhaust memory.
const MAX_RECORD_BYTES: usize = 16 << 20;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What [`CsvScanner::next_record`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A record starting on this line; its fields are read with [`CsvScanner::field`].
    Record(u64),
    /// A record that breaks RFC 4180, starting on this line. Scanning resumes on the next line.
    Malformed {
        line: u64,
        reason: &'static str,
    },
    End,
}

pub(crate) struct CsvScanner<R> {
    src: R,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    /// End of the bytes read into `buf`.
    end: usize,
    eof: bool,
    started: bool,
    bytes_read: u64,
    /// The physical line the next record starts on.
    next_line: u64,
    /// Field byte ranges of the current record, in `buf` or in `scratch`.
    fields: Vec<(usize, usize)>,
    /// Where [`CsvScanner::plain_lines`] found commas and line ends (see [`find_stops`]).
    stops: Vec<u64>,
    scratch: Vec<u8>,
    in_scratch: bool,
    /// The current record's byte range in `buf` or `scratch`; its fields lie within.
    record: (usize, usize),
    /// The file offset of `buf[0]`.
    buf_offset: u64,
    /// No record starting at or after this file offset is read (a part of a file).
    stop_at: u64,
    /// How far [`CsvScanner::plain_lines`] has looked for a quote.
    quotes: QuoteSearch,
}

/// No quote in file offsets `from..to`, and one at `to` when `found`: a run of calls to
/// [`CsvScanner::plain_lines`] looks at each byte once, however many quoted or bad lines
/// interrupt it.
#[derive(Debug, Default, Clone, Copy)]
struct QuoteSearch {
    from: u64,
    to: u64,
    found: bool,
}

impl<R: Read + io::Seek> CsvScanner<R> {
    /// Continues at file offset `offset`, which must be the start of physical line `line`
    /// (after the header was read: no byte order mark is looked for there).
    pub(crate) fn seek_to(&mut self, offset: u64, line: u64) -> io::Result<()> {
        self.src.seek(io::SeekFrom::Start(offset))?;
        self.started = true;
        self.pos = 0;
        self.end = 0;
        self.eof = false;
        self.buf_offset = offset;
        self.next_line = line;
        self.fields.clear();
        self.quotes = QuoteSearch::default();
        Ok(())
    }
}

/// Outcome of scanning a record that contains a quote.
enum Quoted {
    Done {
        consumed: usize,
        newlines: u64,
    },
    Bad {
        consumed: usize,
        newlines: u64,
        reason: &'static str,
    },
    NeedMore,
}

impl<R: Read> CsvScanner<R> {
    pub(crate) fn new(src: R) -> CsvScanner<R> {
        CsvScanner {
            src,
            buf: vec![0; INITIAL_BUFFER],
            pos: 0,
            end: 0,
            eof: false,
            started: false,
            bytes_read: 0,
            next_line: 1,
            fields: Vec::with_capacity(16),
            stops: Vec::new(),
            scratch: Vec::new(),
            in_scratch: false,
            record: (0, 0),
            buf_offset: 0,
            stop_at: u64::MAX,
            quotes: QuoteSearch::default(),
        }
    }

    /// The file offset and physical line where the next record (or blank line) starts.
    pub(crate) fn next_position(&self) -> (u64, u64) {
        (self.buf_offset + self.pos as u64, self.next_line)
    }

    /// Records starting at or after file offset `offset` are not read: [`Self::next_record`]
    /// answers [`Scan::End`] there.
    pub(crate) fn stop_at(&mut self, offset: u64) {
        self.stop_at = offset;
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The number of fields of the current record.
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `i` of the current record, unescaped; empty when there is no such field.
    pub(crate) fn field(&self, i: usize) -> &[u8] {
        let Some(&(start, end)) = self.fields.get(i) else {
            return &[];
        };
        let base = if self.in_scratch {
            &self.scratch
        } else {
            &self.buf
        };
        base.get(start..end).unwrap_or(&[])
    }

    /// Field `i` as text; the error is the field's bytes shown lossily, for the message.
    pub(crate) fn field_str(&self, i: usize) -> Result<&str, String> {
        let bytes = self.field(i);
        std::str::from_utf8(bytes).map_err(|_| String::from_utf8_lossy(bytes).into_owned())
    }

    /// The current record as text, validated as UTF-8 once for all its fields (cheaper than
    /// field by field). `Err` holds the index of the first field that is not UTF-8.
    pub(crate) fn record(&self) -> Result<Record<'_>, usize> {
        let base = if self.in_scratch {
            &self.scratch
        } else {
            &self.buf
        };
        let (start, end) = self.record;
        let bytes = base.get(start..end).unwrap_or(&[]);
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Record {
                text,
                origin: start,
                fields: &self.fields,
            }),
            Err(_) => Err((0..self.fields.len())
                .find(|&i| std::str::from_utf8(self.field(i)).is_err())
                .unwrap_or(0)),
        }
    }

    /// Hands `each` the plain records now buffered, from the next record on: complete lines
    /// that start before the stop offset, hold no quote and are UTF-8 (nearly every line of a
    /// trade file). They are checked as UTF-8 together rather than one by one, and split in
    /// place; `each` gets a record's line number and its fields. Lines of `width` fields (the
    /// header's) take the fast path; any other line is handed over all the same. Blank lines
    /// are skipped as [`Self::next_record`] skips them. Returns at the first line it does not
    /// take (or the end of the buffered lines), having consumed only what it handed over:
    /// [`Self::next_record`] reads on from there, and the two may be called in turn.
    pub(crate) fn plain_lines(&mut self, width: usize, mut each: impl FnMut(u64, &[&str])) {
        self.read_plain(|lines, stop| lines.split(width, stop, &mut each));
    }

    /// [`Self::plain_lines`] for lines that nearly all have `N` fields (a trade file's rows):
    /// such a line is cut from the byte masks of a window at its start, with no stop array in
    /// between. `each` gets the same lines and fields either way.
    pub(crate) fn plain_rows<const N: usize>(&mut self, mut each: impl FnMut(u64, &[&str])) {
        self.read_plain(|lines, stop| lines.rows::<N>(stop, &mut each));
    }

    /// Runs `read` over the buffered plain lines from the next record on (see
    /// [`Self::plain_lines`]) with the offset in them where the part ends, and consumes what
    /// it handed over.
    fn read_plain(&mut self, read: impl FnOnce(&mut PlainLines<'_, '_>, usize)) {
        let start = self.buf_offset + self.pos as u64;
        if !self.started || start >= self.stop_at {
            return;
        }
        let data_end = self.buf_offset + self.end as u64;
        let q = &mut self.quotes;
        if !(q.from <= start && start <= q.to) {
            *q = QuoteSearch {
                from: start,
                to: start,
                found: false,
            };
        }
        if !q.found && q.to < data_end {
            // `q.to` lies in the buffer: `start <= q.to < data_end`.
            let from = (q.to - self.buf_offset) as usize;
            match memchr(b'"', &self.buf[from..self.end]) {
                Some(i) => {
                    q.to += i as u64;
                    q.found = true;
                }
                None => q.to = data_end,
            }
        }
        let quote_free_end = ((q.to - self.buf_offset) as usize).min(self.end);
        let Some(last_line_end) = memrchr(b'\n', &self.buf[self.pos..quote_free_end]) else {
            return;
        };
        let region = &self.buf[self.pos..=self.pos + last_line_end];
        let text = match crate::fields::text_of(region) {
            Ok(text) => text,
            // The lines before the first one with a byte that is not UTF-8.
            Err(e) => {
                let valid = &region[..e.valid_up_to()];
                let Some(line_end) = memrchr(b'\n', valid) else {
                    return;
                };
                match std::str::from_utf8(&valid[..=line_end]) {
                    Ok(text) => text,
                    Err(_) => return,
                }
            }
        };
        // Records starting at or after this offset in `text` belong to the next part.
        let stop = usize::try_from(self.stop_at - start).unwrap_or(usize::MAX);
        let mut lines = PlainLines {
            text,
            stops: &mut self.stops,
            line: self.next_line,
            consumed: 0,
        };
        read(&mut lines, stop);
        let (consumed, line) = (lines.consumed, lines.line);
        self.pos += consumed;
        self.next_line = line;
    }

    /// Advances to the next record. Blank lines are skipped; they carry no data.
    pub(crate) fn next_record(&mut self) -> io::Result<Scan> {
        if !self.started {
            self.start()?;
        }
        loop {
            if self.buf_offset + self.pos as u64 >= self.stop_at {
                return Ok(Scan::End);
            }
            if self.pos == self.end {
                if self.eof {
                    return Ok(Scan::End);
                }
                self.fill()?;
                continue;
            }
            let avail = &self.buf[self.pos..self.end];
            self.fields.clear();
            let plain = match split_line(avail, self.pos, &mut self.fields) {
                Split::Line(len) => Some((len, true)),
                Split::Incomplete(start) if self.eof => {
                    self.fields.push((start, self.end));
                    Some((avail.len(), false))
                }
                Split::Incomplete(_) => {
                    if let Some(scan) = self.refill_or_refuse()? {
                        return Ok(scan);
                    }
                    continue;
                }
                Split::Quote => None,
            };
            if let Some((line_len, terminated)) = plain {
                let consumed = line_len + usize::from(terminated);
                let mut content_end = self.pos + line_len;
                if avail[..line_len].ends_with(b"\r") {
                    content_end -= 1;
                    if let Some(last) = self.fields.last_mut() {
                        last.1 = content_end;
                    }
                }
                if content_end == self.pos {
                    self.pos += consumed;
                    self.next_line += 1;
                    continue;
                }
                self.record = (self.pos, content_end);
                self.in_scratch = false;
                self.pos += consumed;
                let line = self.next_line;
                self.next_line += 1;
                return Ok(Scan::Record(line));
            }
            match self.scan_quoted() {
                Quoted::Done { consumed, newlines } => {
                    self.in_scratch = true;
                    self.record = (0, self.scratch.len());
                    self.pos += consumed;
                    let line = self.next_line;
                    self.next_line += newlines.max(1);
                    return Ok(Scan::Record(line));
                }
                Quoted::Bad {
                    consumed,
                    newlines,
                    reason,
                } => {
                    self.fields.clear();
                    self.pos += consumed;
                    let line = self.next_line;
                    self.next_line += newlines.max(1);
                    return Ok(Scan::Malformed { line, reason });
                }
                Quoted::NeedMore => {
                    if let Some(scan) = self.refill_or_refuse()? {
                        return Ok(scan);
                    }
                }
            }
        }
    }

    /// Skips a UTF-8 byte order mark: spreadsheet programs write one, and it would otherwise
    /// become part of the first column's name.
    fn start(&mut self) -> io::Result<()> {
        self.started = true;
        while self.end < UTF8_BOM.len() && !self.eof {
            self.fill()?;
        }
        if self.buf[..self.end].starts_with(UTF8_BOM) {
            self.pos = UTF8_BOM.len();
        }
        Ok(())
    }

    /// Reads more input for an incomplete record, unless the record is already too long; then
    /// it is skipped up to the next line end and reported.
    fn refill_or_refuse(&mut self) -> io::Result<Option<Scan>> {
        if self.end - self.pos < MAX_RECORD_BYTES {
            self.fill()?;
            return Ok(None);
        }
        let line = self.next_line;
        loop {
            let avail = &self.buf[self.pos..self.end];
            if let Some(i) = memchr(b'\n', avail) {
                self.pos += i + 1;
                self.next_line += 1;
                break;
            }
            self.pos = self.end;
            if self.eof {
                break;
            }
            self.fill()?;
        }
        self.fields.clear();
        Ok(Some(Scan::Malformed {
            line,
            reason: "record is longer than 16 MiB (a missing line end or an unclosed quote?)",
        }))
    }

    /// Moves the unconsumed bytes to the front, grows the buffer when a record fills it, and
    /// reads once.
    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Scans a record that contains a quote, per RFC 4180: a field that starts with `"` runs
    /// to the matching `"`, may hold commas and line ends, and writes `""` for `"`.
    fn scan_quoted(&mut self) -> Quoted {
        let data = &self.buf[self.pos..self.end];
        let eof = self.eof;
        self.scratch.clear();
        self.fields.clear();
        let mut i = 0;
        let mut newlines = 0u64;
        // Where a refused record ends: after the physical line the fault is on.
        let bad = |at: usize, newlines: u64, reason: &'static str| match memchr(b'\n', &data[at..])
        {
            Some(n) => Quoted::Bad {
                consumed: at + n + 1,
                newlines: newlines + 1,
                reason,
            },
            None if eof => Quoted::Bad {
                consumed: data.len(),
                newlines,
                reason,
            },
            None => Quoted::NeedMore,
        };
        loop {
            let start = self.scratch.len();
            if data.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    let Some(q) = memchr(b'"', &data[i..]) else {
                        if !eof {
                            return Quoted::NeedMore;
                        }
                        return Quoted::Bad {
                            consumed: data.len(),
                            newlines: newlines + count_newlines(&data[i..]),
                            reason: "a quoted field is not closed before the end of the file",
                        };
                    };
                    let segment = &data[i..i + q];
                    newlines += count_newlines(segment);
                    self.scratch.extend_from_slice(segment);
                    i += q + 1;
                    match data.get(i) {
                        Some(b'"') => {
                            self.scratch.push(b'"');
                            i += 1;
                        }
                        Some(b',') => {
                            self.fields.push((start, self.scratch.len()));
                            i += 1;
                            break;
                        }
                        Some(b'\n') => {
                            self.fields.push((start, self.scratch.len()));
                            return Quoted::Done {
                                consumed: i + 1,
                                newlines: newlines + 1,
                            };
                        }
                        Some(b'\r') if data.get(i + 1) == Some(&b'\n') => {
                            self.fields.push((start, self.scratch.len()));
                            return Quoted::Done {
                                consumed: i + 2,
                                newlines: newlines + 1,
                            };
                        }
                        Some(b'\r') if i + 1 == data.len() => {
                            if !eof {
                                return Quoted::NeedMore;
                            }
                            self.fields.push((start, self.scratch.len()));
                            return Quoted::Done {
                                consumed: data.len(),
                                newlines,
                            };
                        }
                        None => {
                            if !eof {
                                return Quoted::NeedMore;
                            }
                            self.fields.push((start, self.scratch.len()));
                            return Quoted::Done {
                                consumed: i,
                                newlines,
                            };
                        }
                        Some(_) => {
                            return bad(
                                i,
                                newlines,
                                "a closing quote must be followed by a comma or the line end",
                            )
                        }
                    }
                }
            } else {
                match memchr3(b',', b'\n', b'"', &data[i..]) {
                    Some(n) if data[i + n] == b',' => {
                        self.scratch.extend_from_slice(&data[i..i + n]);
                        self.fields.push((start, self.scratch.len()));
                        i += n + 1;
                    }
                    Some(n) if data[i + n] == b'\n' => {
                        self.scratch
                            .extend_from_slice(strip_cr(&data[i..i + n]));
                        self.fields.push((start, self.scratch.len()));
                        return Quoted::Done {
                            consumed: i + n + 1,
                            newlines: newlines + 1,
                        };
                    }
                    Some(n) => {
                        return bad(
                            i + n,
                            newlines,
                            "a quote inside an unquoted field (quote the whole field and double the quote)",
                        )
                    }
                    None if eof => {
                        self.scratch.extend_from_slice(strip_cr(&data[i..]));
                        self.fields.push((start, self.scratch.len()));
                        return Quoted::Done {
                            consumed: data.len(),
                            newlines,
                        };
                    }
                    None => return Quoted::NeedMore,
                }
            }
        }
    }
}

/// A record whose bytes are known to be UTF-8.
pub(crate) struct Record<'a> {
    text: &'a str,
    origin: usize,
    fields: &'a [(usize, usize)],
}

impl<'a> Record<'a> {
    /// Field `i`; empty when there is no such field. Fields split at ASCII commas, which are
    /// always character boundaries, so the slice never fails in practice.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &'a str {
        self.fields
            .get(i)
            .and_then(|&(s, e)| {
                self.text
                    .get(s.checked_sub(self.origin)?..e.checked_sub(self.origin)?)
            })
            .unwrap_or("")
    }
}

/// Set on a stop that is a line end; the rest of the word is the stop's offset in its chunk.
const LINE_END: u64 = 1 << 63;

/// Text whose stops are found in one pass and then walked line by line, so the stop array is
/// still in the first-level cache when the lines are cut.
const STOP_CHUNK_BYTES: usize = 16 << 10;

/// Lines of at most this many fields are cut into an array on the stack.
const STACK_FIELDS: usize = 16;

/// The bytes [`PlainLines::rows`] looks at from a line's start for its commas and end: a
/// trade row is about 80.
const ROW_WINDOW: usize = 128;

/// Whole lines without a quote, cut into fields in two passes per chunk: every comma and line
/// end is found sixty-four bytes at a time and written to `stops` without a branch per stop,
/// then the lines are read off the stops. A line of the expected width is recognised by
/// looking at its last stop, so a file of equal lines costs no unpredictable branch.
struct PlainLines<'t, 's> {
    /// Complete lines (the last byte is a line end) holding no quote.
    text: &'t str,
    stops: &'s mut Vec<u64>,
    /// The physical line of the next line in `text`.
    line: u64,
    /// The bytes of `text` handed over (whole lines, blank ones included).
    consumed: usize,
}

impl<'t> PlainLines<'t, '_> {
    /// Hands `each` the lines that start before offset `stop`; see [`CsvScanner::plain_lines`].
    fn split(&mut self, width: usize, stop: usize, each: &mut impl FnMut(u64, &[&str])) {
        let text = self.text;
        let bytes = text.as_bytes();
        let mut row: [&'t str; STACK_FIELDS] = [""; STACK_FIELDS];
        let mut wide: Vec<&'t str> = Vec::new();
        let mut chunk_start = 0;
        while chunk_start < bytes.len() {
            let chunk_end = stop_chunk_end(bytes, chunk_start);
            let n = find_stops(&bytes[chunk_start..chunk_end], self.stops);
            let stops = &self.stops[..n];
            let at_of = |s: u64| chunk_start + (s & !LINE_END) as usize;
            let (mut p, mut line_start) = (0, chunk_start);
            while p < n {
                let expected = width > 0
                    && stops.get(p..p + width).is_some_and(|w| {
                        let (&last, inner) = w.split_last().unwrap_or((&0, &[]));
                        last & LINE_END != 0 && inner.iter().fold(0, |a, &s| a | s) & LINE_END == 0
                    });
                let q = if expected {
                    p + width
                } else {
                    let rest = &stops[p..];
                    p + rest
                        .iter()
                        .position(|&s| s & LINE_END != 0)
                        .map_or(rest.len(), |i| i + 1)
                };
                let line_stops = &stops[p..q];
                p = q;
                let Some((&last, commas)) = line_stops.split_last() else {
                    break;
                };
                let at = at_of(last);
                let content_end = if at > line_start && bytes[at - 1] == b'\r' {
                    at - 1
                } else {
                    at
                };
                if content_end > line_start {
                    let cut = LineFields {
                        text,
                        chunk_start,
                        field_start: line_start,
                        commas: commas.iter(),
                        content_end: Some(content_end),
                    };
                    let fields: &[&str] = if line_stops.len() <= STACK_FIELDS {
                        for (slot, field) in row.iter_mut().zip(cut) {
                            *slot = field;
                        }
                        &row[..line_stops.len()]
                    } else {
                        wide.clear();
                        wide.extend(cut);
                        &wide
                    };
                    each(self.line, fields);
                }
                self.line += 1;
                line_start = at + 1;
                self.consumed = line_start;
                if line_start >= stop {
                    return;
                }
            }
            chunk_start = chunk_end;
        }
    }
}

impl<'t> PlainLines<'t, '_> {
    /// Hands `each` the lines that start before offset `stop`, those of `N` fields cut the
    /// quick way; see [`CsvScanner::plain_rows`].
    fn rows<const N: usize>(&mut self, stop: usize, each: &mut impl FnMut(u64, &[&str])) {
        match ScanBuild::of_this_processor() {
            // SAFETY: `of_this_processor` found POPCNT, BMI1 and AVX2.
            #[cfg(target_arch = "x86_64")]
            ScanBuild::Avx2 => unsafe { self.rows_avx2::<N>(stop, each) },
            // SAFETY: `of_this_processor` found POPCNT and BMI1.
            #[cfg(target_arch = "x86_64")]
            ScanBuild::PopcntBmi1 => unsafe { self.rows_popcnt_bmi1::<N>(stop, each) },
            _ => self.rows_with::<N>(stop, each, sse2_masks),
        }
    }

    /// [`Self::rows_with`] with AVX2 masks, POPCNT counts and BMI1 bit scans.
    ///
    /// # Safety
    /// The processor must have POPCNT, BMI1 and AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,bmi1,avx2")]
    unsafe fn rows_avx2<const N: usize>(
        &mut self,
        stop: usize,
        each: &mut impl FnMut(u64, &[&str]),
    ) {
        // The closure inherits this function's features, so the call is safe and inlined.
        self.rows_with::<N>(stop, each, |block: &[u8; 64]| avx2_masks(block));
    }

    /// [`Self::rows_with`] with POPCNT counts and BMI1 bit scans.
    ///
    /// # Safety
    /// The processor must have POPCNT and BMI1.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,bmi1")]
    unsafe fn rows_popcnt_bmi1<const N: usize>(
        &mut self,
        stop: usize,
        each: &mut impl FnMut(u64, &[&str]),
    ) {
        self.rows_with::<N>(stop, each, sse2_masks);
    }

    /// A line is cut from the masks of the [`ROW_WINDOW`] bytes at its start: its end is the
    /// window's first line end, and when exactly `N - 1` commas come before it they are its
    /// field ends, taken off the mask lowest bit first. So a row costs a few compares and bit
    /// scans, with no stop written to memory and read back. A line longer than the window,
    /// of another width, or too near the end of the text to have a whole window goes through
    /// [`Self::split`], which cuts every line alike (tests compare the two).
    #[inline(always)]
    fn rows_with<const N: usize>(
        &mut self,
        stop: usize,
        each: &mut impl FnMut(u64, &[&str]),
        masks: impl Fn(&[u8; 64]) -> (u64, u64),
    ) {
        const { assert!(N >= 2, "a row has a comma") };
        let text = self.text;
        let bytes = text.as_bytes();
        let mut at = self.consumed;
        while at < stop {
            let Some(window) = bytes.get(at..at + ROW_WINDOW) else {
                break;
            };
            let (low, high) = window.split_at(64);
            let (low_stops, low_ends) = masks(low.try_into().unwrap_or(&[0; 64]));
            let (high_stops, high_ends) = masks(high.try_into().unwrap_or(&[0; 64]));
            let ends = u128::from(low_ends) | u128::from(high_ends) << 64;
            let stops = u128::from(low_stops) | u128::from(high_stops) << 64;
            let end = ends.trailing_zeros() as usize;
            // The stops before the first line end (all of them when there is none).
            let mut commas = stops & (ends & ends.wrapping_neg()).wrapping_sub(1);
            let line_end = if end < ROW_WINDOW && commas.count_ones() as usize + 1 == N {
                let line_end = at + end;
                let mut fields = [""; N];
                let low = commas as u64;
                let start = if low.count_ones() as usize + 1 == N {
                    // Every comma in the first 64 bytes (a trade row's are): one word to scan.
                    let mut low = low;
                    cut_before(text, at, &mut fields, || {
                        let comma = low.trailing_zeros() as usize;
                        low &= low.wrapping_sub(1);
                        comma
                    })
                } else {
                    cut_before(text, at, &mut fields, || {
                        let comma = commas.trailing_zeros() as usize;
                        commas &= commas.wrapping_sub(1);
                        comma
                    })
                };
                // A comma precedes the line end, so there is a byte before it.
                let content_end = if bytes[line_end - 1] == b'\r' {
                    line_end - 1
                } else {
                    line_end
                };
                fields[N - 1] = cut(text, start, content_end);
                each(self.line, &fields);
                line_end
            } else {
                // `text` ends with a line end.
                let line_end = memchr(b'\n', &bytes[at..]).map_or(bytes.len() - 1, |i| at + i);
                let mut one = PlainLines {
                    text: &text[at..=line_end],
                    stops: self.stops,
                    line: self.line,
                    consumed: 0,
                };
                one.split(N, usize::MAX, each);
                line_end
            };
            self.line += 1;
            at = line_end + 1;
            self.consumed = at;
        }
        if at < stop && at < bytes.len() {
            let mut tail = PlainLines {
                text: &text[at..],
                stops: self.stops,
                line: self.line,
                consumed: 0,
            };
            tail.split(N, stop - at, each);
            self.line = tail.line;
            self.consumed = at + tail.consumed;
        }
    }
}

/// Cuts all but the last of `fields` off the line at `at` in `text`, up to each comma that
/// `next_comma` gives (offsets from `at`, in order); returns where the last field starts.
#[inline(always)]
fn cut_before<'t, const N: usize>(
    text: &'t str,
    at: usize,
    fields: &mut [&'t str; N],
    mut next_comma: impl FnMut() -> usize,
) -> usize {
    let mut start = at;
    for field in &mut fields[..N - 1] {
        let comma = at + next_comma();
        *field = cut(text, start, comma);
        start = comma + 1;
    }
    start
}

/// The fields of one line, cut off the stop array: up to each comma, then up to the end of
/// the line's content (before any CR).
struct LineFields<'t, 'a> {
    text: &'t str,
    /// Where the stops' chunk starts in `text`.
    chunk_start: usize,
    field_start: usize,
    commas: std::slice::Iter<'a, u64>,
    /// `None` once the last field is cut.
    content_end: Option<usize>,
}

impl<'t> Iterator for LineFields<'t, '_> {
    type Item = &'t str;

    #[inline(always)]
    fn next(&mut self) -> Option<&'t str> {
        let start = self.field_start;
        let end = match self.commas.next() {
            // Offsets within the text: neither sum can overflow.
            Some(&comma) => self.chunk_start.wrapping_add((comma & !LINE_END) as usize),
            None => self.content_end.take()?,
        };
        self.field_start = end.wrapping_add(1);
        Some(cut(self.text, start, end))
    }
}

/// Where the chunk of `bytes` starting at `start` ends: after the last line end within
/// [`STOP_CHUNK_BYTES`], or after the first one beyond when a line is longer (`bytes` ends
/// with a line end).
fn stop_chunk_end(bytes: &[u8], start: usize) -> usize {
    let soft_end = start + STOP_CHUNK_BYTES;
    if soft_end >= bytes.len() {
        return bytes.len();
    }
    match memrchr(b'\n', &bytes[start..soft_end]) {
        Some(i) => start + i + 1,
        None => memchr(b'\n', &bytes[soft_end..]).map_or(bytes.len(), |i| soft_end + i + 1),
    }
}

/// Writes the offset of every comma and line end in `chunk` to `stops` (line ends marked with
/// [`LINE_END`]), in order, and returns how many there are. Eight slots are written per round
/// whether or not a block has that many stops (the extra ones are overwritten or past the
/// count), so the loop branches once per block rather than once per stop.
fn find_stops(chunk: &[u8], stops: &mut Vec<u64>) -> usize {
    match ScanBuild::of_this_processor() {
        // SAFETY: `of_this_processor` found POPCNT, BMI1 and AVX2.
        #[cfg(target_arch = "x86_64")]
        ScanBuild::Avx2 => unsafe { find_stops_avx2(chunk, stops) },
        // SAFETY: `of_this_processor` found POPCNT and BMI1.
        #[cfg(target_arch = "x86_64")]
        ScanBuild::PopcntBmi1 => unsafe { find_stops_popcnt_bmi1(chunk, stops) },
        _ => find_stops_in(chunk, stops, sse2_masks),
    }
}

/// Which build of the block scans ([`find_stops`], [`PlainLines::rows`]) this processor
/// runs: each is compiled three times, and the choice is made in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum ScanBuild {
    /// The target's baseline (SSE2 on x86_64).
    Baseline,
    /// POPCNT and BMI1: a block's stop count and each stop's position in one instruction.
    PopcntBmi1,
    /// POPCNT, BMI1 and AVX2: also thirty-two bytes per compare.
    Avx2,
}

impl ScanBuild {
    /// The best build this processor has (std caches the feature tests, so this is cheap
    /// enough for once per chunk or region).
    #[inline]
    fn of_this_processor() -> ScanBuild {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("bmi1")
        {
            return if std::arch::is_x86_feature_detected!("avx2") {
                ScanBuild::Avx2
            } else {
                ScanBuild::PopcntBmi1
            };
        }
        ScanBuild::Baseline
    }
}

/// [`find_stops_popcnt_bmi1`] that also finds a block's stops 32 bytes per compare (AVX2):
/// half the compares and mask moves of SSE2.
///
/// # Safety
/// The processor must have POPCNT, BMI1 and AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,bmi1,avx2")]
unsafe fn find_stops_avx2(chunk: &[u8], stops: &mut Vec<u64>) -> usize {
    // The closure inherits this function's features, so the call is safe and inlined.
    find_stops_in(chunk, stops, |block: &[u8; 64]| avx2_masks(block))
}

/// [`find_stops`] compiled for processors with POPCNT and BMI1: a block's count of stops and
/// each stop's position are then one instruction each, not about a dozen and three (the
/// baseline x86-64 build has neither; callgrind counted them a twelfth of the CSV decode).
///
/// # Safety
/// The processor must have POPCNT and BMI1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,bmi1")]
unsafe fn find_stops_popcnt_bmi1(chunk: &[u8], stops: &mut Vec<u64>) -> usize {
    find_stops_in(chunk, stops, sse2_masks)
}

/// `masks` gives a block's stops (commas and line ends) and its line ends, a bit per byte.
#[inline(always)]
fn find_stops_in(
    chunk: &[u8],
    stops: &mut Vec<u64>,
    masks: impl Fn(&[u8; 64]) -> (u64, u64),
) -> usize {
    // A block's rounds write at most seven slots past its last stop.
    let needed = chunk.len() + 8;
    if stops.len() < needed {
        stops.resize(needed, 0);
    }
    let mut count = 0;
    let mut tail = [0u8; 64];
    for block_start in (0..chunk.len()).step_by(64) {
        let block: &[u8; 64] = match chunk.get(block_start..block_start + 64) {
            Some(block) => block.try_into().unwrap_or(&tail),
            None => {
                let rest = &chunk[block_start..];
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            }
        };
        let (mut mask, line_ends) = masks(block);
        let in_block = mask.count_ones() as usize;
        let mut written = 0;
        while written < in_block {
            let at = count + written;
            for slot in &mut stops[at..at + 8] {
                // An empty mask gives bit 64: a slot past the count, never read.
                let bit = mask.trailing_zeros();
                let end = (line_ends.wrapping_shr(bit) & 1) << 63;
                *slot = (block_start as u64).wrapping_add(u64::from(bit)) | end;
                mask &= mask.wrapping_sub(1);
            }
            written += 8;
        }
        count += in_block;
    }
    count
}

/// `text[start..end]` where `start` and `end` are offsets just before or after ASCII bytes of
/// `text` (a comma, a line end, a carriage return) or its ends, so on char boundaries.
/// The checked `get` tested both ends for a boundary on every field: a fifth of the
/// splitting's time.
#[inline(always)]
fn cut(text: &str, start: usize, end: usize) -> &str {
    debug_assert!(start <= end && text.is_char_boundary(start) && text.is_char_boundary(end));
    // SAFETY: the callers are `LineFields` (made only by `PlainLines::split`) and
    // `PlainLines::rows_with` (through `cut_before`). Both pass `start <= end <= text.len()`,
    // each next to an ASCII byte found in `text` (a comma or line end from the byte masks, a
    // CR) or at an end of it: a field starts at a line start or after a comma and ends at the
    // next comma, or at the line end or the CR before it, which comes after the line's last
    // comma. An ASCII byte is a whole character, so both are char boundaries.
    unsafe { text.get_unchecked(start..end) }
}

/// A block's stops and line ends by [`eq_mask`].
#[inline(always)]
fn sse2_masks(block: &[u8; 64]) -> (u64, u64) {
    let line_ends = eq_mask(block, b'\n');
    (eq_mask(block, b',') | line_ends, line_ends)
}

/// [`sse2_masks`] in AVX2: thirty-two bytes per compare and mask move.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn avx2_masks(block: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    // SAFETY: both unaligned loads read 32 of the block's 64 bytes.
    let (low, high) = unsafe {
        (
            _mm256_loadu_si256(block.as_ptr().cast()),
            _mm256_loadu_si256(block.as_ptr().add(32).cast()),
        )
    };
    let mask = |byte: u8| {
        let needle = _mm256_set1_epi8(byte as i8);
        let low = _mm256_movemask_epi8(_mm256_cmpeq_epi8(low, needle)) as u32;
        let high = _mm256_movemask_epi8(_mm256_cmpeq_epi8(high, needle)) as u32;
        u64::from(low) | u64::from(high) << 32
    };
    let line_ends = mask(b'\n');
    (mask(b',') | line_ends, line_ends)
}

/// Bit `i` set where `block[i] == byte`: sixteen bytes per compare and mask move.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn eq_mask(block: &[u8; 64], byte: u8) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    let word = |at: usize| i64::from_le_bytes(block[at..at + 8].try_into().unwrap_or_default());
    // SAFETY: SSE2 is part of every x86_64 processor (the target's baseline), and these
    // intrinsics work on values only, touching no memory.
    unsafe {
        let needle = _mm_set1_epi8(byte as i8);
        (0..4).fold(0u64, |mask, k| {
            let lanes = _mm_set_epi64x(word(16 * k + 8), word(16 * k));
            let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(lanes, needle)) as u16;
            mask | (u64::from(hits) << (16 * k))
        })
    }
}

/// Bit `i` set where `block[i] == byte`.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn eq_mask(block: &[u8; 64], byte: u8) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0u64, |mask, (i, &b)| mask | (u64::from(b == byte) << i))
}

#[cfg(test)]
#[test]
fn stops_are_found_alike_by_either_build() {
    for len in [0, 1, 7, 63, 64, 65, 127, 128, 200, 1000] {
        let chunk: Vec<u8> = (0..len)
            .map(|i| [b',', b'a', b'\n', b'b', b'c'][(i * 7 + i / 3) % 5])
            .collect();
        let want: Vec<u64> = chunk
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == b',' || c == b'\n')
            .map(|(i, &c)| i as u64 | if c == b'\n' { LINE_END } else { 0 })
            .collect();
        let (mut dispatched, mut baseline) = (Vec::new(), Vec::new());
        let n = find_stops(&chunk, &mut dispatched);
        let m = find_stops_in(&chunk, &mut baseline, sse2_masks);
        assert_eq!(dispatched[..n], want[..], "{len}");
        assert_eq!(baseline[..m], want[..], "{len}");
        #[cfg(target_arch = "x86_64")]
        if ScanBuild::of_this_processor() != ScanBuild::Baseline {
            let avx2 = ScanBuild::of_this_processor() == ScanBuild::Avx2;
            for with_avx2 in [false, true].into_iter().filter(|&w| !w || avx2) {
                let mut built = Vec::new();
                // SAFETY: the features each build needs were just checked.
                let k = unsafe {
                    if with_avx2 {
                        find_stops_avx2(&chunk, &mut built)
                    } else {
                        find_stops_popcnt_bmi1(&chunk, &mut built)
                    }
                };
                assert_eq!(built[..k], want[..], "{len}, avx2 {with_avx2}");
            }
        }
    }
}

#[cfg(test)]
#[test]
fn eq_mask_marks_every_equal_byte() {
    let block: [u8; 64] = std::array::from_fn(|i| [b',', b'a', b'\n', 0xFF][(i * 7 + i / 5) % 4]);
    for byte in [b',', b'\n', 0xFF, b'x'] {
        let want = (0..64).fold(0u64, |m, i| m | (u64::from(block[i] == byte) << i));
        assert_eq!(eq_mask(&block, byte), want);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: this processor has AVX2, as just checked.
        assert_eq!(unsafe { avx2_masks(&block) }, sse2_masks(&block));
    }
}

enum Split {
    /// A line of this many bytes (without the `\n`), split into fields.
    Line(usize),
    /// The line holds a quote before its end: it needs the RFC 4180 path.
    Quote,
    /// No line end in the data; the last field starts at this absolute position.
    Incomplete(usize),
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// Bit 7 of each byte of `word` that equals `byte`, exactly (no carries between bytes, unlike
/// the shorter has-zero-byte trick).
#[inline(always)]
fn byte_mask(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    !((((x & LOW7).wrapping_add(LOW7)) | x) | LOW7)
}

/// Splits one line at its commas in a single pass, eight bytes at a time: commas, quotes and
/// the line end are found together, so a typical trade line costs one scan and no calls.
/// Field ranges are pushed as absolute positions (`base` + offset).
#[inline]
fn split_line(data: &[u8], base: usize, fields: &mut Vec<(usize, usize)>) -> Split {
    let mut start = base;
    let mut i = 0;
    while let Some(chunk) = data.get(i..i + 8) {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        let stops = byte_mask(word, b'\n') | byte_mask(word, b'"');
        let mut commas = byte_mask(word, b',');
        if stops != 0 {
            // Only the commas before the first stop belong to this line.
            commas &= stops ^ (stops - 1);
        }
        while commas != 0 {
            let at = base + i + (commas.trailing_zeros() / 8) as usize;
            fields.push((start, at));
            start = at + 1;
            commas &= commas - 1;
        }
        if stops != 0 {
            let at = i + (stops.trailing_zeros() / 8) as usize;
            if data.get(at) == Some(&b'\n') {
                fields.push((start, base + at));
                return Split::Line(at);
            }
            return Split::Quote;
        }
        i += 8;
    }
    for (j, &b) in data.get(i..).unwrap_or(&[]).iter().enumerate() {
        match b {
            b',' => {
                fields.push((start, base + i + j));
                start = base + i + j + 1;
            }
            b'\n' => {
                fields.push((start, base + i + j));
                return Split::Line(i + j);
            }
            b'"' => return Split::Quote,
            _ => {}
        }
    }
    Split::Incomplete(start)
}

fn strip_cr(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr_iter(b'\n', bytes).count() as u64
}

/// Where each known column sits in a file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Per known column (in the order the reader declared them), its field index.
    pub index: Vec<Option<usize>>,
    /// Number of fields in the header, which every row must have.
    pub width: usize,
    /// The header's line (1 unless blank lines precede it).
    pub line: u64,
}

/// A column a reader knows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub required: bool,
}

pub(crate) const fn required(name: &'static str) -> Column {
    Column {
        name,
        required: true,
    }
}

pub(crate) const fn optional(name: &'static str) -> Column {
    Column {
        name,
        required: false,
    }
}

/// Reads the header row and matches it against the known columns, reporting every problem:
/// an empty file, unknown, duplicate and missing columns.
pub(crate) fn read_header<R: Read>(
    scanner: &mut CsvScanner<R>,
    path: &Path,
    known: &[Column],
) -> io::Result<Result<Layout, Vec<RowError>>> {
    let expected = || known.iter().map(|c| c.name).collect::<Vec<_>>().join(",");
    let line = match scanner.next_record()? {
        Scan::End => {
            return Ok(Err(vec![RowError::new(
                Location::new(path, 1),
                "",
                "",
                "",
                format!("file is empty: a header row {} is expected", expected()),
            )]))
        }
        Scan::Malformed { line, reason } => {
            return Ok(Err(vec![RowError::new(
                Location::new(path, line),
                "",
                "",
                "",
                format!("header row: {reason}"),
            )]))
        }
        Scan::Record(line) => line,
    };
    let at = Location::new(path, line);
    let mut errors = Vec::new();
    let mut index = vec![None; known.len()];
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for i in 0..scanner.len() {
        let name = match scanner.field_str(i) {
            Ok(name) => name,
            Err(shown) => {
                errors.push(RowError::new(
                    at.clone(),
                    "",
                    format!("header field {}", i + 1),
                    &shown,
                    UTF8_REASON,
                ));
                continue;
            }
        };
        if let Some(&first) = seen.get(name) {
            errors.push(RowError::new(
                at.clone(),
                "",
                name,
                "",
                format!(
                    "appears twice in the header (header fields {} and {})",
                    first + 1,
                    i + 1
                ),
            ));
            continue;
        }
        seen.insert(name, i);
        match known.iter().position(|c| c.name == name) {
            Some(k) => index[k] = Some(i),
            None => errors.push(RowError::new(
                at.clone(),
                "",
                name,
                "",
                format!("is not a known column (expected {})", expected()),
            )),
        }
    }
    for (k, column) in known.iter().enumerate() {
        if column.required && index[k].is_none() {
            errors.push(RowError::new(
                at.clone(),
                "",
                column.name,
                "",
                "is missing from the header",
            ));
        }
    }
    if errors.is_empty() {
        Ok(Ok(Layout {
            index,
            width: scanner.len(),
            line,
        }))
    } else {
        Ok(Err(errors))
    }
}

/// The whole-row error for a record whose field count differs from the header's.
pub(crate) fn width_error(at: Location, found: usize, layout: &Layout) -> RowError {
    RowError::new(
        at,
        "",
        "",
        "",
        format!(
            "row has {found} fields, the header (line {}) has {}",
            layout.line, layout.width
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the records of `input`, splitting the source into `chunk`-byte reads so that
    /// records straddle buffer refills.
    /// A record's line and fields, or a malformed record's line and reason.
    type Scanned = Result<(u64, Vec<String>), (u64, String)>;

    fn scan(input: &[u8], chunk: usize) -> Vec<Scanned> {
        scan_with(input, chunk, None)
    }

    /// [`scan`], taking every plain line [`CsvScanner::plain_lines`] offers between records,
    /// expecting lines of `width` fields.
    fn scan_plain_first(input: &[u8], chunk: usize, width: usize) -> Vec<Scanned> {
        scan_with(input, chunk, Some(Plain::Lines(width)))
    }

    /// [`scan`], taking every plain line [`CsvScanner::plain_rows`] offers between records,
    /// expecting lines of `n` fields (2, 3, 4 or 8).
    fn scan_rows_first(input: &[u8], chunk: usize, n: usize) -> Vec<Scanned> {
        scan_with(input, chunk, Some(Plain::Rows(n)))
    }

    #[derive(Clone, Copy)]
    enum Plain {
        Lines(usize),
        Rows(usize),
    }

    fn scan_with(input: &[u8], chunk: usize, plain: Option<Plain>) -> Vec<Scanned> {
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut scanner = CsvScanner::new(Chunked(input, chunk));
        let mut out = Vec::new();
        loop {
            let each = |line, fields: &[&str]| {
                let field = |s: &&str| s.to_string();
                out.push(Ok((line, fields.iter().map(field).collect())));
            };
            match plain {
                None => {}
                Some(Plain::Lines(width)) => scanner.plain_lines(width, each),
                Some(Plain::Rows(2)) => scanner.plain_rows::<2>(each),
                Some(Plain::Rows(3)) => scanner.plain_rows::<3>(each),
                Some(Plain::Rows(4)) => scanner.plain_rows::<4>(each),
                Some(Plain::Rows(8)) => scanner.plain_rows::<8>(each),
                Some(Plain::Rows(n)) => panic!("no plain_rows::<{n}> here"),
            }
            match scanner.next_record().unwrap() {
                Scan::End => break,
                Scan::Malformed { line, reason } => out.push(Err((line, reason.to_owned()))),
                Scan::Record(line) => out.push(Ok((
                    line,
                    (0..scanner.len())
                        .map(|i| String::from_utf8_lossy(scanner.field(i)).into_owned())
                        .collect(),
                ))),
            }
        }
        assert_eq!(scanner.bytes_read(), input.len() as u64);
        out
    }

    fn rec(line: u64, fields: &[&str]) -> Scanned {
        Ok((line, fields.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn splits_plain_and_quoted_records_with_physical_lines() {
        let input =
            b"\xEF\xBB\xBFa,b,c\r\n1,\"x, \"\"y\"\"\",3\r\n\r\n\"multi\nline\",,\"\"\n4,5,6";
        for chunk in [1, 2, 3, 7, 1 << 20] {
            assert_eq!(
                scan(input, chunk),
                vec![
                    rec(1, &["a", "b", "c"]),
                    rec(2, &["1", "x, \"y\"", "3"]),
                    rec(4, &["multi\nline", "", ""]),
                    rec(6, &["4", "5", "6"]),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn malformed_quotes_are_reported_and_scanning_resumes() {
        let input = b"a,b\n1,x\"y\n\"2\"z,3\n4,5\n\"open,6\n7,8\n";
        for chunk in [1, 5, 1 << 20] {
            let got = scan(input, chunk);
            assert_eq!(got[0], rec(1, &["a", "b"]));
            assert!(matches!(&got[1], Err((2, r)) if r.contains("quote inside")));
            assert!(matches!(&got[2], Err((3, r)) if r.contains("closing quote")));
            assert_eq!(got[3], rec(4, &["4", "5"]));
            assert!(matches!(&got[4], Err((5, r)) if r.contains("not closed")));
            assert_eq!(got.len(), 5);
        }
    }

    #[test]
    fn trailing_quote_and_cr_at_end_of_file() {
        assert_eq!(scan(b"\"a\"\r", 1), vec![rec(1, &["a"])]);
        assert_eq!(scan(b"a,\"b\"", 2), vec![rec(1, &["a", "b"])]);
        assert_eq!(scan(b"a,b\r", 1), vec![rec(1, &["a", "b"])]);
        assert_eq!(scan(b"", 1), vec![]);
        assert_eq!(scan(b"\xEF\xBB", 1), vec![rec(1, &["\u{FFFD}"])]);
    }

    proptest::proptest! {
        #[test]
        fn unquoted_input_splits_like_lines_and_commas(
            text in "[ab,\r\n]{0,80}",
            chunk in 1usize..20,
        ) {
            let expected: Vec<_> = text
                .split('\n')
                .enumerate()
                .map(|(i, l)| (i as u64 + 1, l.strip_suffix('\r').unwrap_or(l)))
                .filter(|(_, l)| !l.is_empty())
                .map(|(i, l)| rec(i, &l.split(',').collect::<Vec<_>>()))
                .collect();
            proptest::prop_assert_eq!(scan(text.as_bytes(), chunk), expected);
        }
    }

    proptest::proptest! {
        /// Plain lines taken in blocks read exactly as record by record: quotes, line ends,
        /// carriage returns, bytes that are not UTF-8 and buffer refills anywhere.
        #[test]
        fn plain_lines_read_like_records(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"ab,\"\r\n\n\xff\xc3\xa9".to_vec()), 0..120),
            chunk in 1usize..40,
            width in 0usize..4,
        ) {
            proptest::prop_assert_eq!(scan_plain_first(&bytes, chunk, width), scan(&bytes, chunk));
        }
    }

    proptest::proptest! {
        /// Lines cut from a window's masks read exactly as record by record: lines of the
        /// expected width or not, longer than the window, blank, with quotes, carriage returns
        /// and bytes that are not UTF-8, and buffer refills anywhere.
        #[test]
        fn plain_rows_read_like_records(
            lines in proptest::collection::vec(
                (
                    proptest::collection::vec(
                        proptest::collection::vec(
                            proptest::sample::select(b"aaab\r".to_vec()), 0..24),
                        0..7,
                    ),
                    proptest::bool::ANY,
                    // Now and then a quote or a byte that is not UTF-8, somewhere in the line.
                    proptest::option::weighted(
                        0.1,
                        (proptest::sample::select(b"\"\xff\xc3".to_vec()), 0usize..200),
                    ),
                ),
                0..40,
            ),
            chunk in proptest::sample::select(vec![1usize, 7, 64, 300, 4096]),
            n in proptest::sample::select(vec![2usize, 3, 4, 8]),
        ) {
            let mut bytes = Vec::new();
            for (fields, crlf, spoil) in &lines {
                let mut line = fields.join(&b","[..]);
                if let Some((byte, at)) = spoil {
                    line.insert(at % (line.len() + 1), *byte);
                }
                bytes.extend(line);
                bytes.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            proptest::prop_assert_eq!(scan_rows_first(&bytes, chunk, n), scan(&bytes, chunk));
        }
    }

    /// Rows at every offset of the window, some as long as the window or longer, every line
    /// of the expected width.
    #[test]
    fn plain_rows_of_every_length_read_like_records() {
        let mut input = String::new();
        for k in 0..400 {
            let pad = "x".repeat(k % 140);
            input.push_str(&format!(
                "{k},{pad},y{}\n",
                if k % 3 == 0 { "\r" } else { "" }
            ));
        }
        for chunk in [1 << 20, 4096, 77] {
            let plain = scan_rows_first(input.as_bytes(), chunk, 3);
            assert_eq!(plain, scan(input.as_bytes(), chunk), "chunk {chunk}");
            assert_eq!(plain.len(), 400);
        }
    }

    /// Lines wider than the stack array, narrower or wider than expected, and chunks of stops
    /// that end inside a long line's run of fields.
    #[test]
    fn plain_lines_of_any_width_read_like_records() {
        let wide = vec!["f"; super::STACK_FIELDS + 5].join(",");
        let long = "x".repeat(super::STOP_CHUNK_BYTES + 100);
        let mut input = String::new();
        for k in 0..300 {
            let line = match k % 7 {
                0 => wide.clone(),
                1 => "a,b".to_owned(),
                2 => format!("{long},{k}"),
                3 => ",,".to_owned(),
                4 => "\r".to_owned(),
                _ => format!("{k},x,y"),
            };
            input.push_str(&line);
            input.push_str(if k % 2 == 0 { "\n" } else { "\r\n" });
        }
        for width in [3, 2, super::STACK_FIELDS + 5, 1] {
            for chunk in [1 << 20, 4096, 77] {
                assert_eq!(
                    scan_plain_first(input.as_bytes(), chunk, width),
                    scan(input.as_bytes(), chunk),
                    "width {width}, chunk {chunk}"
                );
            }
        }
        for n in [2, 3] {
            let rows = scan_rows_first(input.as_bytes(), 1 << 20, n);
            assert_eq!(rows, scan(input.as_bytes(), 1 << 20), "rows of {n}");
        }
    }

    #[test]
    fn plain_lines_stop_at_the_part_end_and_leave_the_rest() {
        let input = b"h\na,1\nb,2\n\"c\",3\nd,4\n";
        let mut scanner = CsvScanner::new(&input[..]);
        assert!(matches!(scanner.next_record().unwrap(), Scan::Record(1)));
        scanner.stop_at(6);
        let mut seen = Vec::new();
        scanner.plain_lines(2, |line, fields| seen.push((line, fields[0].to_owned())));
        assert_eq!(seen, vec![(2, "a".to_owned())]);
        assert_eq!(scanner.next_position(), (6, 3));
        assert_eq!(scanner.next_record().unwrap(), Scan::End);
        scanner.stop_at(u64::MAX);
        seen.clear();
        scanner.plain_lines(2, |line, fields| seen.push((line, fields[0].to_owned())));
        assert_eq!(seen, vec![(3, "b".to_owned())]);
        assert!(matches!(scanner.next_record().unwrap(), Scan::Record(4)));
        assert_eq!(scanner.field(0), b"c");
    }

    /// Every build of the quick cut (baseline SSE2, POPCNT/BMI1, AVX2: whichever this processor
    /// has) cuts lines as [`PlainLines::split`] does.
    #[test]
    fn plain_rows_are_cut_alike_by_every_build() {
        let mut text = String::new();
        for k in 0..300 {
            let pad = "z".repeat(k * 7 % 150);
            let line = match k % 5 {
                0 => format!("{k},{pad}"),
                1 => format!("{pad},{k},{pad}\r"),
                2 => String::new(),
                _ => format!("{k},,{pad}"),
            };
            text.push_str(&line);
            text.push('\n');
        }
        type Cut = Vec<(u64, Vec<String>)>;
        type How<'h> = &'h dyn Fn(&mut PlainLines<'_, '_>, &mut dyn FnMut(u64, &[&str]));
        let read = |how: How<'_>| -> Cut {
            let mut stops = Vec::new();
            let mut lines = PlainLines {
                text: &text,
                stops: &mut stops,
                line: 1,
                consumed: 0,
            };
            let mut out = Vec::new();
            how(&mut lines, &mut |line, fields| {
                out.push((line, fields.iter().map(|f| f.to_string()).collect()));
            });
            assert_eq!((lines.consumed, lines.line), (text.len(), 301));
            out
        };
        let want = read(&|lines, each| lines.split(3, usize::MAX, &mut |l, f| each(l, f)));
        let mut builds: Vec<(&str, Cut)> = vec![
            (
                "dispatched",
                read(&|lines, each| lines.rows::<3>(usize::MAX, &mut |l, f| each(l, f))),
            ),
            (
                "sse2",
                read(&|lines, each| {
                    lines.rows_with::<3>(usize::MAX, &mut |l, f| each(l, f), sse2_masks)
                }),
            ),
        ];
        #[cfg(target_arch = "x86_64")]
        if ScanBuild::of_this_processor() != ScanBuild::Baseline {
            // SAFETY: this processor has both features, as just checked.
            let popcnt = |lines: &mut PlainLines<'_, '_>, each: &mut dyn FnMut(u64, &[&str])| unsafe {
                lines.rows_popcnt_bmi1::<3>(usize::MAX, &mut |l, f| each(l, f))
            };
            builds.push(("popcnt,bmi1", read(&popcnt)));
            if ScanBuild::of_this_processor() == ScanBuild::Avx2 {
                // SAFETY: this processor has all three features, as just checked.
                let avx2 = |lines: &mut PlainLines<'_, '_>, each: &mut dyn FnMut(u64, &[&str])| unsafe {
                    lines.rows_avx2::<3>(usize::MAX, &mut |l, f| each(l, f))
                };
                builds.push(("avx2", read(&avx2)));
            }
        }
        for (build, got) in builds {
            assert_eq!(got, want, "{build}");
        }
    }

    /// Parts that end anywhere among rows cut the quick way end where `plain_lines` ends them.
    #[test]
    fn plain_rows_stop_at_the_part_end_like_plain_lines() {
        let mut input = b"h,i\n".to_vec();
        for k in 0..60 {
            input.extend(format!("{k},{}\n", "v".repeat(k % 9)).bytes());
        }
        let read = |stop: u64, rows: bool| {
            let mut scanner = CsvScanner::new(&input[..]);
            assert!(matches!(scanner.next_record().unwrap(), Scan::Record(1)));
            scanner.stop_at(stop);
            let mut seen = Vec::new();
            let each = |line, fields: &[&str]| seen.push((line, fields.join("|")));
            if rows {
                scanner.plain_rows::<2>(each);
            } else {
                scanner.plain_lines(2, each);
            }
            (seen, scanner.next_position())
        };
        for stop in 0..input.len() as u64 + 2 {
            assert_eq!(read(stop, true), read(stop, false), "stop at {stop}");
        }
    }

    #[test]
    fn header_problems_are_all_reported() {
        let known = [required("a"), required("b"), optional("c")];
        let header = |text: &[u8]| {
            let mut s = CsvScanner::new(text);
            read_header(&mut s, Path::new("f.csv"), &known).unwrap()
        };
        let layout = header(b"b,a\n").unwrap();
        assert_eq!(layout.index, vec![Some(1), Some(0), None]);
        assert_eq!(layout.width, 2);
        let errors = header(b"a,a,x,\xFF\n").unwrap_err();
        let described: Vec<String> = errors.iter().map(|e| e.describe()).collect();
        assert_eq!(errors.len(), 4, "{described:?}");
        assert!(described[0].contains("appears twice"));
        assert!(described[1].contains("column x: is not a known column"));
        assert!(described[2].contains("not valid UTF-8"));
        assert!(described[3].contains("column b: is missing"));
        let empty = header(b"").unwrap_err();
        assert!(empty[0].reason.contains("file is empty"));
        assert_eq!(empty[0].location.line, 1);
    }
}
