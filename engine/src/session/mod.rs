//! Market-hours sessions: `open` a business date → append trades → `close` (seal the journal
//! and run the end-of-day batch on it).
//!
//! A session is a journal directory `<data-dir>/journal-<date>/` (see [`crate::datadir`]):
//! the reference data it was opened with (`reference/`), and the journal, whose first record
//! is a header naming the date and the BLAKE3 of that reference data, followed by one record
//! per accepted batch of trades ([`record`]). Its state is read from disk, never kept apart:
//! unsealed journal = open; sealed = closed (posted once the ledger holds the date's batch).
//!
//! # The intake path ([`Session::start_batch`] → [`Session::commit`])
//!
//! A batch (one HTTP request, or a chunk of a file for `clearhouse ingest`) is checked trade by
//! trade on arrival, without netting: the date must be the session's and
//! [`validate::check_against_reference`] must pass, the same function the batch uses at close.
//! The whole batch is accepted or refused: one refused trade refuses all of it and nothing is
//! appended. Accepted trades new to the session go into **one** journal record, so the batch
//! is all-or-nothing on disk too; the caller is answered only once that record is durable.
//!
//! Idempotency: an in-memory index maps each trade id (a 128-bit hash) to the hash of its
//! content and the batch that stored it. It is rebuilt from the journal when the session is
//! opened again (after a restart or a crash). An identical re-submission is answered
//! "already existed" and not stored again (once the batch that stored it is durable); the same
//! id with other content is refused.
//!
//! Concurrency: the journal's append path is lock-free, but "first one wins" needs a total
//! order between the index and the journal, so checking the index and claiming journal space
//! happen under one short mutex (a few hashes and one `memcpy` per batch). Waiting for the
//! fsync happens outside it, so concurrent batches share group commits.
//!
//! Nothing here depends on netting, posting or instructions: see ARCHITECTURE.md.

pub mod ingest;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_128;

use clearhouse_formats::model::{BusinessDate, Location, RowError, TradeFields};
use clearhouse_formats::trades::TradeSink;

use crate::datadir::{reference_digest, write_atomic, DataDir, REFERENCE_FILES};
use crate::journal::{self, Appender, Journal, JournalOptions, SyncMode};
use crate::reference::RefData;
use crate::validate::{check_against_reference, parse_business_date};
use crate::EngineError;

use record::{Header, TradesRecord};

/// Bounds of a session; every one is checked.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub journal: JournalOptions,
    /// Most trades in one batch (one journal record).
    pub batch_trades_max: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            journal: JournalOptions {
                sync: SyncMode::Durable,
                segment_size_bytes: 64 << 20,
                buffer_size_bytes: 64 << 20,
                // A quarter of the buffer, less the record header: one batch is one record.
                record_size_max_bytes: (16 << 20) - 64,
            },
            batch_trades_max: 50_000,
        }
    }
}

/// What happened to one trade of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeStatus {
    /// New: stored by this batch.
    Created,
    /// Identical to a trade already stored (by an earlier batch, or earlier in this one).
    AlreadyExisted,
    /// Invalid: the reason, as rejects.csv words it (`column <c>: value "<v>": <why>`).
    Refused(String),
    /// Valid, but not appended because another trade of the batch was refused.
    NotApplied,
}

impl TradeStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TradeStatus::Created => "created",
            TradeStatus::AlreadyExisted => "already_existed",
            TradeStatus::Refused(_) => "refused",
            TradeStatus::NotApplied => "not_applied",
        }
    }
}

/// One trade's result, in the order of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeResult {
    /// Row of the batch (element of a JSON array, line of NDJSON or of a file).
    pub row: u64,
    /// Empty when the row had no readable id.
    pub trade_id: String,
    pub status: TradeStatus,
}

/// The outcome of [`Session::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Whether the batch was accepted (and, if it created anything, is durable).
    pub accepted: bool,
    pub created: u64,
    pub already_existed: u64,
    pub refused: u64,
    pub results: Vec<TradeResult>,
    /// Bytes of the journal record this batch appended (0: none, everything existed).
    pub bytes_appended: u64,
}

/// Counters of one session, for metrics.
#[derive(Debug, Default)]
pub struct SessionStats {
    pub batches_accepted: AtomicU64,
    pub batches_refused: AtomicU64,
    pub trades_created: AtomicU64,
    pub trades_already_existed: AtomicU64,
    pub trades_refused: AtomicU64,
    /// Journal records appended by this process (the header included).
    pub records_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
}

/// What opening found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The session was created now (else it was recovered from its journal).
    pub created: bool,
    /// Trades in the journal when it was opened.
    pub trades_recovered: u64,
    pub recovery: journal::RecoveryReport,
}

#[derive(Debug, Clone, Copy)]
struct IdEntry {
    content: u64,
    /// The batch that stored the trade; 0 for trades recovered from disk (durable).
    batch: u64,
}

struct Inner {
    ids: FxHashMap<u128, IdEntry>,
    next_batch: u64,
    sealed: bool,
}

/// An open session: its reference data, its journal and its id index.
pub struct Session {
    date: BusinessDate,
    dir: PathBuf,
    refs: RefData,
    options: SessionOptions,
    journal: Journal,
    appender: Appender,
    inner: Mutex<Inner>,
    /// Every batch numbered ≤ this is durable (acknowledgements come in append order).
    durable: Mutex<u64>,
    durable_changed: Condvar,
    /// The journal failed: the session accepts nothing more until it is opened again.
    failed: AtomicBool,
    pub stats: SessionStats,
}

impl Session {
    /// Opens the session of `date`: creates it (snapshotting the data directory's reference
    /// data) or recovers it from its journal. The caller holds the data directory's lock.
    /// A closed (sealed) session cannot be opened.
    pub fn open(
        data: &DataDir,
        date: BusinessDate,
        options: SessionOptions,
    ) -> Result<(Session, OpenReport), EngineError> {
        let dir = data.journal_dir(date);
        let snapshot = data.session_reference_dir(date);
        let created = !dir.exists();
        if created || !has_segments(&dir)? {
            if !data.has_reference() {
                return Err(EngineError::Session(format!(
                    "no reference data in {}: run `clearhouse init REF_DIR --data-dir {}` first",
                    data.root().display(),
                    data.root().display()
                )));
            }
            for name in REFERENCE_FILES {
                let from = data.reference_file(name);
                let bytes = std::fs::read(&from).map_err(|e| EngineError::io(&from, e))?;
                write_atomic(&snapshot.join(name), &bytes)?;
            }
        }
        let refs = load_reference(&snapshot)?;
        let digest = reference_digest(&snapshot)?;
        let (journal, recovery) = Journal::open(&dir, options.journal.clone())?;
        if recovery.sealed {
            return Err(EngineError::Session(format!(
                "the session of {date} is closed: its journal {} is sealed",
                dir.display()
            )));
        }
        let date_text = date.to_string();
        let mut ids = FxHashMap::default();
        let mut header = None;
        let mut decode_error = None;
        journal::read_all(&dir, |seq, payload| {
            if decode_error.is_some() {
                return;
            }
            let result = if seq == 1 {
                record::decode_header(seq, payload).map(|h| header = Some(h))
            } else {
                record::decode_trades(seq, payload, &date_text, |t| {
                    let entry = IdEntry {
                        content: content_key(t),
                        batch: 0,
                    };
                    ids.insert(xxh3_128(t.trade_id.as_bytes()), entry);
                })
                .map(|_| ())
            };
            if let Err(e) = result {
                decode_error = Some(e);
            }
        })?;
        if let Some(e) = decode_error {
            return Err(EngineError::Session(format!("{}: {e}", dir.display())));
        }
        let expected = Header {
            date,
            reference_digest: digest,
        };
        match header {
            Some(found) if found == expected => {}
            Some(_) => {
                return Err(EngineError::Session(format!(
                    "{}: the session header does not match the date or the reference data in {}",
                    dir.display(),
                    snapshot.display()
                )))
            }
            None => {
                let appender = journal.appender();
                appender.append(&record::encode_header(&expected))?.wait()?;
            }
        }
        let appender = journal.appender();
        let trades_recovered = ids.len() as u64;
        let session = Session {
            date,

            dir,
            refs,
            options,
            journal,
            appender,
            inner: Mutex::new(Inner {
                ids,
                next_batch: 1,
                sealed: false,
            }),
            durable: Mutex::new(0),
            durable_changed: Condvar::new(),
            failed: AtomicBool::new(false),
            stats: SessionStats::default(),
        };
        if header.is_none() {
            session.stats.records_appended.fetch_add(1, Relaxed);
            let len = record::HEADER_LEN as u64;
            session.stats.bytes_appended.fetch_add(len, Relaxed);
        }
        let report = OpenReport {
            created,
            trades_recovered,
            recovery,
        };
        Ok((session, report))
    }

    pub fn date(&self) -> BusinessDate {
        self.date
    }

    pub fn journal_dir(&self) -> &Path {
        &self.dir
    }

    pub fn refs(&self) -> &RefData {
        &self.refs
    }

    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// Distinct trades stored so far.
    pub fn trade_count(&self) -> u64 {
        self.lock_inner().ids.len() as u64
    }

    /// `fdatasync` calls of the journal since the session was opened.
    pub fn journal_syncs(&self) -> u64 {
        self.journal.syncs()
    }

    pub fn is_sealed(&self) -> bool {
        self.lock_inner().sealed
    }

    /// Checks one trade as a batch would on arrival (date and reference data), without the
    /// id index: the reason it would be refused, if any.
    pub fn check_trade(&self, t: &TradeFields<'_>) -> Result<(), String> {
        let describe = |(column, value, reason): (&str, String, String)| {
            RowError::new(Location::new("", 0), "", column, &value, reason).describe()
        };
        let date = parse_business_date(t).map_err(describe)?;
        if date != self.date {
            return Err(describe((
                "business_date",
                t.business_date.to_string(),
                format!("differs from the session's business date {}", self.date),
            )));
        }
        check_against_reference(&self.refs, t).map_err(describe)?;
        if t.executed_at.map_or(0, str::len) > record::EXECUTED_AT_MAX_BYTES {
            return Err(describe((
                "executed_at",
                t.executed_at.unwrap_or("").to_string(),
                format!("is longer than {} bytes", record::EXECUTED_AT_MAX_BYTES),
            )));
        }
        Ok(())
    }

    /// A new batch: feed it trades through [`TradeSink`], then [`Session::commit`] it.
    /// `source` names the batch in messages (a file, or the request).
    pub fn start_batch(&self, source: &Path) -> Batch<'_> {
        self.start_batch_sized(source, 0)
    }

    /// [`Session::start_batch`] for a body of `body_bytes` of JSON: buffers are sized once
    /// (an encoded trade is well under half its JSON), not grown trade by trade.
    pub fn start_batch_sized(&self, source: &Path, body_bytes: usize) -> Batch<'_> {
        let record_bytes = (body_bytes / 2).min(self.options.journal.record_size_max_bytes);
        let trades = (body_bytes / 100).min(self.options.batch_trades_max);
        Batch {
            session: self,
            source: source.to_path_buf(),
            items: Vec::with_capacity(trades),
            record: TradesRecord::with_capacity(record_bytes),
            refused: 0,
            too_many: false,
        }
    }

    /// Accepts or refuses a batch as a whole; returns once an accepted batch is durable.
    /// `Err` is a failure to store (the journal failed, the session was sealed): nothing of
    /// the batch is acknowledged.
    pub fn commit(&self, batch: Batch<'_>) -> Result<BatchOutcome, EngineError> {
        assert!(
            std::ptr::eq(batch.session, self),
            "a batch of another session"
        );
        if self.failed.load(Relaxed) {
            return Err(self.failed_error());
        }
        if batch.too_many {
            return Err(EngineError::Session(format!(
                "a batch holds at most {} trades",
                self.options.batch_trades_max
            )));
        }
        if batch.refused > 0 || batch.items.is_empty() {
            return Ok(self.refuse(batch.items));
        }
        let mut items = batch.items;
        let mut inner = self.lock_inner();
        if inner.sealed {
            return Err(EngineError::Session(format!(
                "the session of {} is closed: no trade is accepted",
                self.date
            )));
        }
        let number = inner.next_batch;
        let (inserted, wait_for, conflicts) = index_batch(&mut inner, &mut items, number);
        if conflicts > 0 {
            for id in &inserted {
                inner.ids.remove(id);
            }
            drop(inner);
            return Ok(self.refuse(items));
        }
        inner.next_batch += 1;
        let payload = if inserted.len() == items.len() {
            batch.record.finish()
        } else {
            // Some trades were stored before: the record holds only the new ones.
            rebuild_record(&batch.record, &items)
        };
        let ticket = match &payload {
            None => None,
            Some(payload) => match self.appender.append(payload) {
                Ok(ticket) => Some(ticket),
                Err(e) => {
                    for id in &inserted {
                        inner.ids.remove(id);
                    }
                    return Err(e.into());
                }
            },
        };
        drop(inner);
        if let Some(ticket) = ticket {
            if let Err(e) = ticket.wait() {
                self.fail();
                return Err(e.into());
            }
            let len = payload.as_ref().map_or(0, Vec::len) as u64;
            self.stats.records_appended.fetch_add(1, Relaxed);
            self.stats.bytes_appended.fetch_add(len, Relaxed);
            self.mark_durable(number);
            let mut outcome = self.accept(items);
            outcome.bytes_appended = len;
            Ok(outcome)
        } else {
            // Nothing new; but what this batch found may still be on its way to the disk.
            self.wait_durable(wait_for)?;
            Ok(self.accept(items))
        }
    }

    /// Seals the journal: no trade is accepted afterwards. Batches accepted before are written
    /// first. Returns the seal.
    pub fn seal(&self) -> Result<journal::SealReport, EngineError> {
        let mut inner = self.lock_inner();
        inner.sealed = true;
        Ok(self.journal.seal()?)
    }

    /// Stops the journal writer after syncing everything accepted; the session stays open on
    /// disk and is recovered by the next [`Session::open`].
    pub fn shutdown(self) -> Result<(), EngineError> {
        Ok(self.journal.close()?)
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refuse(&self, mut items: Vec<Item>) -> BatchOutcome {
        for item in &mut items {
            if !matches!(item.status, TradeStatus::Refused(_)) {
                item.status = TradeStatus::NotApplied;
            }
        }
        let outcome = outcome(items, false);
        self.stats.batches_refused.fetch_add(1, Relaxed);
        self.stats
            .trades_refused
            .fetch_add(outcome.refused, Relaxed);
        outcome
    }

    fn accept(&self, items: Vec<Item>) -> BatchOutcome {
        let outcome = outcome(items, true);
        self.stats.batches_accepted.fetch_add(1, Relaxed);
        self.stats
            .trades_created
            .fetch_add(outcome.created, Relaxed);
        self.stats
            .trades_already_existed
            .fetch_add(outcome.already_existed, Relaxed);
        outcome
    }

    fn mark_durable(&self, number: u64) {
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        *durable = (*durable).max(number);
        self.durable_changed.notify_all();
    }

    /// Waits until batch `wait_for` is durable: a batch without a record of its own (all its
    /// trades existed) is answered only once the batches that stored them are on disk.
    fn wait_durable(&self, wait_for: u64) -> Result<(), EngineError> {
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        while *durable < wait_for {
            if self.failed.load(Relaxed) {
                return Err(self.failed_error());
            }
            durable = self
                .durable_changed
                .wait_timeout(durable, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    fn fail(&self) {
        self.failed.store(true, Relaxed);
        let _guard = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        self.durable_changed.notify_all();
    }

    fn failed_error(&self) -> EngineError {
        EngineError::Session(format!(
            "the journal of {} failed; the session accepts nothing until it is opened again",
            self.date
        ))
    }
}

/// Inserts the batch's new ids; returns them, the newest batch that stored one of the
/// existing ones, and the number of conflicts (each marked on its item).
fn index_batch(inner: &mut Inner, items: &mut [Item], number: u64) -> (Vec<u128>, u64, usize) {
    let mut inserted = Vec::with_capacity(items.len());
    let mut wait_for = 0;
    let mut conflicts = 0;
    for item in items.iter_mut() {
        match inner.ids.entry(item.id_hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(IdEntry {
                    content: item.content,
                    batch: number,
                });
                inserted.push(item.id_hash);
                item.status = TradeStatus::Created;
            }
            std::collections::hash_map::Entry::Occupied(slot) => {
                let existing = *slot.get();
                if existing.content == item.content {
                    if existing.batch != number {
                        wait_for = wait_for.max(existing.batch);
                    }
                    item.status = TradeStatus::AlreadyExisted;
                } else {
                    conflicts += 1;
                    item.status = TradeStatus::Refused(format!(
                        "column trade_id: value \"{}\": was already used by a trade with different content",
                        item.trade_id
                    ));
                }
            }
        }
    }
    (inserted, wait_for, conflicts)
}

/// The record of a batch without the trades that already existed.
fn rebuild_record(full: &TradesRecord, items: &[Item]) -> Option<Vec<u8>> {
    let mut record = TradesRecord::default();
    let payload = full.to_payload();
    let mut k = 0;
    let mut decoded = Vec::new();
    // The full record holds the batch's valid trades in item order.
    let _ = record::decode_trades(0, &payload, "", |t| {
        decoded.push(k);
        if items[k].status == TradeStatus::Created {
            record.push(t);
        }
        k += 1;
    });
    assert_eq!(decoded.len(), items.len(), "every item has its trade");
    record.finish()
}

fn outcome(items: Vec<Item>, accepted: bool) -> BatchOutcome {
    let mut out = BatchOutcome {
        accepted,
        created: 0,
        already_existed: 0,
        refused: 0,
        results: Vec::with_capacity(items.len()),
        bytes_appended: 0,
    };
    for item in items {
        match item.status {
            TradeStatus::Created => out.created += 1,
            TradeStatus::AlreadyExisted => out.already_existed += 1,
            TradeStatus::Refused(_) => out.refused += 1,
            TradeStatus::NotApplied => {}
        }
        out.results.push(TradeResult {
            row: item.row,
            trade_id: item.trade_id,
            status: item.status,
        });
    }
    out
}

struct Item {
    row: u64,
    trade_id: String,
    id_hash: u128,
    content: u64,
    status: TradeStatus,
}

/// A batch being filled: each trade is checked as it arrives.
pub struct Batch<'s> {
    session: &'s Session,
    source: PathBuf,
    items: Vec<Item>,
    /// The valid trades, encoded in item order.
    record: TradesRecord,
    refused: usize,
    too_many: bool,
}

impl Batch<'_> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn source(&self) -> &Path {
        &self.source
    }
}

impl TradeSink for Batch<'_> {
    fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
        if self.items.len() >= self.session.options.batch_trades_max {
            self.too_many = true;
            return;
        }
        let status = match self.session.check_trade(t) {
            Ok(()) => {
                self.record.push(t);
                TradeStatus::NotApplied
            }
            Err(reason) => {
                self.refused += 1;
                TradeStatus::Refused(reason)
            }
        };
        let valid = status == TradeStatus::NotApplied;
        self.items.push(Item {
            row: line,
            trade_id: t.trade_id.to_string(),
            id_hash: if valid {
                xxh3_128(t.trade_id.as_bytes())
            } else {
                0
            },
            content: if valid { content_key(t) } else { 0 },
            status,
        });
    }

    fn bad_row(&mut self, error: RowError) {
        if self.items.len() >= self.session.options.batch_trades_max {
            self.too_many = true;
            return;
        }
        self.refused += 1;
        self.items.push(Item {
            row: error.location.line,
            trade_id: error.id.clone(),
            id_hash: 0,
            content: 0,
            status: TradeStatus::Refused(error.describe()),
        });
    }
}

/// Opens the session of `date` after the checks an operator's `open` needs: the date is not
/// posted, not before the last posted date, and no other session is open (at most one at a
/// time: the batch of each must run in date order). The caller holds the data directory's lock.
pub fn open_checked(
    data: &DataDir,
    date: BusinessDate,
    options: SessionOptions,
) -> Result<(Session, OpenReport), EngineError> {
    let ledger = crate::ledger::Ledger::open(data.root())?;
    if ledger.posted_digest(date)?.is_some() {
        return Err(EngineError::Session(format!(
            "business date {date} is already posted"
        )));
    }
    if let Some(last) = ledger.snapshot()?.last_posted.filter(|last| date < *last) {
        return Err(EngineError::Session(format!(
            "business date {date} is earlier than the last posted date {last}"
        )));
    }
    if let Some(other) = open_dates(data, &ledger)?.into_iter().find(|d| *d != date) {
        return Err(EngineError::Session(format!(
            "the session of {other} is open: close it first (`clearhouse close {other}`)"
        )));
    }
    Session::open(data, date, options)
}

/// Dates whose journal is not sealed and whose batch is not posted: open sessions (a damaged
/// journal counts as open: it must be recovered or repaired before another day starts).
pub fn open_dates(
    data: &DataDir,
    ledger: &crate::ledger::Ledger,
) -> Result<Vec<BusinessDate>, EngineError> {
    let mut open = Vec::new();
    for date in data.session_dates()? {
        if ledger.posted_digest(date)?.is_some() {
            continue;
        }
        if !journal::verify(data.journal_dir(date)).is_ok_and(|v| v.sealed) {
            open.push(date);
        }
    }
    Ok(open)
}

/// `clearhouse journal verify`: every CRC and chain link of a session's journal, every record
/// decodes, and its header matches the date and the reference snapshot. Changes nothing.
pub fn verify(data: &DataDir, date: BusinessDate) -> Result<journal::VerifyReport, EngineError> {
    let dir = data.journal_dir(date);
    let digest = reference_digest(&data.session_reference_dir(date))?;
    let date_text = date.to_string();
    let mut problem = None;
    let report = journal::read_all(&dir, |seq, payload| {
        if problem.is_some() {
            return;
        }
        let result = if seq == 1 {
            record::decode_header(seq, payload).and_then(|h| {
                let expected = Header {
                    date,
                    reference_digest: digest,
                };
                (h == expected).then_some(()).ok_or(record::RecordError {
                    seq,
                    what: "the header does not match the date or the reference snapshot"
                        .to_string(),
                })
            })
        } else {
            record::decode_trades(seq, payload, &date_text, |_| {}).map(|_| ())
        };
        problem = result.err();
    })?;
    match problem {
        Some(e) => Err(EngineError::Session(format!("{}: {e}", dir.display()))),
        None => Ok(report),
    }
}

/// Whether a journal directory holds any segment file yet.
fn has_segments(dir: &Path) -> Result<bool, EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        if entry.file_name().to_string_lossy().ends_with(".seg") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Loads and checks the reference data kept in `dir` (platform.toml, members.csv,
/// instruments.csv), with the readers and cross-file checks of the batch.
pub fn load_reference(dir: &Path) -> Result<RefData, EngineError> {
    match crate::reference::load_dir(dir)? {
        Ok(refs) => Ok(refs),
        Err(errors) => {
            let shown: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
            Err(EngineError::Session(format!(
                "reference data in {} is invalid: {}",
                dir.display(),
                shown.join("; ")
            )))
        }
    }
}

/// The content of a trade for the id index: every field but the id (the date is the
/// session's), each text ended by `0xff` (never in UTF-8), so different contents give different
/// byte strings. One XXH3 call over a stack buffer instead of a streaming hasher fed a dozen
/// pieces (`dedup::content_hash`): it was ~5% of the server's time. The index is in memory
/// only and rebuilt with this same function from the journal, so nothing on disk depends on it.
fn content_key(t: &TradeFields<'_>) -> u64 {
    // Ids are at most 32 bytes, the date 10 and `executed_at` 255 once checked; a longer text
    // (a trade that is refused anyway) takes the streaming hash.
    const CAP: usize = 4 * 33 + 17 + 8 + 1 + 256;
    let texts = [t.business_date, t.instrument, t.buyer, t.seller];
    let at = t.executed_at.unwrap_or("");
    let len: usize = texts.iter().map(|s| s.len() + 1).sum::<usize>() + 17 + 8 + 1 + at.len();
    if len > CAP {
        return crate::dedup::content_hash(t);
    }
    let mut buf = [0u8; CAP];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    for text in texts {
        put(text.as_bytes());
        put(&[0xff]);
    }
    put(&t.price.mantissa.to_le_bytes());
    put(&t.price.scale.to_le_bytes());
    put(&t.quantity.to_le_bytes());
    match t.executed_at {
        Some(at) => {
            put(&[1]);
            put(at.as_bytes());
        }
        None => put(&[0]),
    }
    xxhash_rust::xxh3::xxh3_64(&buf[..n])
}

#[cfg(test)]
mod tests;
