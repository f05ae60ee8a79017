//! The end-of-day batch of one day directory: `clearhouse run DAY_DIR`.
//!
//! Order (SPEC §3): idempotency check → reference data → trades (validate, de-duplicate,
//! net) → conflicts → opening balances → funding check → posting → bank nets → instructions
//! → outputs rendered → one ledger transaction → output files. Nothing touches the ledger
//! before that one transaction, so a run that stops anywhere earlier changes nothing, and a
//! run that stops after it is finished by running again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clearhouse_formats::funds;
use clearhouse_formats::model::{
    BusinessDate, Deposit, FreezeEvent, Location, OpeningBalance, OpeningPosition, Platform,
    RowError, Withdrawal,
};
use clearhouse_formats::reference;
use clearhouse_formats::trades::TradeFormat;
use clearhouse_formats::Parsed;

use crate::banks::{aggregate, BankAggregation, BankNet};
use crate::book::{Book, Postings};
use crate::funding::{check_funding, Shortfall};
use crate::funds::{
    apply_deposits, apply_freezes, apply_withdrawals, check_fund_events, deposit_fingerprint,
    withdrawable_minor, FundEffects, FundFiles, FundHistory,
};
use crate::ledger::{
    BatchWrite, DepositRow, FreezeRow, Ledger, LedgerError, Snapshot, WithdrawalRow,
};
use crate::netting::Nets;
use crate::outputs::{self, Files, TableFiles};
use crate::posting::{post_nets, post_opening, PostingRefusal, DEPOSITORY};
use crate::reference::RefData;
use crate::summary::{self, Summary};
use crate::validate::TradeCounts;
use crate::{faults, EngineError};

// The instruction builder is a private module of the batch: only this module (the end-of-day
// batch, after posting) can build instructions from bank nets. Nothing on the intake path
// (server, session, journal, validation) can name it; the crate exports the types only
// (`crate::instructions`). See ARCHITECTURE.md.
#[path = "instructions.rs"]
mod instructions;
use instructions::{build_instructions, withdrawal_instruction};
pub use instructions::{Instruction, InstructionKind};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub day_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Default: `<data_dir>/out/<business_date>`.
    pub out_dir: Option<PathBuf>,
    /// Post the valid rows of a day that has invalid ones (still listed in rejects.csv).
    pub skip_invalid: bool,
}

/// How a run ended; each maps to one exit code of SPEC §5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Exit 0.
    Posted,
    /// Exit 0: the same input was posted before; its outputs were written again.
    AlreadyPosted,
    /// Exit 2: bad input, nothing posted.
    Rejected,
    /// Exit 3: shortfall under policy `abort` (or a guarantee account that cannot cover).
    Shortfall { reason: String },
    /// Exit 4.
    Conflict { reason: String },
}

impl RunStatus {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunStatus::Posted | RunStatus::AlreadyPosted => 0,
            RunStatus::Rejected => 2,
            RunStatus::Shortfall { .. } => 3,
            RunStatus::Conflict { .. } => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub status: RunStatus,
    pub business_date: Option<BusinessDate>,
    /// Where the outputs (or rejects.csv / shortfalls.csv) were written, if anywhere.
    pub out_dir: Option<PathBuf>,
    /// Every invalid row, in file order.
    pub rejects: Vec<RowError>,
    pub summary: Option<Summary>,
    pub timings: Vec<(&'static str, Duration)>,
}

/// Told about each stage as it starts, for a progress display.
pub trait Observer {
    fn stage(&mut self, _name: &'static str) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// The input files of a day directory, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct DayFiles {
    pub platform: Option<PathBuf>,
    pub members: Option<PathBuf>,
    pub instruments: Option<PathBuf>,
    pub trades: Vec<(PathBuf, TradeFormat)>,
    pub opening_balances: Option<PathBuf>,
    pub opening_positions: Option<PathBuf>,
    pub deposits: Option<PathBuf>,
    pub withdrawals: Option<PathBuf>,
    pub freezes: Option<PathBuf>,
}

impl DayFiles {
    /// Finds the input files; platform.toml falls back to the data directory's.
    pub fn discover(day_dir: &Path, data_dir: &Path) -> Result<DayFiles, EngineError> {
        let entries = std::fs::read_dir(day_dir).map_err(|e| EngineError::io(day_dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| EngineError::io(day_dir, e))?;
            if entry
                .file_type()
                .map_err(|e| EngineError::io(entry.path(), e))?
                .is_file()
            {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let mut files = DayFiles::default();
        for name in names {
            let path = day_dir.join(&name);
            match name.as_str() {
                "platform.toml" => files.platform = Some(path),
                "members.csv" => files.members = Some(path),
                "instruments.csv" => files.instruments = Some(path),
                "opening_balances.csv" => files.opening_balances = Some(path),
                "opening_positions.csv" => files.opening_positions = Some(path),
                "deposits.csv" => files.deposits = Some(path),
                "withdrawals.csv" => files.withdrawals = Some(path),
                "freezes.csv" => files.freezes = Some(path),
                _ if name.starts_with("trades") => {
                    if let Some(format) = TradeFormat::of_path(&path) {
                        files.trades.push((path, format));
                    }
                }
                _ => {}
            }
        }
        if files.platform.is_none() {
            let fallback = data_dir.join("platform.toml");
            if fallback.is_file() {
                files.platform = Some(fallback);
            }
        }
        Ok(files)
    }

    /// Every input file, for the digest.
    fn all(&self) -> Vec<&Path> {
        let mut all: Vec<&Path> = [
            &self.platform,
            &self.members,
            &self.instruments,
            &self.opening_balances,
            &self.opening_positions,
            &self.deposits,
            &self.withdrawals,
            &self.freezes,
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect();
        all.extend(self.trades.iter().map(|(p, _)| p.as_path()));
        all
    }
}

/// A digest of everything that decides a batch: each input file's name and bytes, and the
/// options that change what is posted. Identical input ⇒ identical digest ([`crate::digest`]).
pub fn input_digest(files: &DayFiles, skip_invalid: bool) -> Result<String, EngineError> {
    crate::digest::input_digest(&files.all(), skip_invalid, crate::intake::intake_threads())
}

pub(crate) struct Timer {
    started: Instant,
    stages: Vec<(&'static str, Duration)>,
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            started: Instant::now(),
            stages: Vec::new(),
        }
    }

    pub(crate) fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.stages.push((stage, now - self.started));
        self.started = now;
    }
}

/// Runs the whole day. Errors are failures to run at all (exit 1); every outcome of the input
/// itself, bad or not, is a [`RunReport`].
pub fn run_day(opts: &RunOptions, observer: &mut dyn Observer) -> Result<RunReport, EngineError> {
    let timer = Timer::new();
    observer.stage("digest");
    let files = DayFiles::discover(&opts.day_dir, &opts.data_dir)?;
    let mut missing = Vec::new();
    for (file, name) in [
        (&files.platform, "platform.toml"),
        (&files.members, "members.csv"),
        (&files.instruments, "instruments.csv"),
    ] {
        if file.is_none() {
            missing.push(name);
        }
    }
    let digest = input_digest(&files, opts.skip_invalid)?;
    let mut ledger = Ledger::open(&opts.data_dir)?;
    let timer = match restore_if_posted(opts, &ledger, &digest, timer)? {
        Ok(report) => return Ok(report),
        Err(timer) => timer,
    };

    observer.stage("reference data");
    let mut rejects = Vec::new();
    for name in &missing {
        rejects.push(RowError::new(
            Location::new(opts.day_dir.join(name), 0),
            "",
            "",
            "",
            format!("required file {name} is missing from the day directory"),
        ));
    }
    if files.trades.is_empty() {
        rejects.push(RowError::new(
            Location::new(&opts.day_dir, 0),
            "",
            "",
            "",
            "no trade file (trades*.csv, trades*.jsonl or trades*.parquet) in the day directory",
        ));
    }
    if !rejects.is_empty() {
        return reject(opts, None, rejects, timer);
    }
    let mut timer = timer;
    let loaded = load_reference(&files)?;
    let (refs, openings) = match loaded {
        Ok(ok) => ok,
        Err(errors) => return reject(opts, None, errors, timer),
    };
    timer.lap("reference");

    observer.stage("trades");
    let validated = crate::intake::validate_trade_files(&refs, &files.trades)?;
    let source = SourceInput {
        refs: &refs,
        openings,
        digest,
        first_source: files.trades[0].0.clone(),
    };
    run_validated(opts, &mut ledger, source, validated, timer, observer)
}

/// What a trade source hands to the shared part of the batch.
pub(crate) struct SourceInput<'r> {
    pub refs: &'r RefData,
    pub openings: Openings,
    /// The batch key's digest of everything that decides the batch.
    pub digest: String,
    /// Where a day without a single trade is reported.
    pub first_source: PathBuf,
}

/// Returns the report of an input already posted with `digest` (its stored outputs written
/// again), or gives the timer back.
pub(crate) fn restore_if_posted(
    opts: &RunOptions,
    ledger: &Ledger,
    digest: &str,
    mut timer: Timer,
) -> Result<Result<RunReport, Timer>, EngineError> {
    let Some(date) = ledger.posted_date_of_digest(digest)? else {
        timer.lap("digest");
        return Ok(Err(timer));
    };
    let out_dir = out_dir_for(opts, date);
    let stored = ledger.outputs(date)?;
    outputs::write_files(&out_dir, &stored)?;
    timer.lap("restore");
    Ok(Ok(RunReport {
        status: RunStatus::AlreadyPosted,
        business_date: Some(date),
        out_dir: Some(out_dir),
        rejects: Vec::new(),
        summary: None,
        timings: timer.stages,
    }))
}

/// Everything after the trades are read and validated, whatever their source (trade files or
/// a sealed session journal): the date, conflicts, fund events, netting, posting, bank nets,
/// instructions, outputs, the ledger transaction. One code path for both.
pub(crate) fn run_validated(
    opts: &RunOptions,
    ledger: &mut Ledger,
    source: SourceInput<'_>,
    validated: crate::validate::ValidatedTrades,
    mut timer: Timer,
    observer: &mut dyn Observer,
) -> Result<RunReport, EngineError> {
    let SourceInput {
        refs,
        openings,
        digest,
        first_source,
    } = source;
    let counts = validated.counts;
    let mut rejects = validated.rejects;
    timer.lap("read+validate");
    faults::point("validated");

    let Some(day) = validated.day else {
        if rejects.is_empty() {
            rejects.push(RowError::new(
                Location::new(&first_source, 1),
                "",
                "",
                "",
                "the day holds no trade, so its business date is unknown",
            ));
        }
        return reject(opts, None, rejects, timer);
    };
    let date = day.date;
    let snapshot = ledger.snapshot()?;
    if let Some(status) = conflict(ledger, &snapshot, date, &openings)? {
        return Ok(RunReport {
            status,
            business_date: Some(date),
            out_dir: None,
            rejects,
            summary: None,
            timings: timer.stages,
        });
    }
    let history = ledger.fund_history(
        &openings
            .deposits
            .iter()
            .map(|d| d.bank_ref.as_str())
            .collect::<Vec<_>>(),
        &openings
            .withdrawals
            .iter()
            .map(|w| w.request_id.as_str())
            .collect::<Vec<_>>(),
        &openings
            .freezes
            .iter()
            .map(|f| f.freeze_id.as_str())
            .collect::<Vec<_>>(),
    )?;
    // Opening files and fund events move money outside the trades: a bad row there cannot
    // be skipped.
    let mut setup_errors = check_openings(refs, &openings);
    setup_errors.extend(check_fund_events(
        refs,
        &history,
        &openings.deposits,
        &openings.withdrawals,
        &openings.freezes,
        &openings.fund_files(),
    ));
    let skip = opts.skip_invalid && setup_errors.is_empty();
    rejects.extend(setup_errors);
    if !rejects.is_empty() && !skip {
        return reject(opts, Some(date), rejects, timer);
    }
    let nets = match validated.netting.finish(refs) {
        Ok(nets) => nets,
        Err(EngineError::Overflow { what }) => {
            rejects.push(RowError::new(
                Location::new(&opts.day_dir, 0),
                "",
                "",
                "",
                format!("{what} exceeds the 64-bit range of amounts"),
            ));
            return reject(opts, Some(date), rejects, timer);
        }
        Err(other) => return Err(other),
    };
    timer.lap("net");
    faults::point("netted");

    observer.stage("posting");
    let batch = Batch {
        opts,
        refs,
        date,
        digest,
        counts,
        rejects,
        openings,
        history,
    };
    batch.post(ledger, &snapshot, &nets, timer, observer)
}

/// The day's inputs besides reference data and trades: the opening files of a new ledger and
/// the fund events.
pub(crate) struct Openings {
    pub(crate) balances: Vec<OpeningBalance>,
    pub(crate) positions: Vec<OpeningPosition>,
    pub(crate) balances_file: Option<PathBuf>,
    pub(crate) positions_file: Option<PathBuf>,
    pub(crate) deposits: Vec<Deposit>,
    pub(crate) withdrawals: Vec<Withdrawal>,
    pub(crate) freezes: Vec<FreezeEvent>,
    pub(crate) deposits_file: PathBuf,
    pub(crate) withdrawals_file: PathBuf,
    pub(crate) freezes_file: PathBuf,
}

impl Openings {
    /// A source without opening files or fund events (a session journal).
    pub(crate) fn none() -> Openings {
        Openings {
            balances: Vec::new(),
            positions: Vec::new(),
            balances_file: None,
            positions_file: None,
            deposits: Vec::new(),
            withdrawals: Vec::new(),
            freezes: Vec::new(),
            deposits_file: "deposits.csv".into(),
            withdrawals_file: "withdrawals.csv".into(),
            freezes_file: "freezes.csv".into(),
        }
    }

    fn fund_files(&self) -> FundFiles<'_> {
        FundFiles {
            deposits: &self.deposits_file,
            withdrawals: &self.withdrawals_file,
            freezes: &self.freezes_file,
        }
    }
}

pub(crate) type Loaded = Result<(RefData, Openings), Vec<RowError>>;

pub(crate) fn load_reference(files: &DayFiles) -> Result<Loaded, EngineError> {
    let platform_path = files.platform.as_ref().expect("checked by the caller");
    let members_path = files.members.as_ref().expect("checked by the caller");
    let instruments_path = files.instruments.as_ref().expect("checked by the caller");
    let mut errors = Vec::new();
    let platform: Option<Platform> = match reference::read_platform(platform_path)? {
        Ok(p) => Some(p),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let members = take(&mut errors, reference::read_members(members_path)?);
    let instruments = take(&mut errors, reference::read_instruments(instruments_path)?);
    let balances = match &files.opening_balances {
        Some(p) => take(&mut errors, reference::read_opening_balances(p)?),
        None => Vec::new(),
    };
    let positions = match &files.opening_positions {
        Some(p) => take(&mut errors, reference::read_opening_positions(p)?),
        None => Vec::new(),
    };
    let deposits = match &files.deposits {
        Some(p) => take(&mut errors, funds::read_deposits(p)?),
        None => Vec::new(),
    };
    let withdrawals = match &files.withdrawals {
        Some(p) => take(&mut errors, funds::read_withdrawals(p)?),
        None => Vec::new(),
    };
    let freezes = match &files.freezes {
        Some(p) => take(&mut errors, funds::read_freezes(p)?),
        None => Vec::new(),
    };
    let Some(platform) = platform else {
        return Ok(Err(errors));
    };
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let refs = match RefData::build(platform, members, instruments, members_path) {
        Ok(refs) => refs,
        Err(errors) => return Ok(Err(errors)),
    };
    Ok(Ok((
        refs,
        Openings {
            balances,
            positions,
            balances_file: files.opening_balances.clone(),
            positions_file: files.opening_positions.clone(),
            deposits,
            withdrawals,
            freezes,
            deposits_file: files
                .deposits
                .clone()
                .unwrap_or_else(|| "deposits.csv".into()),
            withdrawals_file: files
                .withdrawals
                .clone()
                .unwrap_or_else(|| "withdrawals.csv".into()),
            freezes_file: files
                .freezes
                .clone()
                .unwrap_or_else(|| "freezes.csv".into()),
        },
    )))
}

/// The rows of a parsed file, its errors moved to `errors`.
fn take<T>(errors: &mut Vec<RowError>, parsed: Parsed<T>) -> Vec<T> {
    errors.extend(parsed.errors);
    parsed.rows
}

/// Opening balances and positions must name known accounts, members and instruments, and
/// their totals per custody account (bank and currency) and per instrument, which the opening
/// entries post as counter-legs, must fit an amount.
pub(crate) fn check_openings(refs: &RefData, openings: &Openings) -> Vec<RowError> {
    let mut errors = Vec::new();
    if let Some(file) = &openings.balances_file {
        let mut custody_totals: BTreeMap<(&str, &str), Option<i64>> = BTreeMap::new();
        for b in &openings.balances {
            let Some(bank) = refs.bank_of(&b.account) else {
                errors.push(RowError::new(
                    Location::new(file, b.line),
                    &b.account,
                    "account",
                    &b.account,
                    "is neither a member nor one of the platform's accounts",
                ));
                continue;
            };
            let total = custody_totals
                .entry((bank, b.currency.code()))
                .or_insert(Some(0));
            let before = *total;
            *total = total.and_then(|t| t.checked_add(b.balance.0));
            if before.is_some() && total.is_none() {
                errors.push(RowError::new(
                    Location::new(file, b.line),
                    &b.account,
                    "balance",
                    &b.currency.format(b.balance),
                    format!(
                        "takes the opening balances held at bank {bank} in {} beyond the \
                         64-bit range of amounts",
                        b.currency.code()
                    ),
                ));
            }
        }
    }
    if let Some(file) = &openings.positions_file {
        let mut instrument_totals: BTreeMap<&str, Option<i64>> = BTreeMap::new();
        for p in &openings.positions {
            let total = instrument_totals.entry(&p.instrument).or_insert(Some(0));
            let before = *total;
            *total = total.and_then(|t| t.checked_add(p.quantity));
            if before.is_some() && total.is_none() {
                errors.push(RowError::new(
                    Location::new(file, p.line),
                    &p.member_id,
                    "quantity",
                    &p.quantity.to_string(),
                    format!(
                        "takes the opening positions in {} beyond the 64-bit range of quantities",
                        p.instrument
                    ),
                ));
            }
            if refs.member_idx(&p.member_id).is_none() {
                errors.push(RowError::new(
                    Location::new(file, p.line),
                    &p.member_id,
                    "member_id",
                    &p.member_id,
                    "is not in members.csv",
                ));
            }
            if refs.instrument_idx(&p.instrument).is_none() {
                errors.push(RowError::new(
                    Location::new(file, p.line),
                    &p.member_id,
                    "instrument",
                    &p.instrument,
                    "is not in instruments.csv",
                ));
            }
        }
    }
    errors
}

/// Exit-4 conflicts: a posted date with other input, a date before the last posted one,
/// opening files given to a ledger that already holds balances.
fn conflict(
    ledger: &Ledger,
    snapshot: &Snapshot,
    date: BusinessDate,
    openings: &Openings,
) -> Result<Option<RunStatus>, EngineError> {
    let reason = if ledger.posted_digest(date)?.is_some() {
        Some(format!(
            "business date {date} was already posted with different input"
        ))
    } else if let Some(last) = snapshot.last_posted.filter(|last| date < *last) {
        Some(format!(
            "business date {date} is earlier than the last posted date {last}"
        ))
    } else if !snapshot.is_new()
        && (openings.balances_file.is_some() || openings.positions_file.is_some())
    {
        Some(
            "opening_balances.csv / opening_positions.csv given to a ledger that already holds \
             balances; remove them from the day directory"
                .to_string(),
        )
    } else {
        None
    };
    Ok(reason.map(|reason| RunStatus::Conflict { reason }))
}

fn out_dir_for(opts: &RunOptions, date: BusinessDate) -> PathBuf {
    opts.out_dir
        .clone()
        .unwrap_or_else(|| opts.data_dir.join("out").join(date.to_string()))
}

/// Exit 2: writes rejects.csv where the outputs would have gone and posts nothing.
fn reject(
    opts: &RunOptions,
    date: Option<BusinessDate>,
    rejects: Vec<RowError>,
    mut timer: Timer,
) -> Result<RunReport, EngineError> {
    let out_dir = match (date, &opts.out_dir) {
        (_, Some(dir)) => dir.clone(),
        (Some(d), None) => out_dir_for(opts, d),
        // A day rejected before its business date is known (a bad header, a missing file)
        // still gets its rejects.csv, in a directory that cannot collide with a real date.
        (None, None) => opts.data_dir.join("out").join("undated"),
    };
    let mut files = Files::new();
    outputs::render_rejects(&rejects, &mut files)?;
    outputs::write_files(&out_dir, &files)?;
    timer.lap("reject");
    Ok(RunReport {
        status: RunStatus::Rejected,
        business_date: date,
        out_dir: Some(out_dir),
        rejects,
        summary: None,
        timings: timer.stages,
    })
}

/// The bank holding an account's money: from the reference data, else as the ledger knows it.
fn bank_holding(refs: &RefData, snapshot: &Snapshot, account: &str) -> Option<String> {
    refs.bank_of(account)
        .map(str::to_string)
        .or_else(|| snapshot.account_banks.get(account).cloned())
}

/// An output file and its stored form for the ledger, both made on the thread that rendered
/// it.
struct StoredFile {
    name: String,
    content: Vec<u8>,
    encoding: &'static str,
    stored: Vec<u8>,
}

/// Each file compressed ([`crate::ledger::ZSTD`]).
fn stored_files(files: Files) -> Vec<StoredFile> {
    files
        .into_iter()
        .map(|(name, content)| {
            let stored = crate::ledger::encode_output(&content);
            StoredFile {
                name,
                content,
                encoding: crate::ledger::ZSTD,
                stored,
            }
        })
        .collect()
}

/// The outputs that need only the nets, rendered while the batch posts: security positions
/// (a row per member and instrument), the CSV on one thread, the Parquet file and member
/// positions on the other. The ledger keeps the Parquet file and derives the CSV from it
/// ([`crate::ledger::CSV_OF_PARQUET`]): only the CSV's header line is stored.
fn render_from_nets(
    refs: &RefData,
    nets: &Nets,
    which: TableFiles,
) -> Result<Vec<StoredFile>, EngineError> {
    let mut files = Files::new();
    outputs::render_security_positions(refs, nets, which, &mut files)?;
    if which == TableFiles::Parquet {
        outputs::render_member_positions(refs, nets, &mut files)?;
        return Ok(stored_files(files));
    }
    Ok(files
        .into_iter()
        .map(|(name, content)| {
            let header_len = content
                .iter()
                .position(|&b| b == b'\n')
                .map_or(0, |n| n + 1);
            StoredFile {
                stored: content[..header_len].to_vec(),
                name,
                content,
                encoding: crate::ledger::CSV_OF_PARQUET,
            }
        })
        .collect())
}

/// What the output files of a posted batch are rendered from.
struct Rendering<'a> {
    date: BusinessDate,
    refs: &'a RefData,
    book: &'a Book,
    effects: &'a FundEffects,
    postings: &'a Postings,
    bank_nets: &'a [BankNet],
    instructions: &'a [Instruction],
    rejects: &'a [RowError],
    shortfalls: &'a [Shortfall],
    defaults: &'a [crate::posting::Default],
}

/// The outputs rendered from the posted book, each compressed on the thread that rendered
/// it: postings.csv (a row per leg) in two halves on two threads, the small files after the
/// first half.
fn render_from_book(r: &Rendering<'_>) -> Result<Vec<StoredFile>, EngineError> {
    let legs = r.postings.sorted();
    let (head, tail) = legs.split_at(legs.len() / 2);
    let rendered_part = |part, header| -> Result<(Vec<u8>, Vec<u8>), EngineError> {
        let content = outputs::render_postings_part(r.postings, part, header)?;
        let stored = crate::ledger::encode_output(&content);
        Ok((content, stored))
    };
    std::thread::scope(|scope| {
        let second = scope.spawn(|| rendered_part(tail, false));
        let first = rendered_part(head, true);
        let mut files = Files::new();
        let small = (|| -> Result<(), EngineError> {
            outputs::render_bank_positions(r.bank_nets, &mut files)?;
            outputs::render_instructions(r.instructions, &mut files)?;
            crate::payment_files::render(r.date, &r.refs.platform, r.instructions, &mut files)?;
            outputs::render_balances(
                r.book,
                |account, currency, _| withdrawable_minor(r.book, r.effects, account, currency),
                &mut files,
            )?;
            outputs::render_rejects(r.rejects, &mut files)?;
            outputs::render_shortfalls(r.refs, r.shortfalls, &mut files)?;
            outputs::render_defaults(r.refs, r.defaults, &mut files)?;
            Ok(())
        })();
        let second = second.join().expect("rendering panicked");
        small?;
        let ((mut content, mut stored), (content_tail, stored_tail)) = (first?, second?);
        content.extend_from_slice(&content_tail);
        stored.extend_from_slice(&stored_tail);
        let mut all = stored_files(files);
        all.push(StoredFile {
            name: outputs::POSTINGS_FILE.to_string(),
            content,
            encoding: crate::ledger::ZSTD,
            stored,
        });
        Ok(all)
    })
}

/// Everything known once the trades are netted: what the posting stages need.
struct Batch<'a> {
    opts: &'a RunOptions,
    refs: &'a RefData,
    date: BusinessDate,
    digest: String,
    counts: TradeCounts,
    rejects: Vec<RowError>,
    openings: Openings,
    history: FundHistory,
}

impl Batch<'_> {
    fn post(
        self,
        ledger: &mut Ledger,
        snapshot: &Snapshot,
        nets: &Nets,
        timer: Timer,
        observer: &mut dyn Observer,
    ) -> Result<RunReport, EngineError> {
        let refs = self.refs;
        // Posting is one thread's work: the outputs that need only the nets render on the
        // other core meanwhile. (A refused batch discards them.)
        std::thread::scope(|scope| {
            let early = [TableFiles::Csv, TableFiles::Parquet]
                .map(|which| scope.spawn(move || render_from_nets(refs, nets, which)));
            self.post_with(ledger, snapshot, nets, timer, observer, early)
        })
    }

    fn post_with(
        self,
        ledger: &mut Ledger,
        snapshot: &Snapshot,
        nets: &Nets,
        mut timer: Timer,
        observer: &mut dyn Observer,
        early: [std::thread::ScopedJoinHandle<'_, Result<Vec<StoredFile>, EngineError>>; 2],
    ) -> Result<RunReport, EngineError> {
        let refs = self.refs;
        let mut external: BTreeSet<String> = refs
            .platform
            .banks
            .values()
            .map(|b| b.custody_account.clone())
            .collect();
        external.insert(DEPOSITORY.to_string());
        let mut book = Book::from_snapshot(snapshot, external);
        let mut outside: BTreeMap<(String, String), i64> = BTreeMap::new();
        if snapshot.is_new() {
            post_opening(
                refs,
                &self.openings.balances,
                &self.openings.positions,
                &mut book,
            )?;
            for b in &self.openings.balances {
                let bank = refs.bank_of(&b.account).unwrap_or_default().to_string();
                *outside
                    .entry((bank, b.currency.code().to_string()))
                    .or_default() += b.balance.0;
            }
        }
        let mut effects = FundEffects::default();
        apply_deposits(
            refs,
            &self.openings.deposits,
            &self.history,
            &mut book,
            &mut effects,
        )?;
        apply_freezes(
            refs,
            &self.openings.freezes,
            &self.history,
            &mut book,
            &mut effects,
            &self.openings.freezes_file,
        );
        let shortfalls = check_funding(refs, nets, &book);
        let defaults = match post_nets(refs, nets, &shortfalls, &mut book)? {
            Ok(defaults) => defaults,
            Err(refusal) => return self.refuse(refusal, &shortfalls, timer),
        };
        apply_withdrawals(
            refs,
            &self.openings.withdrawals,
            &self.history,
            &mut book,
            &mut effects,
            &self.openings.withdrawals_file,
        )?;
        for (key, amount) in &effects.outside {
            *outside.entry(key.clone()).or_default() += amount;
        }
        timer.lap("post");

        observer.stage("instructions");
        let bank_of = |account: &str| bank_holding(refs, snapshot, account);
        let BankAggregation {
            nets: bank_nets,
            custody_after,
        } = aggregate(&book, bank_of, &snapshot.custody, &outside)?;
        let mut instructions = build_instructions(self.date, &refs.platform, &bank_nets)?;
        for w in &effects.withdrawals_paid {
            let member = refs.member(refs.member_idx(&w.member_id).expect("checked"));
            instructions.push(withdrawal_instruction(
                self.date,
                &refs.platform,
                member,
                &w.request_id,
                w.currency.code(),
                w.amount.0,
            ));
        }
        // Failed legs that reconciliation carried to this cycle are re-sent (docs/formats.md).
        instructions.extend(crate::recon::carried_instructions(
            self.date,
            &snapshot.carries,
        )?);
        instructions.sort();
        // Last: splitting keeps the order (phase, id, part) that a re-sort by id would break.
        let instructions = crate::channels::assign(&refs.platform, instructions)?;
        timer.lap("instruct");

        observer.stage("outputs");
        let postings = std::sync::Arc::new(book.take_postings());
        let mut rejects = self.rejects.clone();
        rejects.extend(effects.refused.iter().cloned());
        let out_dir = out_dir_for(self.opts, self.date);
        // The outputs render on the other core while this one opens the ledger transaction
        // and writes the batch's balances, positions and legs; the summary and the outputs
        // join them last.
        let (pending, rendered) = std::thread::scope(|scope| {
            let rendering = scope.spawn(|| {
                render_from_book(&Rendering {
                    date: self.date,
                    refs,
                    book: &book,
                    effects: &effects,
                    postings: &postings,
                    bank_nets: &bank_nets,
                    instructions: &instructions,
                    rejects: &rejects,
                    shortfalls: &shortfalls,
                    defaults: &defaults,
                })
            });
            let write = self.batch_write(
                &book,
                &effects,
                &instructions,
                snapshot,
                custody_after,
                &postings,
            );
            let begun = ledger.begin_batch(snapshot.version, &write);
            (begun, rendering.join().expect("rendering panicked"))
        });
        // Every handle is joined, and any rendering that failed rolls the batch back below.
        let rendered = early
            .into_iter()
            .map(|h| h.join().expect("rendering panicked"))
            .fold(rendered, |all, part| {
                let mut all = all?;
                all.extend(part?);
                Ok(all)
            });
        let mut rendered = match rendered {
            Ok(rendered) => rendered,
            Err(e) => {
                ledger.abort_batch();
                return Err(e);
            }
        };
        if let Err(e) = pending {
            return self.lost_race(e, ledger, out_dir, rejects, timer);
        }
        timer.lap("render");
        let summary = summary::build(
            refs,
            self.date,
            &self.digest,
            &self.counts,
            nets,
            &instructions,
            shortfalls.len(),
            defaults.len(),
            "posted",
        );
        let summary_json = summary::to_json(&summary, &timer.stages);
        rendered.extend(stored_files(vec![(
            "summary.json".to_string(),
            summary_json.clone().into_bytes(),
        )]));
        rendered.sort_by(|a, b| a.name.cmp(&b.name));
        let (files, stored): (Files, Vec<(&str, Vec<u8>)>) = rendered
            .into_iter()
            .map(|f| ((f.name, f.content), (f.encoding, f.stored)))
            .unzip();
        let stored: Vec<(&str, &str, &[u8])> = files
            .iter()
            .zip(&stored)
            .map(|((name, _), (encoding, stored))| (name.as_str(), *encoding, stored.as_slice()))
            .collect();

        // The outputs are written and synced under temporary names while the ledger stores
        // its copies and commits; they are renamed into place only once the commit has
        // succeeded.
        let (committed, staged) = std::thread::scope(|scope| {
            let staging = scope.spawn(|| outputs::stage_files(&out_dir, &files));
            let committed = ledger.finish_batch_stored(&summary_json, &stored);
            (
                committed,
                staging.join().expect("an output writer panicked"),
            )
        });
        if let Err(e) = committed {
            if let Ok(staged) = staged {
                staged.discard();
            }
            return self.lost_race(e, ledger, out_dir, rejects, timer);
        }
        faults::point("posted");
        timer.lap("commit");

        // The ledger's checkpoint (the batch copied from the WAL into the ledger file) runs
        // while the outputs are renamed into place.
        let checkpointer = ledger.checkpointer();
        let written = std::thread::scope(|scope| {
            if let Some(c) = checkpointer {
                scope.spawn(|| c.run());
            }
            staged.and_then(outputs::Staged::publish)
        });
        written.map_err(|cause| EngineError::OutputsNotWritten {
            date: self.date.to_string(),
            cause: Box::new(cause),
        })?;
        timer.lap("write");
        Ok(RunReport {
            status: RunStatus::Posted,
            business_date: Some(self.date),
            out_dir: Some(out_dir),
            rejects,
            summary: Some(summary),
            timings: timer.stages,
        })
    }

    /// What the ledger stores of a batch besides its summary and outputs.
    fn batch_write(
        &self,
        book: &Book,
        effects: &FundEffects,
        instructions: &[Instruction],
        snapshot: &Snapshot,
        custody_after: BTreeMap<(String, String), i64>,
        postings: &std::sync::Arc<Postings>,
    ) -> BatchWrite {
        let refs = self.refs;
        let bank_of = |account: &str| bank_holding(refs, snapshot, account);
        // Every member is registered with its bank, traded or not, so that later operations
        // (a suspense assignment) know where its money is held.
        let account_banks = book
            .balances()
            .keys()
            .map(|(account, _)| account)
            .chain(
                refs.platform
                    .platform_accounts()
                    .map(|a| a.to_string())
                    .iter(),
            )
            .chain(refs.members.iter().map(|m| &m.member_id))
            .filter_map(|account| bank_of(account).map(|bank| (account.clone(), bank)))
            .collect();
        BatchWrite {
            business_date: self.date.to_string(),
            input_digest: self.digest.clone(),
            account_banks,
            balances: book.changed_balances(),
            positions: book.changed_position_sets(),
            custody: custody_after,
            entries: std::sync::Arc::clone(postings),
            deposits: effects
                .allocations
                .iter()
                .map(|a| DepositRow {
                    bank_ref: a.deposit.bank_ref.clone(),
                    fingerprint: deposit_fingerprint(&a.deposit),
                    bank: a.deposit.bank.clone(),
                    currency: a.deposit.currency.code().to_string(),
                    amount_minor: a.deposit.amount.0,
                    account: a.account.clone(),
                    matched_by: a.matched_by.to_string(),
                    channel: a.deposit.channel.as_str().to_string(),
                })
                .collect(),
            withdrawals: effects
                .withdrawals_paid
                .iter()
                .map(|w| WithdrawalRow {
                    request_id: w.request_id.clone(),
                    member_id: w.member_id.clone(),
                    currency: w.currency.code().to_string(),
                    amount_minor: w.amount.0,
                })
                .collect(),
            freezes: effects
                .freezes_applied
                .iter()
                .map(|f| FreezeRow {
                    freeze_id: f.freeze_id.clone(),
                    member_id: f.member_id.clone(),
                    currency: f.currency.code().to_string(),
                    amount_minor: f.amount.0,
                })
                .collect(),
            released_freezes: effects
                .freezes_released
                .iter()
                .map(|r| r.freeze_id.clone())
                .collect(),
            platform_accounts: crate::recon::platform_account_rows(&refs.platform),
            instructions: instructions
                .iter()
                .map(crate::recon::instruction_row)
                .collect(),
            carried: snapshot
                .carries
                .iter()
                .map(|c| c.instruction_id.clone())
                .collect(),
        }
    }

    /// The batch could not commit. Another run committed first: the batch key decides. The
    /// same input posted means this run's work is done (exit 0, its outputs restored); the
    /// date taken by other input is a conflict; anything else is a race to run again.
    fn lost_race(
        &self,
        error: LedgerError,
        ledger: &mut Ledger,
        out_dir: PathBuf,
        rejects: Vec<RowError>,
        mut timer: Timer,
    ) -> Result<RunReport, EngineError> {
        if !matches!(
            error,
            LedgerError::AlreadyPosted { .. } | LedgerError::Raced { .. }
        ) {
            return Err(error.into());
        }
        match ledger.posted_digest(self.date)? {
            Some(posted) if posted == self.digest => {
                outputs::write_files(&out_dir, &ledger.outputs(self.date)?)?;
                timer.lap("restore");
                Ok(RunReport {
                    status: RunStatus::AlreadyPosted,
                    business_date: Some(self.date),
                    out_dir: Some(out_dir),
                    rejects: Vec::new(),
                    summary: None,
                    timings: timer.stages,
                })
            }
            Some(_) => Ok(RunReport {
                status: RunStatus::Conflict {
                    reason: format!(
                        "business date {} was posted with different input by a concurrent run",
                        self.date
                    ),
                },
                business_date: Some(self.date),
                out_dir: None,
                rejects,
                summary: None,
                timings: timer.stages,
            }),
            None => Err(error.into()),
        }
    }

    /// Exit 3: shortfalls.csv (and rejects.csv) written, nothing posted.
    fn refuse(
        self,
        refusal: PostingRefusal,
        shortfalls: &[Shortfall],
        mut timer: Timer,
    ) -> Result<RunReport, EngineError> {
        let reason = match refusal {
            PostingRefusal::Shortfalls => format!(
                "{} shortfall(s) under policy abort; see shortfalls.csv",
                shortfalls.len()
            ),
            PostingRefusal::GuaranteeShort {
                currency,
                needed_minor,
                available_minor,
            } => {
                let c = clearhouse_formats::money::Currency::from_code(&currency)
                    .expect("a currency of the reference data");
                format!(
                    "guarantee account {} holds {} {currency} available, the shortfalls need {}",
                    self.refs.platform.guarantee_account,
                    c.format(clearhouse_formats::money::AmountMinor(available_minor)),
                    c.format(clearhouse_formats::money::AmountMinor(needed_minor)),
                )
            }
        };
        let out_dir = out_dir_for(self.opts, self.date);
        let mut files = Files::new();
        outputs::render_shortfalls(self.refs, shortfalls, &mut files)?;
        outputs::render_rejects(&self.rejects, &mut files)?;
        outputs::write_files(&out_dir, &files)?;
        timer.lap("refuse");
        Ok(RunReport {
            status: RunStatus::Shortfall { reason },
            business_date: Some(self.date),
            out_dir: Some(out_dir),
            rejects: self.rejects,
            summary: None,
            timings: timer.stages,
        })
    }
}

#[cfg(test)]
mod instruction_tests {
    //! The instruction builder can only be tested here: it is private to the batch.

    use std::collections::BTreeMap;

    use clearhouse_formats::model::{Bank, Platform, ShortfallPolicy};
    use proptest::prelude::*;

    use super::instructions::build_instructions;
    use crate::banks::BankNet;
    use clearhouse_formats::model::BusinessDate;

    fn platform(banks: usize) -> Platform {
        Platform {
            name: "P".into(),
            delivery_bank: "B0".into(),
            delivery_account: "DLV".into(),
            fee_account: "FEE".into(),
            guarantee_account: "GUARANTEE".into(),
            suspense_account: "SUSPENSE".into(),
            shortfall_policy: ShortfallPolicy::Abort,
            securities_check: true,
            banks: (0..banks)
                .map(|i| {
                    let id = format!("B{i}");
                    let bank = Bank {
                        id: id.clone(),
                        custody_account: format!("CUS-{id}"),
                        bic: None,
                    };
                    (id, bank)
                })
                .collect(),
            channels: None,
        }
    }

    proptest! {
        /// Pay-ins are phase 1 into the delivery account, pay-outs phase 2 out of it, every
        /// amount is positive, and per currency the delivery account nets to zero and never
        /// dips when the phases run in order.
        #[test]
        fn pay_ins_first_and_the_delivery_account_nets_to_zero(
            nets in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 1..6)
        ) {
            let banks = nets.len() + 1;
            let total: i64 = nets.iter().sum();
            let mut bank_nets: Vec<BankNet> = nets
                .iter()
                .chain(std::iter::once(&-total))
                .enumerate()
                .filter(|(_, n)| **n != 0)
                .map(|(i, n)| BankNet { bank: format!("B{i}"), currency: "CNY".into(), net_minor: *n })
                .collect();
            bank_nets.sort();
            let date = BusinessDate::parse("2026-11-25").unwrap();
            let instructions = build_instructions(date, &platform(banks), &bank_nets).unwrap();
            let mut level: BTreeMap<String, i128> = BTreeMap::new();
            let mut phases = Vec::new();
            for i in &instructions {
                prop_assert!(i.amount_minor > 0);
                prop_assert_eq!(i.phase == 1, i.credit_account == "DLV");
                prop_assert_eq!(i.phase == 2, i.debit_account == "DLV");
                let sign = if i.phase == 1 { 1 } else { -1 };
                let at = level.entry(i.currency.clone()).or_default();
                *at += sign * i128::from(i.amount_minor);
                prop_assert!(*at >= 0, "the delivery account dipped");
                phases.push(i.phase);
            }
            prop_assert!(phases.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(level.values().all(|s| *s == 0));
        }
    }
}
