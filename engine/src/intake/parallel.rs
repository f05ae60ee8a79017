//! Trade files read, validated and netted on several threads, with exactly the result of
//! reading them one after the other into one [`crate::validate::TradeValidator`].
//!
//! The unit of work is a file (the reader API reads whole files): workers take the next file
//! in name order from a shared counter. Each worker owns a netting accumulator and an id
//! record ([`IdRecord`]); each file gets its own rejects. Nothing is shared while reading.
//!
//! Why the result equals the sequential one:
//! - **Netting** is a sum: the workers' accumulators add up to one accumulator of all rows.
//! - **The business date**: sequentially, the first valid-looking row of the first file that
//!   has one sets the date, and every later row is judged against it. A worker cannot know
//!   that row, so each file is judged against its own first date. If every file's first date
//!   is the day's date and no row was refused for another date, no row was judged
//!   differently. Otherwise (a day with several dates, which is invalid input anyway) the
//!   files are read once more, judged against the day's date from the start.
//! - **De-duplication**: the first (valid) occurrence of a trade id, in file order, is the
//!   trade; a later one with the same content is a duplicate, with other content a conflict.
//!   Pass 1 nets every valid row and records its id. [`find_suspects`] then names every id
//!   that may repeat. If there is none (the normal day) pass 1's result is final. Otherwise
//!   pass 2 reads the files again and collects, for just those ids, every valid occurrence
//!   with its place and exact content; sorted by (id, file, line), each id's first occurrence
//!   stays netted and each later one is taken back out of the nets
//!   ([`NettingAccumulator::remove`]) and counted as a duplicate or rejected as a conflict,
//!   at its own file and line. Content is compared field by field (normalised price), not by
//!   hash.
//! - **Rejects** are kept per file in the order the reader reports them; conflicts are merged
//!   in by line, and files are concatenated in name order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashSet;

use clearhouse_formats::model::{BusinessDate, Location, RowError, TradeFields};
use clearhouse_formats::trades::{
    read_trades_part, split_trade_file, split_trade_file_with, FilePart, KeyColumn, PartStats,
    TradeFormat, TradeKeys, TradeSink,
};

use crate::dedup::record::{find_suspects, fingerprint, IdRecord};
use crate::netting::{NettingAccumulator, ValidTrade};
use crate::reference::RefData;
use crate::validate::{check_day, check_with_keys, key_of, DayDate, TradeCounts, ValidatedTrades};
use crate::EngineError;

/// Valid trades buffered per worker before they are netted in one go (with prefetching).
const NET_BATCH: usize = 512;

/// What pass 1 learnt about one file.
#[derive(Debug, Default)]
struct FileOutcome {
    /// The date of the file's first valid-looking row (or the given date).
    day: Option<DayDate>,
    /// A row was refused because its date differed from `day`.
    date_mismatch: bool,
    rejects: Vec<RowError>,
}

/// One worker's sums over the files it read.
struct Worker {
    netting: NettingAccumulator,
    ids: IdRecord,
    counts: TradeCounts,
    batch: Vec<ValidTrade>,
}

impl Worker {
    fn flush(&mut self) {
        self.netting.push_all(&self.batch);
        self.batch.clear();
    }
}

/// The pass-1 sink of one file.
struct FileSink<'a> {
    refs: &'a RefData,
    file: &'a Path,
    outcome: FileOutcome,
    worker: &'a mut Worker,
}

impl TradeSink for FileSink<'_> {
    #[inline]
    fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
        self.trade_keyed(line, t, TradeKeys::default());
    }

    fn key_of(&mut self, column: KeyColumn, id: &str) -> Option<u32> {
        key_of(self.refs, column, id)
    }

    #[inline]
    fn trade_keyed(&mut self, line: u64, t: &TradeFields<'_>, keys: TradeKeys) {
        self.worker.counts.rows += 1;
        let checked = check_day(&mut self.outcome.day, self.file, line, t)
            .and_then(|()| check_with_keys(self.refs, t, keys));
        match checked {
            Ok(valid) => {
                self.worker.counts.netted += 1;
                self.worker.ids.record(t.trade_id);
                self.worker.batch.push(valid);
                if self.worker.batch.len() == NET_BATCH {
                    self.worker.flush();
                }
            }
            Err((column, value, reason)) => {
                // A date that parses was refused only for differing from the file's date.
                if column == "business_date" && BusinessDate::parse(t.business_date).is_some() {
                    self.outcome.date_mismatch = true;
                }
                self.worker.counts.rejected += 1;
                self.outcome.rejects.push(RowError::new(
                    Location::new(self.file, line),
                    t.trade_id,
                    column,
                    &value,
                    reason,
                ));
            }
        }
    }

    fn bad_row(&mut self, error: RowError) {
        self.worker.counts.rows += 1;
        self.worker.counts.rejected += 1;
        self.outcome.rejects.push(error);
    }
}

/// The exact content of a trade, as [`crate::dedup::content_hash`] defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    business_date: Box<str>,
    instrument: Box<str>,
    buyer: Box<str>,
    seller: Box<str>,
    price: (i64, u32),
    quantity: i64,
    executed_at: Option<Box<str>>,
}

impl Content {
    fn of(t: &TradeFields<'_>) -> Content {
        Content {
            business_date: t.business_date.into(),
            instrument: t.instrument.into(),
            buyer: t.buyer.into(),
            seller: t.seller.into(),
            price: (t.price.mantissa, t.price.scale),
            quantity: t.quantity,
            executed_at: t.executed_at.map(Into::into),
        }
    }
}

/// A valid row whose id may repeat, as pass 2 found it.
#[derive(Debug)]
struct Occurrence {
    id: Box<str>,
    file: usize,
    line: u64,
    content: Content,
    trade: ValidTrade,
}

/// The pass-2 sink of one file: valid rows with a suspect id.
struct SuspectSink<'a> {
    refs: &'a RefData,
    file: &'a Path,
    file_index: usize,
    day: Option<DayDate>,
    suspects: &'a FxHashSet<u64>,
    found: &'a mut Vec<Occurrence>,
}

impl TradeSink for SuspectSink<'_> {
    fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
        self.trade_keyed(line, t, TradeKeys::default());
    }

    fn key_of(&mut self, column: KeyColumn, id: &str) -> Option<u32> {
        key_of(self.refs, column, id)
    }

    fn trade_keyed(&mut self, line: u64, t: &TradeFields<'_>, keys: TradeKeys) {
        if !self.suspects.contains(&fingerprint(t.trade_id.as_bytes())) {
            return;
        }
        let checked = check_day(&mut self.day, self.file, line, t)
            .and_then(|()| check_with_keys(self.refs, t, keys));
        if let Ok(trade) = checked {
            self.found.push(Occurrence {
                id: t.trade_id.into(),
                file: self.file_index,
                line,
                content: Content::of(t),
                trade,
            });
        }
    }

    fn bad_row(&mut self, _error: RowError) {}
}

/// Runs `work(worker state, file index)` for every file on up to `threads` threads, each
/// thread taking the next file in order. Returns each thread's state and, per file, what
/// `work` returned, in file order.
fn for_each_file<S: Send, R: Send>(
    files: usize,
    threads: usize,
    new_state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> R + Sync,
) -> (Vec<S>, Vec<R>) {
    let next = AtomicUsize::new(0);
    let run = || {
        let mut state = new_state();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= files {
                break;
            }
            done.push((i, work(&mut state, i)));
        }
        (state, done)
    };
    let threads = threads.clamp(1, files.max(1));
    let finished: Vec<(S, Vec<(usize, R)>)> = if threads == 1 {
        vec![run()]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(run)).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an intake worker panicked"))
                .collect()
        })
    };
    let mut states = Vec::with_capacity(finished.len());
    let mut results: Vec<(usize, R)> = Vec::with_capacity(files);
    for (state, done) in finished {
        states.push(state);
        results.extend(done);
    }
    results.sort_by_key(|(i, _)| *i);
    debug_assert!(results.iter().enumerate().all(|(k, (i, _))| k == *i));
    (states, results.into_iter().map(|(_, r)| r).collect())
}

/// One thread's unit of work: a file, or a part of one (Parquet row groups, a CSV byte
/// range).
#[derive(Debug, Clone)]
struct Unit {
    file: usize,
    part: FilePart,
}

/// The units of `files`: each file whole when there are enough files to keep every thread
/// busy, else split so that each thread gets about [`units_per_thread`] units.
fn plan_units(files: &[(PathBuf, TradeFormat)], threads: usize) -> Result<Vec<Unit>, EngineError> {
    let mut units = Vec::new();
    for (file, (path, format)) in files.iter().enumerate() {
        let wanted = units_per_thread(*format) * threads;
        let per_file = if threads <= 1 || files.len() >= wanted {
            1
        } else {
            wanted.div_ceil(files.len().max(1))
        };
        for part in split_trade_file(path, *format, per_file)? {
            units.push(Unit { file, part });
        }
    }
    Ok(units)
}

/// How many units a thread should get. The thread that finishes its last unit first waits
/// for the other, so smaller units balance the end better, at a cost per unit. Parquet
/// files split at row groups, which cost nothing to find: four units per thread (a 10M-trade
/// day in four files: read+validate median 2.10 s → 1.96 s, BENCHMARKS.md "Sixth pass").
/// A CSV part costs its boundary search and its own key cache: two (four were no faster).
fn units_per_thread(format: TradeFormat) -> usize {
    match format {
        TradeFormat::Parquet => 4,
        TradeFormat::Csv | TradeFormat::Jsonl => 2,
    }
}

/// Each file's units read whole, as one.
fn unsplit(units: &[Unit], files: &FxHashSet<usize>) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::with_capacity(units.len());
    for unit in units {
        if !files.contains(&unit.file) {
            out.push(unit.clone());
        } else if out.last().is_none_or(|last| last.file != unit.file) {
            out.push(Unit {
                file: unit.file,
                part: FilePart::Whole,
            });
        }
    }
    out
}

/// Files whose parts did not join up: a part stopped early (undecodable data, after which a
/// whole-file read stops too) or did not end where the next part starts (a split inside a
/// quoted field). Such a file is read whole instead.
fn broken_splits(units: &[Unit], reads: &[PartStats]) -> FxHashSet<usize> {
    let mut broken = FxHashSet::default();
    for (k, pair) in units.windows(2).enumerate() {
        let (this, next) = (&pair[0], &pair[1]);
        if this.file != next.file {
            continue;
        }
        let joins = reads[k].complete
            && match &next.part {
                FilePart::CsvRecords { bytes, first_line } => {
                    reads[k].ends_at == Some((bytes.start, *first_line))
                }
                _ => true,
            };
        if !joins {
            broken.insert(this.file);
        }
    }
    broken
}

type PassOne = (Vec<Worker>, Vec<FileOutcome>, Vec<PartStats>);

/// Pass 1: every unit validated and every valid row netted and its id recorded. `day` is the
/// day's date when known beforehand; otherwise each unit starts without one.
fn pass_one(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
    units: &[Unit],
    threads: usize,
    day: Option<&DayDate>,
) -> Result<PassOne, EngineError> {
    let (workers, outcomes) = for_each_file(
        units.len(),
        threads,
        || Worker {
            netting: NettingAccumulator::new(refs),
            ids: IdRecord::default(),
            counts: TradeCounts::default(),
            batch: Vec::with_capacity(NET_BATCH),
        },
        |worker, i| {
            let unit = &units[i];
            let (path, format) = &files[unit.file];
            let mut sink = FileSink {
                refs,
                file: path,
                outcome: FileOutcome {
                    day: day.cloned(),
                    ..FileOutcome::default()
                },
                worker,
            };
            let read = read_trades_part(path, *format, &unit.part, &mut sink);
            let outcome = sink.outcome;
            worker.flush();
            read.map(|stats| (outcome, stats))
        },
    );
    let (outcomes, reads) = outcomes
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    Ok((workers, outcomes, reads))
}

/// Pass 1 on the planned units; a file whose parts did not join up is read again whole.
fn pass_one_joined(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
    units: &mut Vec<Unit>,
    threads: usize,
    day: Option<&DayDate>,
) -> Result<(Vec<Worker>, Vec<FileOutcome>), EngineError> {
    let (workers, outcomes, reads) = pass_one(refs, files, units, threads, day)?;
    let broken = broken_splits(units, &reads);
    if broken.is_empty() {
        return Ok((workers, outcomes));
    }
    *units = unsplit(units, &broken);
    let (workers, outcomes, _) = pass_one(refs, files, units, threads, day)?;
    Ok((workers, outcomes))
}

/// Pass 2: every valid occurrence of a suspect id, judged against the day's date.
fn pass_two(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
    units: &[Unit],
    threads: usize,
    day: Option<&DayDate>,
    suspects: &FxHashSet<u64>,
) -> Result<Vec<Occurrence>, EngineError> {
    let (found, reads) = for_each_file(units.len(), threads, Vec::new, |found, i| {
        let unit = &units[i];
        let (path, format) = &files[unit.file];
        let mut sink = SuspectSink {
            refs,
            file: path,
            file_index: unit.file,
            day: day.cloned(),
            suspects,
            found,
        };
        read_trades_part(path, *format, &unit.part, &mut sink)
    });
    for read in reads {
        read?;
    }
    Ok(found.into_iter().flatten().collect())
}

/// Each later occurrence of an id taken back out of the nets and counted as a duplicate (same
/// content as the first) or returned as a conflict `(file, reject)`.
fn settle_repeats(
    files: &[(PathBuf, TradeFormat)],
    mut found: Vec<Occurrence>,
    netting: &mut NettingAccumulator,
    counts: &mut TradeCounts,
) -> Vec<(usize, RowError)> {
    found.sort_by(|a, b| (&a.id, a.file, a.line).cmp(&(&b.id, b.file, b.line)));
    let mut conflicts = Vec::new();
    for group in found.chunk_by(|a, b| a.id == b.id) {
        let first = &group[0];
        for later in &group[1..] {
            netting.remove(&later.trade);
            counts.netted -= 1;
            if later.content == first.content {
                counts.duplicates += 1;
            } else {
                counts.rejected += 1;
                conflicts.push((
                    later.file,
                    RowError::new(
                        Location::new(&files[later.file].0, later.line),
                        &*later.id,
                        "trade_id",
                        &later.id,
                        "was already used by a trade with different content",
                    ),
                ));
            }
        }
    }
    conflicts
}

/// `rejects` (in reader order) with `conflicts` (one per line) merged in where the
/// sequential validator would have reported them: before the first reject of a later line.
fn merge_by_line(rejects: Vec<RowError>, mut conflicts: Vec<RowError>) -> Vec<RowError> {
    if conflicts.is_empty() {
        return rejects;
    }
    conflicts.sort_by_key(|c| c.location.line);
    let mut merged = Vec::with_capacity(rejects.len() + conflicts.len());
    let mut pending = conflicts.into_iter().peekable();
    for r in rejects {
        while let Some(c) = pending.next_if(|c| c.location.line < r.location.line) {
            merged.push(c);
        }
        merged.push(r);
    }
    merged.extend(pending);
    merged
}

/// Reads, validates, de-duplicates and nets `files` on up to `threads` threads. `day` is the
/// business date when known beforehand. The result is the sequential one, exactly.
pub fn validate_files(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
    threads: usize,
    day: Option<DayDate>,
) -> Result<ValidatedTrades, EngineError> {
    let mut units = plan_units(files, threads)?;
    validate_units(refs, files, &mut units, threads, day)
}

/// [`validate_files`] with every file split into `parts` parts where it splits (CSV files
/// at any size): for tests, which compare any split with the sequential validator.
pub fn validate_files_split(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
    threads: usize,
    parts: usize,
    day: Option<DayDate>,
) -> Result<ValidatedTrades, EngineError> {
    let mut units = Vec::new();
    for (file, (path, format)) in files.iter().enumerate() {
        for part in split_trade_file_with(path, *format, parts, 1)? {
            units.push(Unit { file, part });
        }
    }
    validate_units(refs, files, &mut units, threads, day)
}

fn validate_units(
    refs: &RefData,
    files: &[(PathBuf, TradeFormat)],
    units: &mut Vec<Unit>,
    threads: usize,
    day: Option<DayDate>,
) -> Result<ValidatedTrades, EngineError> {
    let (mut workers, mut outcomes) = pass_one_joined(refs, files, units, threads, day.as_ref())?;
    let day = day.or_else(|| outcomes.iter().find_map(|o| o.day.clone()));
    if let Some(day) = &day {
        let judged_alike = outcomes.iter().all(|o| {
            let same_date = match &o.day {
                Some(d) => d.date == day.date,
                None => true,
            };
            same_date && !o.date_mismatch
        });
        if !judged_alike {
            (workers, outcomes) = pass_one_joined(refs, files, units, threads, Some(day))?;
        }
    }
    let mut counts = TradeCounts::default();
    let mut netting: Option<NettingAccumulator> = None;
    let mut records = Vec::with_capacity(workers.len());
    for w in workers {
        counts.rows += w.counts.rows;
        counts.netted += w.counts.netted;
        counts.rejected += w.counts.rejected;
        counts.duplicates += w.counts.duplicates;
        records.push(w.ids);
        match &mut netting {
            Some(n) => n.merge(w.netting),
            None => netting = Some(w.netting),
        }
    }
    let mut netting = netting.unwrap_or_else(|| NettingAccumulator::new(refs));
    let suspects = find_suspects(records, threads);
    let mut conflicts: Vec<Vec<RowError>> = vec![Vec::new(); files.len()];
    if !suspects.is_empty() {
        let found = pass_two(refs, files, units, threads, day.as_ref(), &suspects)?;
        for (file, reject) in settle_repeats(files, found, &mut netting, &mut counts) {
            conflicts[file].push(reject);
        }
    }
    // Each file's rejects: its units' in order, then its conflicts merged in by line.
    let mut per_file: Vec<Vec<RowError>> = vec![Vec::new(); files.len()];
    for (unit, outcome) in units.iter().zip(outcomes) {
        per_file[unit.file].extend(outcome.rejects);
    }
    let mut rejects = Vec::new();
    for (file_rejects, file_conflicts) in per_file.into_iter().zip(conflicts) {
        rejects.extend(merge_by_line(file_rejects, file_conflicts));
    }
    Ok(ValidatedTrades {
        day,
        netting,
        rejects,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clearhouse_formats::money::Decimal;
    use clearhouse_formats::trades::TradeFileWriter;

    /// A Parquet trade file of `rows` rows in row groups of `group_rows`.
    fn parquet_file(path: &Path, rows: usize, group_rows: usize) {
        let mut w =
            TradeFileWriter::create_with_row_groups(path, TradeFormat::Parquet, 2, group_rows)
                .expect("create");
        for i in 0..rows {
            let id = format!("T{i:08}");
            w.write(&TradeFields {
                trade_id: &id,
                business_date: "2026-11-25",
                instrument: "I00001",
                buyer: "M00001",
                seller: "M00002",
                price: Decimal::from_unscaled(1000, 2).expect("price"),
                quantity: 1,
                executed_at: None,
            })
            .expect("write");
        }
        w.finish().expect("finish");
    }

    fn parts_per_file(units: &[Unit], files: usize) -> Vec<usize> {
        (0..files)
            .map(|f| units.iter().filter(|u| u.file == f).count())
            .collect()
    }

    #[test]
    fn parquet_days_split_into_about_four_units_per_thread_csv_days_two() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parquet: Vec<(PathBuf, TradeFormat)> = (0..4)
            .map(|i| {
                let path = dir.path().join(format!("trades-{i}.parquet"));
                parquet_file(&path, 9, 3);
                (path, TradeFormat::Parquet)
            })
            .collect();
        // Four files, two threads: eight units, two per file (at row groups).
        let units = plan_units(&parquet, 2).expect("plan");
        assert_eq!(parts_per_file(&units, 4), vec![2, 2, 2, 2]);
        assert!(units
            .iter()
            .all(|u| matches!(u.part, FilePart::RowGroups { .. })));
        // One thread: whole files. One file, two threads: as many parts as row groups.
        assert_eq!(plan_units(&parquet, 1).expect("plan").len(), 4);
        assert_eq!(plan_units(&parquet[..1], 2).expect("plan").len(), 3);

        // CSV: two units per thread, so four files on two threads are read whole.
        let csv: Vec<(PathBuf, TradeFormat)> = (0..4)
            .map(|i| {
                let path = dir.path().join(format!("trades-{i}.csv"));
                let mut text =
                    String::from("trade_id,business_date,instrument,buyer,seller,price,quantity\n");
                text.push_str(&"T1,2026-11-25,I00001,M00001,M00002,10.00,1\n".repeat(100));
                std::fs::write(&path, text).expect("write");
                (path, TradeFormat::Csv)
            })
            .collect();
        let units = plan_units(&csv, 2).expect("plan");
        assert!(units.iter().all(|u| u.part == FilePart::Whole));
        assert_eq!(units.len(), 4);
    }
}
