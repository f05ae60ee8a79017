//! Matching bank entries to instructions: a pure function from what the ledger expects and
//! what the banks reported to the statuses, the breaks and the rows of recon.csv.
//!
//! Order, each pass only over what the earlier ones left:
//! 1. **by id**: the entry's instruction id (CSV, camt `InstrId`) or end-to-end id names an
//!    instruction of the date; a camt entry must also be on that instruction's account, on the
//!    side it moves (the debit account for `DBIT`, the credit account for `CRDT`; reversed for
//!    a reversal). Amount or currency differing is an `amount_mismatch`.
//! 2. **deposits**: the entry's bank reference is a deposit the ledger booked (a statement
//!    lists the deposits too); a different amount is an `amount_mismatch`.
//! 3. **by amount, account and date**: a camt entry booked on the date, on the account and
//!    side of an instruction leg not yet matched, for exactly its amount and currency; the
//!    first such instruction by id.
//! 4. what is left is an `unmatched_entry`.
//!
//! Statuses only move forward (`pending` → `settled` → `failed`): evidence seen by an earlier
//! run is never lost when a later run is given fewer files, and a failure is final because
//! its carry or return is already posted.

use std::collections::{BTreeMap, BTreeSet};

use clearhouse_formats::bankfiles::{
    BalanceKind, BankEntry, Direction, EntryStatus, StatementBalance,
};
use clearhouse_formats::model::BusinessDate;
use clearhouse_formats::money::{AmountMinor, Currency};

use crate::ledger::InstructionRow;

/// Where an instruction stands with the banks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// No bank has confirmed it yet.
    Pending,
    Settled,
    /// Failed or returned: carried to the next cycle, or (a withdrawal) credited back.
    Failed,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Settled => "settled",
            Status::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "pending" => Some(Status::Pending),
            "settled" => Some(Status::Settled),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
}

/// How a failed instruction is resolved (docs/formats.md, "Failed instructions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Pay-in, pay-out, in-book: re-sent by the next batch.
    Carried,
    /// Withdrawal: the money is still in the custody account; credited back to the member.
    Returned,
}

impl Resolution {
    pub fn as_str(&self) -> &'static str {
        match self {
            Resolution::Carried => "carried",
            Resolution::Returned => "returned",
        }
    }

    pub fn for_kind(kind: &str) -> Resolution {
        if kind == "withdrawal" {
            Resolution::Returned
        } else {
            Resolution::Carried
        }
    }
}

/// An instruction of the date with what earlier reconciliations recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub row: InstructionRow,
    pub status: Status,
    pub matched_by: String,
    pub bank_ref: String,
    pub detail: String,
    /// `carried`, `returned` or empty.
    pub resolution: String,
}

/// The role of one of the platform's real accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRole {
    Custody { bank: String },
    Delivery,
}

/// A deposit the ledger booked, as far as matching a statement line needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDeposit {
    pub bank: String,
    pub currency: String,
    pub amount_minor: i64,
}

/// What the ledger expects of the date.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub date: BusinessDate,
    /// Sorted by instruction id.
    pub instructions: &'a [Stored],
    /// Real accounts by account id.
    pub accounts: &'a BTreeMap<String, AccountRole>,
    /// `(bank, currency)` → custody balance expected once the date's instructions settle.
    pub custody: &'a BTreeMap<(String, String), i64>,
    /// Deposits by bank reference (only those the bank files mention).
    pub deposits: &'a BTreeMap<String, KnownDeposit>,
}

/// Kinds of break, as recon.csv names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Break {
    /// A bank entry that is no instruction of the date and no booked deposit.
    UnmatchedEntry,
    /// An instruction no bank entry speaks of.
    MissingEntry,
    /// An instruction the bank reports but has not booked (pending, info).
    NotBooked,
    /// Matched by reference, but the amount or currency differs.
    AmountMismatch,
    /// A statement's closing balance is not the custody balance the ledger expects.
    BalanceMismatch,
    /// A statement of an account that is none of the platform's.
    UnknownAccount,
    /// The bank reports the transfer failed or returned it.
    Failed,
}

impl Break {
    pub fn as_str(&self) -> &'static str {
        match self {
            Break::UnmatchedEntry => "unmatched_entry",
            Break::MissingEntry => "missing_entry",
            Break::NotBooked => "not_booked",
            Break::AmountMismatch => "amount_mismatch",
            Break::BalanceMismatch => "balance_mismatch",
            Break::UnknownAccount => "unknown_account",
            Break::Failed => "failed",
        }
    }
}

/// What a row of recon.csv is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Record {
    Instruction,
    Entry,
    Balance,
}

impl Record {
    pub fn as_str(&self) -> &'static str {
        match self {
            Record::Instruction => "instruction",
            Record::Entry => "entry",
            Record::Balance => "balance",
        }
    }
}

/// One row of recon.csv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub record: Record,
    /// Instruction id; the entry's bank reference (else its end-to-end id); the account.
    pub id: String,
    pub status: String,
    pub break_kind: Option<Break>,
    pub matched_by: String,
    pub currency: String,
    /// What the ledger expects, in minor units of `currency`.
    pub expected_minor: Option<i64>,
    /// What the bank reports.
    pub actual_minor: Option<i64>,
    pub account: String,
    pub bank_ref: String,
    /// `file:line` of the bank entries or balance, `;`-separated.
    pub source: String,
    /// `carried` or `returned` for a failed instruction.
    pub action: String,
    pub detail: String,
}

/// A status to record: the instruction moved forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub instruction_id: String,
    pub from: Status,
    pub to: Status,
    pub matched_by: String,
    pub bank_ref: String,
    pub detail: String,
    /// Set when the instruction becomes failed: what to post.
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub entries: usize,
    pub duplicates: usize,
    pub matched: usize,
    pub deposits: usize,
    pub unmatched: usize,
    pub settled: usize,
    pub failed: usize,
    pub pending: usize,
    pub balances_checked: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Sorted: instructions, entries, balances; each by id, then source.
    pub rows: Vec<Row>,
    pub transitions: Vec<Transition>,
    pub counts: Counts,
}

impl Outcome {
    pub fn breaks(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.break_kind.is_some())
    }
}

/// Which side of an instruction an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Leg {
    Debit,
    Credit,
    /// The CSV names the instruction, not an account.
    Whole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Confirms,
    Fails(String),
    NotBooked(String),
    Mismatch(String),
}

#[derive(Debug, Clone)]
struct Evidence<'e> {
    entry: &'e BankEntry,
    matched_by: &'static str,
    verdict: Verdict,
}

pub fn reconcile(
    exp: &Expected<'_>,
    entries: &[BankEntry],
    balances: &[StatementBalance],
) -> Outcome {
    let mut counts = Counts::default();
    let entries = dedup(entries, &mut counts);
    let by_id: BTreeMap<&str, usize> = exp
        .instructions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.row.instruction_id.as_str(), i))
        .collect();
    let mut evidence: Vec<Vec<Evidence<'_>>> = vec![Vec::new(); exp.instructions.len()];
    let mut claimed: BTreeSet<(usize, Leg, bool)> = BTreeSet::new();
    let mut rows = Vec::new();
    let mut left: Vec<(&BankEntry, Option<String>)> = Vec::new();
    for entry in &entries {
        match match_by_id(exp, &by_id, entry) {
            IdMatch::Hit { index, leg, by } => {
                claimed.insert((index, leg, entry.reversal));
                evidence[index].push(Evidence {
                    entry,
                    matched_by: by,
                    verdict: verdict(entry, &exp.instructions[index].row),
                });
            }
            IdMatch::WrongSide(note) => left.push((entry, Some(note))),
            IdMatch::None => left.push((entry, None)),
        }
    }
    let mut unmatched = Vec::new();
    for (entry, note) in left {
        if let Some(row) = match_deposit(exp, entry, &mut counts) {
            rows.extend(row);
            continue;
        }
        match match_by_leg(exp, entry, &claimed) {
            Some((index, leg)) => {
                claimed.insert((index, leg, entry.reversal));
                evidence[index].push(Evidence {
                    entry,
                    matched_by: "amount_account_date",
                    verdict: verdict(entry, &exp.instructions[index].row),
                });
            }
            None => unmatched.push((entry, note)),
        }
    }
    counts.matched = evidence.iter().map(Vec::len).sum();
    let mut transitions = Vec::new();
    let mut failed_now: Vec<usize> = Vec::new();
    for (index, stored) in exp.instructions.iter().enumerate() {
        let (row, transition) = judge(stored, &evidence[index]);
        match Status::parse(&row.status) {
            Some(Status::Settled) => counts.settled += 1,
            Some(Status::Failed) => {
                counts.failed += 1;
                failed_now.push(index);
            }
            _ => counts.pending += 1,
        }
        rows.push(row);
        transitions.extend(transition);
    }
    counts.unmatched = unmatched.len();
    for (entry, note) in unmatched {
        rows.push(unmatched_row(exp, entry, note));
    }
    let failed: Vec<&InstructionRow> = failed_now
        .iter()
        .map(|&i| &exp.instructions[i].row)
        .collect();
    rows.extend(check_balances(exp, balances, &failed, &mut counts));
    rows.sort_by(|a, b| (a.record, &a.id, &a.source).cmp(&(b.record, &b.id, &b.source)));
    Outcome {
        rows,
        transitions,
        counts,
    }
}

/// The same booking reported twice (a notification and the statement that lists it, or one
/// file given twice) counts once. Entries without any reference cannot be told apart and are
/// all kept.
fn dedup<'e>(entries: &'e [BankEntry], counts: &mut Counts) -> Vec<&'e BankEntry> {
    type Key<'a> = (
        Option<&'a str>,
        Option<Direction>,
        Currency,
        AmountMinor,
        EntryStatus,
        bool,
        Option<BusinessDate>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let mut seen: BTreeSet<Key<'_>> = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        counts.entries += 1;
        let refs = (
            e.bank_ref(),
            e.end_to_end_id.as_deref(),
            e.instruction_id.as_deref(),
        );
        if refs == (None, None, None) {
            out.push(e);
            continue;
        }
        let key = (
            e.account.as_deref(),
            e.direction,
            e.currency,
            e.amount,
            e.status,
            e.reversal,
            e.booking_date,
            refs.0,
            refs.1,
            refs.2,
        );
        if seen.insert(key) {
            out.push(e);
        } else {
            counts.duplicates += 1;
        }
    }
    out
}

enum IdMatch {
    Hit {
        index: usize,
        leg: Leg,
        by: &'static str,
    },
    /// The entry names an instruction but is on another account or side.
    WrongSide(String),
    None,
}

/// The direction of the transfer an entry is about: a reversal moves the other way.
fn transfer_direction(entry: &BankEntry) -> Option<Direction> {
    entry
        .direction
        .map(|d| if entry.reversal { d.flipped() } else { d })
}

fn match_by_id(exp: &Expected<'_>, by_id: &BTreeMap<&str, usize>, entry: &BankEntry) -> IdMatch {
    let hit = [
        (entry.instruction_id.as_deref(), "instruction_id"),
        (entry.end_to_end_id.as_deref(), "end_to_end_id"),
    ]
    .into_iter()
    .find_map(|(id, by)| id.and_then(|id| by_id.get(id)).map(|&i| (i, by)));
    let Some((index, by)) = hit else {
        return IdMatch::None;
    };
    let row = &exp.instructions[index].row;
    let leg = match (entry.account.as_deref(), transfer_direction(entry)) {
        (None, _) => Leg::Whole,
        (Some(a), Some(Direction::Debit)) if a == row.debit_account => Leg::Debit,
        (Some(a), Some(Direction::Credit)) if a == row.credit_account => Leg::Credit,
        (Some(a), d) => {
            return IdMatch::WrongSide(format!(
                "names instruction {} but is a {} on account {a}, which that instruction does \
                 not {}",
                row.instruction_id,
                entry.direction.map_or("booking", |d| d.as_str()),
                match d {
                    Some(Direction::Debit) => "debit",
                    _ => "credit",
                }
            ))
        }
    };
    IdMatch::Hit { index, leg, by }
}

fn money(code: &str, minor: i64) -> String {
    match Currency::from_code(code) {
        Some(c) => format!("{} {code}", c.format(AmountMinor(minor))),
        None => format!("{minor} (minor units) {code}"),
    }
}

fn verdict(entry: &BankEntry, row: &InstructionRow) -> Verdict {
    if entry.currency.code() != row.currency || entry.amount.0 != row.amount_minor {
        return Verdict::Mismatch(format!(
            "the bank moved {}, the instruction {}",
            money(entry.currency.code(), entry.amount.0),
            money(&row.currency, row.amount_minor)
        ));
    }
    let reason = || entry.reason.clone();
    match entry.status {
        EntryStatus::Failed => Verdict::Fails(reason().unwrap_or_else(|| "failed".to_string())),
        EntryStatus::Booked if entry.reversal => Verdict::Fails(
            reason().unwrap_or_else(|| "returned: the bank booked a reversal".to_string()),
        ),
        EntryStatus::Booked => Verdict::Confirms,
        other => Verdict::NotBooked(format!("the bank reports it {}", other.as_str())),
    }
}

/// A statement line that is a deposit the ledger booked: counted, and a row only when the
/// amount disagrees.
fn match_deposit(
    exp: &Expected<'_>,
    entry: &BankEntry,
    counts: &mut Counts,
) -> Option<Option<Row>> {
    let refs = [
        entry.account_servicer_ref.as_deref(),
        entry.entry_ref.as_deref(),
        entry.end_to_end_id.as_deref(),
    ];
    let (bank_ref, deposit) = refs
        .into_iter()
        .flatten()
        .find_map(|r| exp.deposits.get(r).map(|d| (r, d)))?;
    if transfer_direction(entry) == Some(Direction::Debit) {
        return None;
    }
    if let Some(AccountRole::Custody { bank }) =
        entry.account.as_ref().and_then(|a| exp.accounts.get(a))
    {
        if *bank != deposit.bank {
            return None;
        }
    }
    counts.deposits += 1;
    if entry.currency.code() == deposit.currency && entry.amount.0 == deposit.amount_minor {
        return Some(None);
    }
    Some(Some(Row {
        record: Record::Entry,
        id: bank_ref.to_string(),
        status: "deposit".to_string(),
        break_kind: Some(Break::AmountMismatch),
        matched_by: "deposit".to_string(),
        currency: entry.currency.code().to_string(),
        expected_minor: (entry.currency.code() == deposit.currency).then_some(deposit.amount_minor),
        actual_minor: Some(entry.amount.0),
        account: entry.account.clone().unwrap_or_default(),
        bank_ref: bank_ref.to_string(),
        source: source(entry),
        action: String::new(),
        detail: format!(
            "deposit {bank_ref} was booked as {}, the bank reports {}",
            money(&deposit.currency, deposit.amount_minor),
            money(entry.currency.code(), entry.amount.0)
        ),
    }))
}

/// The first instruction (by id) with a leg not yet matched on the entry's account and side,
/// for exactly its amount, booked on the date.
fn match_by_leg(
    exp: &Expected<'_>,
    entry: &BankEntry,
    claimed: &BTreeSet<(usize, Leg, bool)>,
) -> Option<(usize, Leg)> {
    let account = entry.account.as_deref()?;
    let direction = transfer_direction(entry)?;
    if entry.booking_date != Some(exp.date) {
        return None;
    }
    exp.instructions
        .iter()
        .enumerate()
        .find_map(|(index, stored)| {
            let row = &stored.row;
            let leg = match direction {
                Direction::Debit if row.debit_account == account => Leg::Debit,
                Direction::Credit if row.credit_account == account => Leg::Credit,
                _ => return None,
            };
            let fits = row.currency == entry.currency.code()
                && row.amount_minor == entry.amount.0
                && !claimed.contains(&(index, leg, entry.reversal));
            fits.then_some((index, leg))
        })
}

fn source(entry: &BankEntry) -> String {
    format!("{}:{}", entry.at.source(), entry.at.line)
}

fn joined<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let set: BTreeSet<&str> = items.filter(|s| !s.is_empty()).collect();
    set.into_iter().collect::<Vec<_>>().join(";")
}

/// An instruction's row and, if its status moved, the transition to record.
fn judge(stored: &Stored, evidence: &[Evidence<'_>]) -> (Row, Option<Transition>) {
    let row = &stored.row;
    let fails = evidence.iter().find_map(|e| match &e.verdict {
        Verdict::Fails(reason) => Some((e, reason.clone())),
        _ => None,
    });
    let confirms = evidence.iter().find(|e| e.verdict == Verdict::Confirms);
    let mismatch = evidence.iter().find_map(|e| match &e.verdict {
        Verdict::Mismatch(detail) => Some(detail.clone()),
        _ => None,
    });
    let not_booked = evidence.iter().find_map(|e| match &e.verdict {
        Verdict::NotBooked(detail) => Some(detail.clone()),
        _ => None,
    });
    let (seen, seen_by, seen_detail) = match (&fails, confirms) {
        (Some((e, reason)), _) => (Status::Failed, e.matched_by, reason.clone()),
        (None, Some(e)) => (Status::Settled, e.matched_by, String::new()),
        (None, None) => (Status::Pending, "", String::new()),
    };
    let status = seen.max(stored.status);
    let bank_ref = joined(
        evidence
            .iter()
            .filter_map(|e| e.entry.bank_ref())
            .chain(stored.bank_ref.split(';')),
    );
    let transition = (status != stored.status).then(|| Transition {
        instruction_id: row.instruction_id.clone(),
        from: stored.status,
        to: status,
        matched_by: seen_by.to_string(),
        bank_ref: bank_ref.clone(),
        detail: seen_detail.clone(),
        resolution: (status == Status::Failed).then(|| Resolution::for_kind(&row.kind)),
    });
    let break_kind = match status {
        Status::Failed => Some(Break::Failed),
        _ if mismatch.is_some() => Some(Break::AmountMismatch),
        Status::Settled => None,
        Status::Pending if not_booked.is_some() => Some(Break::NotBooked),
        Status::Pending => Some(Break::MissingEntry),
    };
    let detail = match break_kind {
        Some(Break::AmountMismatch) => mismatch.unwrap_or_default(),
        Some(Break::NotBooked) => not_booked.unwrap_or_default(),
        Some(Break::MissingEntry) => "no bank entry for this instruction".to_string(),
        Some(Break::Failed) if status != seen => stored.detail.clone(),
        _ => seen_detail,
    };
    let action = match (status, transition.as_ref().and_then(|t| t.resolution)) {
        (Status::Failed, Some(r)) => r.as_str().to_string(),
        (Status::Failed, None) => stored.resolution.clone(),
        _ => String::new(),
    };
    let matched_by = match (seen_by, evidence.first()) {
        ("", Some(e)) => e.matched_by.to_string(),
        ("", None) => stored.matched_by.clone(),
        (by, _) => by.to_string(),
    };
    let actual = evidence
        .iter()
        .find(|e| matches!(e.verdict, Verdict::Mismatch(_)))
        .or(evidence.first())
        .map(|e| e.entry.amount.0);
    let out = Row {
        record: Record::Instruction,
        id: row.instruction_id.clone(),
        status: status.as_str().to_string(),
        break_kind,
        matched_by,
        currency: row.currency.clone(),
        expected_minor: Some(row.amount_minor),
        actual_minor: actual,
        account: joined(evidence.iter().filter_map(|e| e.entry.account.as_deref())),
        bank_ref,
        source: {
            let set: BTreeSet<String> = evidence.iter().map(|e| source(e.entry)).collect();
            set.into_iter().collect::<Vec<_>>().join(";")
        },
        action,
        detail,
    };
    (out, transition)
}

fn unmatched_row(exp: &Expected<'_>, entry: &BankEntry, note: Option<String>) -> Row {
    let id = entry
        .bank_ref()
        .or(entry.end_to_end_id.as_deref())
        .or(entry.instruction_id.as_deref())
        .unwrap_or("")
        .to_string();
    let detail = note.unwrap_or_else(|| {
        let side = entry.direction.map_or("", |d| d.as_str());
        let status = match entry.status {
            EntryStatus::Booked if entry.reversal => " (reversal)",
            EntryStatus::Booked => "",
            EntryStatus::Pending => " (pending)",
            EntryStatus::Info => " (information only)",
            EntryStatus::Failed => " (failed)",
        };
        let booked = entry
            .booking_date
            .map(|d| format!(" booked {d}"))
            .unwrap_or_default();
        let off_date = entry
            .booking_date
            .filter(|d| *d != exp.date)
            .map(|_| format!(" (not on {})", exp.date))
            .unwrap_or_default();
        let known = match entry.account.as_ref().map(|a| exp.accounts.get(a)) {
            Some(None) => " on an account that is none of the platform's",
            _ => "",
        };
        format!(
            "{side} {}{status}{booked}{off_date}{known}: no instruction of {} or booked deposit \
             matches",
            money(entry.currency.code(), entry.amount.0),
            exp.date
        )
        .trim_start()
        .to_string()
    });
    Row {
        record: Record::Entry,
        id,
        status: "unmatched".to_string(),
        break_kind: Some(Break::UnmatchedEntry),
        matched_by: String::new(),
        currency: entry.currency.code().to_string(),
        expected_minor: None,
        actual_minor: Some(entry.amount.0),
        account: entry.account.clone().unwrap_or_default(),
        bank_ref: entry.bank_ref().unwrap_or("").to_string(),
        source: source(entry),
        action: String::new(),
        detail,
    }
}

/// Closing booked balances of the statements against the custody balances the ledger
/// expects, less what the date's failed instructions did not move.
fn check_balances(
    exp: &Expected<'_>,
    balances: &[StatementBalance],
    failed: &[&InstructionRow],
    counts: &mut Counts,
) -> Vec<Row> {
    let mut seen = BTreeSet::new();
    let mut rows = Vec::new();
    for b in balances.iter().filter(|b| b.kind == BalanceKind::Closing) {
        if !seen.insert((&b.account, b.currency, b.amount, b.date)) {
            continue;
        }
        counts.balances_checked += 1;
        let code = b.currency.code();
        let mut row = Row {
            record: Record::Balance,
            id: b.account.clone(),
            status: String::new(),
            break_kind: None,
            matched_by: String::new(),
            currency: code.to_string(),
            expected_minor: None,
            actual_minor: Some(b.amount.0),
            account: b.account.clone(),
            bank_ref: String::new(),
            source: format!("{}:{}", b.at.source(), b.at.line),
            action: String::new(),
            detail: String::new(),
        };
        match exp.accounts.get(&b.account) {
            None => {
                row.status = "unknown".to_string();
                row.break_kind = Some(Break::UnknownAccount);
                row.detail = "the statement is of an account that is none of the platform's \
                              custody or delivery accounts"
                    .to_string();
            }
            Some(AccountRole::Delivery) => {
                row.status = "unchecked".to_string();
                row.detail = "the delivery account: the ledger keeps no balance of it, only \
                              that each cycle nets it to zero"
                    .to_string();
            }
            Some(AccountRole::Custody { bank }) => {
                let custody = exp
                    .custody
                    .get(&(bank.clone(), code.to_string()))
                    .copied()
                    .unwrap_or(0);
                // A failed transfer did not move: the debited account still holds it, the
                // credited one never got it.
                let unmoved: i64 = failed
                    .iter()
                    .filter(|i| i.currency == code)
                    .map(|i| {
                        let mut d = 0;
                        if i.debit_account == b.account {
                            d += i.amount_minor;
                        }
                        if i.credit_account == b.account {
                            d -= i.amount_minor;
                        }
                        d
                    })
                    .sum();
                let expected = custody + unmoved;
                row.expected_minor = Some(expected);
                let wrong_date = b.date.filter(|d| *d != exp.date);
                if let Some(d) = wrong_date {
                    row.status = "mismatch".to_string();
                    row.break_kind = Some(Break::BalanceMismatch);
                    row.detail = format!("the closing balance is dated {d}, not {}", exp.date);
                } else if expected != b.amount.0 {
                    row.status = "mismatch".to_string();
                    row.break_kind = Some(Break::BalanceMismatch);
                    row.detail = format!(
                        "custody account of {bank}: the ledger expects {}, the bank reports {} \
                         (difference {})",
                        money(code, expected),
                        money(code, b.amount.0),
                        money(code, b.amount.0 - expected)
                    );
                } else {
                    row.status = "ok".to_string();
                    row.detail = format!("custody account of {bank}");
                }
            }
        }
        rows.push(row);
    }
    rows
}
