//! ISO 20022 bank-to-customer cash management messages: camt.053 statements, camt.054
//! debit/credit notifications and camt.052 account reports, versions 001.02 to 001.08.
//!
//! The versions differ in many optional corners but not in the subset reconciliation needs,
//! so this reader does not follow one version's schema: it streams the document with
//! quick-xml (no tree is built) and reads elements by their **local names** along a path,
//! ignoring namespace prefixes and the version in the namespace. The subset:
//!
//! - `Document/<message>/{Stmt|Ntfctn|Rpt}`: one account's report; `Acct/Id/IBAN` or
//!   `Acct/Id/Othr/Id`.
//! - `Bal`: `Tp/CdOrPrtry/Cd` (`OPBD`, `CLBD`; others are skipped), `Amt@Ccy`, `CdtDbtInd`,
//!   `Dt/Dt` or `Dt/DtTm`.
//! - `Ntry`: `Amt@Ccy`, `CdtDbtInd`, `RvslInd`, `Sts` (text up to .06, `Sts/Cd` from .07),
//!   `BookgDt`, `ValDt`, `AcctSvcrRef`, `NtryRef`, `AddtlNtryInf`, and in
//!   `NtryDtls/TxDtls`: `Refs/{EndToEndId,InstrId,AcctSvcrRef}`, `Amt@Ccy`, `CdtDbtInd`,
//!   `RmtInf/Ustrd`, `RtrInf/{Rsn/Cd,Rsn/Prtry,AddtlInf}`.
//!
//! A batch booking (one `Ntry`, several `TxDtls` whose amounts add up to the entry's) becomes
//! one [`BankEntry`] per transaction; any other entry becomes one [`BankEntry`] carrying the
//! references of its single transaction, if it has one.
//!
//! Malformed XML stops the file with its line and column; problems of content (an amount
//! that is not a decimal, an unknown currency) are all reported, each with its line.

use std::path::Path;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use crate::bankfiles::{
    BalanceKind, BankEntry, BankFile, BankFileKind, Direction, EntryStatus, StatementBalance,
};
use crate::fields::decimal_reason;
use crate::model::{BusinessDate, Location, RowError};
use crate::money::{AmountMinor, Currency, Decimal};

/// Every local name the reader looks at; any other element is `*` on the path.
const NAMES: &[&str] = &[
    "Acct",
    "AcctSvcrRef",
    "AddtlInf",
    "AddtlNtryInf",
    "Amt",
    "Bal",
    "BkToCstmrAcctRpt",
    "BkToCstmrDbtCdtNtfctn",
    "BkToCstmrStmt",
    "BookgDt",
    "Cd",
    "CdOrPrtry",
    "CdtDbtInd",
    "Document",
    "Dt",
    "DtTm",
    "EndToEndId",
    "IBAN",
    "Id",
    "InstrId",
    "Ntfctn",
    "Ntry",
    "NtryDtls",
    "NtryRef",
    "Othr",
    "Prtry",
    "Refs",
    "RmtInf",
    "Rpt",
    "Rsn",
    "RtrInf",
    "RvslInd",
    "Stmt",
    "Sts",
    "Tp",
    "TxDtls",
    "Ustrd",
    "ValDt",
];

/// The static name of an element the reader knows, `*` for any other.
fn intern(name: &str) -> &'static str {
    NAMES.binary_search(&name).map(|i| NAMES[i]).unwrap_or("*")
}

/// Elements nest at most this deep; deeper is refused (a camt document is ~12 deep).
const DEPTH_MAX: usize = 64;
/// Problems reported per file before the reader gives up on it.
const ERRORS_MAX: usize = 200;

/// Parses a camt document already read into memory.
pub fn parse_camt(path: &Path, bytes: &[u8]) -> Result<BankFile, Vec<RowError>> {
    let mut parser = Parser::new(path, bytes);
    parser.run();
    if !parser.errors.is_empty() {
        return Err(parser.errors);
    }
    Ok(BankFile {
        path: path.to_owned(),
        kind: BankFileKind::Camt {
            message: parser.message.unwrap_or("camt"),
            version: parser.version,
        },
        entries: parser.entries,
        balances: parser.balances,
    })
}

/// Byte offsets → 1-based line and column, for offsets that mostly only grow.
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u64,
    line_start: usize,
}

impl Lines<'_> {
    fn at(&mut self, offset: u64) -> (u64, u64) {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        if offset < self.pos {
            // Only an error position can step back; count again from the start.
            self.pos = 0;
            self.line = 1;
            self.line_start = 0;
        }
        for i in memchr::memchr_iter(b'\n', &self.bytes[self.pos..offset]) {
            self.line += 1;
            self.line_start = self.pos + i + 1;
        }
        self.pos = offset;
        (self.line, (offset - self.line_start) as u64 + 1)
    }
}

/// An `Amt` element: its text, its `Ccy` attribute and where it was.
#[derive(Debug, Clone, Default)]
struct Amt {
    text: String,
    ccy: Option<String>,
    line: u64,
}

#[derive(Debug, Default)]
struct Report {
    depth: usize,
    line: u64,
    account: Option<String>,
}

#[derive(Debug, Default)]
struct Bal {
    depth: usize,
    line: u64,
    code: Option<String>,
    amount: Option<Amt>,
    cdt_dbt: Option<String>,
    date: Option<String>,
}

#[derive(Debug, Default)]
struct Tx {
    depth: usize,
    line: u64,
    amount: Option<Amt>,
    cdt_dbt: Option<String>,
    end_to_end_id: Option<String>,
    instruction_id: Option<String>,
    acct_svcr_ref: Option<String>,
    ustrd: Vec<String>,
    returned: bool,
    return_code: Option<String>,
    return_info: Vec<String>,
}

#[derive(Debug, Default)]
struct Ntry {
    depth: usize,
    line: u64,
    amount: Option<Amt>,
    cdt_dbt: Option<String>,
    reversal: Option<String>,
    status: Option<String>,
    booking_date: Option<String>,
    value_date: Option<String>,
    acct_svcr_ref: Option<String>,
    ntry_ref: Option<String>,
    addtl_info: Option<String>,
    txs: Vec<Tx>,
}

struct Parser<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    lines: Lines<'a>,
    /// Local names of the open elements, as far as the reader knows them ([`intern`]).
    stack: Vec<&'static str>,
    /// Text of the innermost open element since it started.
    text: String,
    /// `Ccy` of the innermost open element, if it had one.
    ccy: Option<String>,
    /// Line of the innermost open element.
    line: u64,
    message: Option<&'static str>,
    version: Option<String>,
    report: Option<Report>,
    bal: Option<Bal>,
    ntry: Option<Ntry>,
    tx: Option<Tx>,
    entries: Vec<BankEntry>,
    balances: Vec<StatementBalance>,
    errors: Vec<RowError>,
    /// A fatal problem: stop reading.
    stopped: bool,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path, bytes: &'a [u8]) -> Parser<'a> {
        Parser {
            path,
            bytes,
            lines: Lines {
                bytes,
                pos: 0,
                line: 1,
                line_start: 0,
            },
            stack: Vec::new(),
            text: String::new(),
            ccy: None,
            line: 1,
            message: None,
            version: None,
            report: None,
            bal: None,
            ntry: None,
            tx: None,
            entries: Vec::new(),
            balances: Vec::new(),
            errors: Vec::new(),
            stopped: false,
        }
    }

    fn fail(&mut self, line: u64, field: &str, value: &str, reason: impl Into<String>) {
        if self.errors.len() < ERRORS_MAX {
            self.errors.push(RowError::new(
                Location::new(self.path, line),
                "",
                field,
                value,
                reason,
            ));
        } else {
            self.stopped = true;
        }
    }

    /// A problem that ends the reading of the file.
    fn fatal(&mut self, offset: u64, reason: impl Into<String>) {
        let (line, column) = self.lines.at(offset);
        let reason = reason.into();
        self.errors.push(RowError::new(
            Location::new(self.path, line),
            "",
            "",
            "",
            format!("line {line}, column {column}: {reason}"),
        ));
        self.stopped = true;
    }

    fn run(&mut self) {
        let mut reader = Reader::from_reader(self.bytes);
        while !self.stopped {
            let before = reader.buffer_position();
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = reader.error_position();
                    self.fatal(at, format!("malformed XML: {e}"));
                    break;
                }
            };
            match event {
                Event::Start(e) => self.start(&e, before),
                Event::Empty(e) => {
                    self.start(&e, before);
                    if !self.stopped {
                        self.end(before);
                    }
                }
                Event::End(_) => self.end(before),
                Event::Text(t) => self.text.push_str(&t.xml10_content()),
                Event::CData(c) => self.text.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => self.reference(&r, before),
                Event::Eof => {
                    if let Some(open) = self.stack.last().copied() {
                        self.fatal(before, format!("the document ends inside <{open}>"));
                    } else if self.message.is_none() {
                        self.fatal(before, "no camt message in the file");
                    }
                    break;
                }
                _ => {}
            }
        }
    }

    fn reference(&mut self, r: &BytesRef<'_>, offset: u64) {
        let resolved = match r.resolve_char_ref() {
            Ok(Some(c)) => Some(c),
            Ok(None) => match &**r {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "apos" => Some('\''),
                "quot" => Some('"'),
                _ => None,
            },
            Err(_) => None,
        };
        match resolved {
            Some(c) => self.text.push(c),
            None => self.fatal(offset, format!("unknown entity reference &{};", &**r)),
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, offset: u64) {
        let name = e.local_name().as_ref().to_owned();
        let (line, _) = self.lines.at(offset);
        if self.stack.len() >= DEPTH_MAX {
            self.fatal(offset, format!("elements nest deeper than {DEPTH_MAX}"));
            return;
        }
        self.text.clear();
        self.ccy = None;
        self.line = line;
        for attr in e.attributes().with_checks(false) {
            let Ok(attr) = attr else {
                self.fatal(offset, format!("malformed attribute in <{name}>"));
                return;
            };
            let key = attr.key.as_ref();
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned());
            match (key, value) {
                ("Ccy", Ok(v)) => self.ccy = Some(v),
                (k, Ok(v))
                    if self.stack.is_empty()
                        && (k == "xmlns" || k.starts_with("xmlns:"))
                        && v.contains(":camt.") =>
                {
                    // urn:iso:std:iso:20022:tech:xsd:camt.054.001.04 → camt.054.001.04
                    self.version = v.rsplit(':').next().map(str::to_owned);
                }
                (_, Err(err)) => {
                    self.fatal(offset, format!("malformed attribute in <{name}>: {err}"));
                    return;
                }
                _ => {}
            }
        }
        self.stack.push(intern(&name));
        let depth = self.stack.len();
        let name = name.as_str();
        match depth {
            1 if name != "Document" => {
                self.fatal(
                    offset,
                    format!("the root element is <{name}>, not an ISO 20022 <Document>"),
                );
            }
            2 => match name {
                "BkToCstmrStmt" => self.message = Some("camt.053"),
                "BkToCstmrDbtCdtNtfctn" => self.message = Some("camt.054"),
                "BkToCstmrAcctRpt" => self.message = Some("camt.052"),
                other => {
                    let other = other.to_owned();
                    self.fatal(
                        offset,
                        format!(
                            "<{other}> is not a bank-to-customer camt.052, camt.053 or camt.054 \
                             message"
                        ),
                    );
                }
            },
            3 if matches!(name, "Stmt" | "Ntfctn" | "Rpt") => {
                self.report = Some(Report {
                    depth,
                    line,
                    account: None,
                })
            }
            _ => self.open_child(depth, line),
        }
    }

    /// Opens a `Bal`, `Ntry` or `TxDtls` context when its element starts.
    fn open_child(&mut self, depth: usize, line: u64) {
        let rel = |from: usize| &self.stack[from..];
        if let Some(tx) = &mut self.tx {
            if rel(tx.depth) == ["RtrInf"] {
                tx.returned = true;
            }
            return;
        }
        if let Some(ntry) = &self.ntry {
            if rel(ntry.depth) == ["NtryDtls", "TxDtls"] {
                self.tx = Some(Tx {
                    depth,
                    line,
                    ..Tx::default()
                });
            }
            return;
        }
        if self.bal.is_some() {
            return;
        }
        if let Some(report) = &self.report {
            match rel(report.depth) {
                ["Bal"] => {
                    self.bal = Some(Bal {
                        depth,
                        line,
                        ..Bal::default()
                    })
                }
                ["Ntry"] => {
                    self.ntry = Some(Ntry {
                        depth,
                        line,
                        ..Ntry::default()
                    })
                }
                _ => {}
            }
        }
    }

    fn end(&mut self, offset: u64) {
        let depth = self.stack.len();
        if depth == 0 {
            self.fatal(offset, "a closing tag without an opening one");
            return;
        }
        let text = std::mem::take(&mut self.text);
        let value = text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\r' | '\n'));
        self.leaf(value);
        // Close the context that this element opened, innermost first.
        if self.tx.as_ref().is_some_and(|t| t.depth == depth) {
            let tx = self.tx.take().expect("checked");
            if let Some(ntry) = &mut self.ntry {
                ntry.txs.push(tx);
            }
        } else if self.ntry.as_ref().is_some_and(|n| n.depth == depth) {
            let ntry = self.ntry.take().expect("checked");
            self.finish_entry(ntry);
        } else if self.bal.as_ref().is_some_and(|b| b.depth == depth) {
            let bal = self.bal.take().expect("checked");
            self.finish_balance(bal);
        } else if self.report.as_ref().is_some_and(|r| r.depth == depth) {
            self.report = None;
        }
        self.stack.pop();
        self.ccy = None;
    }

    /// Stores the value of a leaf element by its path relative to the open context.
    fn leaf(&mut self, value: &str) {
        let owned = || Some(value.to_owned());
        let amt = || {
            Some(Amt {
                text: value.to_owned(),
                ccy: self.ccy.clone(),
                line: self.line,
            })
        };
        let stack = &self.stack;
        if let Some(tx) = &mut self.tx {
            match &stack[tx.depth..] {
                ["Refs", "EndToEndId"] => tx.end_to_end_id = owned(),
                ["Refs", "InstrId"] => tx.instruction_id = owned(),
                ["Refs", "AcctSvcrRef"] => tx.acct_svcr_ref = owned(),
                ["Amt"] => tx.amount = amt(),
                ["CdtDbtInd"] => tx.cdt_dbt = owned(),
                ["RmtInf", "Ustrd"] if !value.is_empty() => tx.ustrd.push(value.to_owned()),
                ["RtrInf", "Rsn", "Cd" | "Prtry"] => tx.return_code = owned(),
                ["RtrInf", "AddtlInf"] if !value.is_empty() => {
                    tx.return_info.push(value.to_owned())
                }
                _ => {}
            }
        } else if let Some(ntry) = &mut self.ntry {
            match &stack[ntry.depth..] {
                ["Amt"] => ntry.amount = amt(),
                ["CdtDbtInd"] => ntry.cdt_dbt = owned(),
                ["RvslInd"] => ntry.reversal = owned(),
                ["Sts"] if !value.is_empty() => ntry.status = owned(),
                ["Sts", "Cd" | "Prtry"] => ntry.status = owned(),
                ["BookgDt", "Dt" | "DtTm"] => ntry.booking_date = owned(),
                ["ValDt", "Dt" | "DtTm"] => ntry.value_date = owned(),
                ["AcctSvcrRef"] => ntry.acct_svcr_ref = owned(),
                ["NtryRef"] => ntry.ntry_ref = owned(),
                ["AddtlNtryInf"] if !value.is_empty() => ntry.addtl_info = owned(),
                _ => {}
            }
        } else if let Some(bal) = &mut self.bal {
            match &stack[bal.depth..] {
                ["Tp", "CdOrPrtry", "Cd"] => bal.code = owned(),
                ["Amt"] => bal.amount = amt(),
                ["CdtDbtInd"] => bal.cdt_dbt = owned(),
                ["Dt", "Dt" | "DtTm"] => bal.date = owned(),
                _ => {}
            }
        } else if let Some(report) = &mut self.report {
            match &stack[report.depth..] {
                ["Acct", "Id", "IBAN"] | ["Acct", "Id", "Othr", "Id"] => report.account = owned(),
                _ => {}
            }
        }
    }

    fn account(&mut self, line: u64, what: &str) -> Option<String> {
        let found = self.report.as_ref().and_then(|r| r.account.clone());
        if found.is_none() {
            let report_line = self.report.as_ref().map_or(line, |r| r.line);
            self.fail(
                line,
                "Acct/Id",
                "",
                format!(
                    "{what}: the report starting on line {report_line} names no account \
                     (Acct/Id/IBAN or Acct/Id/Othr/Id) before it"
                ),
            );
        }
        found
    }

    /// An amount ≥ 0 in its `Ccy`, exact.
    fn amount(&mut self, field: &str, amt: &Option<Amt>, fallback_line: u64) -> Option<Money> {
        let Some(amt) = amt else {
            self.fail(fallback_line, field, "", "is missing");
            return None;
        };
        let Some(code) = &amt.ccy else {
            self.fail(amt.line, field, &amt.text, "has no Ccy attribute");
            return None;
        };
        let Some(currency) = Currency::from_code(code) else {
            self.fail(
                amt.line,
                &format!("{field}@Ccy"),
                code,
                "is not a known ISO 4217 currency code",
            );
            return None;
        };
        let parsed = Decimal::parse(&amt.text).and_then(|d| d.to_minor(currency.minor_digits()));
        match parsed {
            Ok(minor) if minor.0 < 0 => {
                self.fail(amt.line, field, &amt.text, "is negative");
                None
            }
            Ok(minor) => Some(Money { currency, minor }),
            Err(e) => {
                let reason = format!("{} for {code}", decimal_reason(&e));
                self.fail(amt.line, field, &amt.text, reason);
                None
            }
        }
    }

    fn direction(&mut self, line: u64, field: &str, text: Option<&str>) -> Option<Direction> {
        match text {
            Some("CRDT") => Some(Direction::Credit),
            Some("DBIT") => Some(Direction::Debit),
            Some(other) => {
                self.fail(line, field, other, "is not CRDT or DBIT");
                None
            }
            None => {
                self.fail(line, field, "", "is missing");
                None
            }
        }
    }

    fn date(&mut self, line: u64, field: &str, text: Option<&str>) -> Option<BusinessDate> {
        let text = text?;
        // A DtTm (2020-11-24T10:00:00+01:00) books on its date part.
        let parsed = text.get(..10).and_then(BusinessDate::parse);
        if parsed.is_none() {
            self.fail(line, field, text, "is not a date YYYY-MM-DD");
        }
        parsed
    }

    fn finish_balance(&mut self, bal: Bal) {
        let kind = match bal.code.as_deref() {
            Some("OPBD") => BalanceKind::Opening,
            Some("CLBD") => BalanceKind::Closing,
            _ => return,
        };
        let account = self.account(bal.line, "balance");
        let amount = self.amount("Bal/Amt", &bal.amount, bal.line);
        let direction = self.direction(bal.line, "Bal/CdtDbtInd", bal.cdt_dbt.as_deref());
        let date = self.date(bal.line, "Bal/Dt", bal.date.as_deref());
        let (Some(account), Some(amount), Some(direction)) = (account, amount, direction) else {
            return;
        };
        let signed = match direction {
            Direction::Credit => amount.minor,
            Direction::Debit => AmountMinor(-amount.minor.0),
        };
        self.balances.push(StatementBalance {
            at: Location::new(self.path, bal.line),
            account,
            kind,
            currency: amount.currency,
            amount: signed,
            date,
        });
    }

    fn finish_entry(&mut self, ntry: Ntry) {
        let account = self.account(ntry.line, "entry");
        let amount = self.amount("Ntry/Amt", &ntry.amount, ntry.line);
        let direction = self.direction(ntry.line, "Ntry/CdtDbtInd", ntry.cdt_dbt.as_deref());
        let status = match ntry.status.as_deref() {
            Some("BOOK") => Some(EntryStatus::Booked),
            Some("PDNG" | "FUTR") => Some(EntryStatus::Pending),
            Some("INFO") => Some(EntryStatus::Info),
            Some(other) => {
                let other = other.to_owned();
                self.fail(
                    ntry.line,
                    "Ntry/Sts",
                    &other,
                    "is not BOOK, PDNG, FUTR or INFO",
                );
                None
            }
            None => {
                self.fail(ntry.line, "Ntry/Sts", "", "is missing");
                None
            }
        };
        let reversal = match ntry.reversal.as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                let other = other.to_owned();
                self.fail(ntry.line, "Ntry/RvslInd", &other, "is not true or false");
                false
            }
        };
        let booking_date = self.date(ntry.line, "Ntry/BookgDt", ntry.booking_date.as_deref());
        let value_date = self.date(ntry.line, "Ntry/ValDt", ntry.value_date.as_deref());
        let (Some(account), Some(amount), Some(direction), Some(status)) =
            (account, amount, direction, status)
        else {
            return;
        };
        let base = BankEntry {
            at: Location::new(self.path, ntry.line),
            account: Some(account),
            currency: amount.currency,
            amount: amount.minor,
            direction: Some(direction),
            status,
            reversal,
            booking_date,
            value_date,
            instruction_id: None,
            end_to_end_id: None,
            account_servicer_ref: ntry.acct_svcr_ref.clone(),
            entry_ref: ntry.ntry_ref.clone(),
            remittance: ntry.addtl_info.clone(),
            reason: None,
        };
        let split = self.split_batch(&ntry, &amount);
        match split {
            Some(parts) => {
                for (tx, money, dir) in parts {
                    let mut entry = with_tx(base.clone(), tx);
                    entry.at = Location::new(self.path, tx.line);
                    entry.amount = money.minor;
                    entry.direction = Some(dir);
                    self.entries.push(entry);
                }
            }
            None => {
                let entry = match ntry.txs.as_slice() {
                    [tx] => with_tx(base, tx),
                    _ => base,
                };
                self.entries.push(entry);
            }
        }
    }

    /// The transactions of a batch booking, when there are several and each has an amount in
    /// the entry's currency, adding up to the entry's amount with their directions.
    fn split_batch<'n>(
        &mut self,
        ntry: &'n Ntry,
        total: &Money,
    ) -> Option<Vec<(&'n Tx, Money, Direction)>> {
        if ntry.txs.len() < 2 || ntry.txs.iter().any(|t| t.amount.is_none()) {
            return None;
        }
        let entry_direction = match ntry.cdt_dbt.as_deref() {
            Some("DBIT") => Direction::Debit,
            _ => Direction::Credit,
        };
        let mut parts = Vec::with_capacity(ntry.txs.len());
        let mut sum: i128 = 0;
        for tx in &ntry.txs {
            let money = self.amount("TxDtls/Amt", &tx.amount, tx.line)?;
            if money.currency != total.currency {
                return None;
            }
            let dir = match tx.cdt_dbt.as_deref() {
                Some("CRDT") => Direction::Credit,
                Some("DBIT") => Direction::Debit,
                _ => entry_direction,
            };
            let signed = i128::from(money.minor.0);
            sum += if dir == entry_direction {
                signed
            } else {
                -signed
            };
            parts.push((tx, money, dir));
        }
        (sum == i128::from(total.minor.0)).then_some(parts)
    }
}

/// An amount read from an `Amt` element.
#[derive(Debug, Clone, Copy)]
struct Money {
    currency: Currency,
    minor: AmountMinor,
}

/// The entry with the references of one of its transactions.
fn with_tx(mut entry: BankEntry, tx: &Tx) -> BankEntry {
    let present = |v: &Option<String>| {
        v.clone()
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("NOTPROVIDED"))
    };
    entry.end_to_end_id = present(&tx.end_to_end_id);
    entry.instruction_id = present(&tx.instruction_id);
    if let Some(r) = present(&tx.acct_svcr_ref) {
        entry.account_servicer_ref = Some(r);
    }
    if !tx.ustrd.is_empty() {
        entry.remittance = Some(tx.ustrd.join(" "));
    }
    if tx.returned {
        entry.reversal = true;
        let mut reason: Vec<String> = tx.return_code.iter().cloned().collect();
        reason.extend(tx.return_info.iter().cloned());
        entry.reason = Some(if reason.is_empty() {
            "returned".to_owned()
        } else {
            reason.join(": ")
        });
    }
    entry
}

#[cfg(test)]
mod tests;
