//! Readers for the reference files of a day directory: platform.toml, members.csv,
//! instruments.csv, opening_balances.csv, opening_positions.csv (SPEC §2.1–§2.5).
//!
//! Each reader checks what one file can tell on its own (header, syntax, ranges, uniqueness
//! within the file) and reports every bad row. Checks across files (a member's settlement bank
//! is in platform.toml, an opening position's instrument exists) belong to the engine.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::csvscan::{optional, read_header, required, width_error, Column, CsvScanner, Scan};
use crate::fields::{decimal_reason, id_problem, parse_i64, UTF8_REASON};
use crate::model::{
    Bank, FeeRate, Instrument, Location, Member, MemberStatus, OpeningBalance, OpeningPosition,
    Platform, RowError, ShortfallPolicy,
};
use crate::money::{Currency, Decimal};
use crate::{FormatError, Parsed};

mod channels;

/// Reads platform.toml. Unknown keys, missing required keys, a `delivery_bank` that is not a
/// key of `[banks]`, or a policy other than `abort`/`cover` are errors naming the key.
pub fn read_platform(path: &Path) -> Result<Result<Platform, Vec<RowError>>, FormatError> {
    let bytes = std::fs::read(path).map_err(|source| FormatError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_platform(path, &bytes))
}

/// The `ledger` key of a platform.toml: where the data directory's ledger is (a
/// `postgres://` URL), or `None` for the default SQLite file. Read on its own, by whatever
/// opens the ledger, so that a data directory can name it before its other keys are valid.
pub fn read_ledger_url(path: &Path) -> Result<Option<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "file is not UTF-8".to_string())?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let root = DeTable::parse(text).map_err(|e| e.message().trim_end().to_string())?;
    match root.get_ref().get("ledger").map(|v| v.get_ref()) {
        None => Ok(None),
        Some(DeValue::String(url)) => Ok(Some(url.to_string())),
        Some(other) => Err(format!(
            "ledger must be a string (a postgres:// URL), found {}",
            other.type_str()
        )),
    }
}

/// The byte offset's 1-based line and column (in characters), for TOML messages.
fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() as u64 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count() as u64)
        + 1;
    (line, column)
}

const PLATFORM_KEYS: &[&str] = &[
    "name",
    "delivery_bank",
    "delivery_account",
    "fee_account",
    "guarantee_account",
    "suspense_account",
    "shortfall_policy",
    "securities_check",
    "banks",
    "channel_policy",
    "channels",
    // Where the ledger is (`read_ledger_url`); the batch does not read it.
    "ledger",
    // Issue 3 adds `[[tokens]]` (name, sha256, role); accepted and not interpreted yet so that
    // such files keep parsing.
    "tokens",
];

/// Collects the problems of platform.toml with the line of the key at fault.
struct TomlCheck<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<RowError>,
}

impl TomlCheck<'_> {
    fn error(&mut self, offset: usize, key: &str, value: &str, reason: impl Into<String>) {
        let (line, _) = line_col(self.text, offset);
        self.errors.push(RowError::new(
            Location::new(self.path, line),
            "",
            key,
            value,
            reason,
        ));
    }

    /// A string value that must be an account or bank id.
    fn id(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<String> {
        let text = self.string(key, value)?;
        if let Some(reason) = id_problem(&text) {
            self.error(value.span().start, key, &text, reason);
            return None;
        }
        Some(text)
    }

    fn string(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.error(
                    value.span().start,
                    key,
                    "",
                    format!("must be a string, found {}", other.type_str()),
                );
                None
            }
        }
    }
}

fn parse_platform(path: &Path, bytes: &[u8]) -> Result<Platform, Vec<RowError>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            return Err(vec![RowError::new(
                Location::new(path, line),
                "",
                "",
                "",
                format!("file {UTF8_REASON}"),
            )]);
        }
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
            let message = e.message().trim_end();
            return Err(vec![RowError::new(
                Location::new(path, line),
                "",
                "",
                "",
                format!("TOML syntax error at line {line}, column {column}: {message}"),
            )]);
        }
    };
    let mut check = TomlCheck {
        path,
        text,
        errors: Vec::new(),
    };
    let mut name = None;
    let mut delivery_bank = None;
    let mut delivery_account = None;
    let mut fee_account = None;
    let mut guarantee_account = None;
    let mut suspense_account = None;
    let mut shortfall_policy = Some(ShortfallPolicy::Abort);
    let mut securities_check = Some(true);
    let mut banks: Option<BTreeMap<String, Bank>> = None;
    let mut channel_policy = None;
    let mut channel_list = None;
    for (key, value) in root.get_ref().iter() {
        let key_name: &str = key.get_ref();
        let at = key.span().start;
        match key_name {
            "name" => {
                name = check.string(key_name, value);
                if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                    check.error(at, key_name, "", "is empty");
                }
            }
            "delivery_bank" => delivery_bank = check.id(key_name, value).map(|v| (v, at)),
            "delivery_account" => delivery_account = check.id(key_name, value).map(|v| (v, at)),
            "fee_account" => fee_account = check.id(key_name, value).map(|v| (v, at)),
            "guarantee_account" => guarantee_account = check.id(key_name, value).map(|v| (v, at)),
            "suspense_account" => suspense_account = check.id(key_name, value).map(|v| (v, at)),
            "shortfall_policy" => {
                shortfall_policy = match check.string(key_name, value).as_deref() {
                    Some("abort") => Some(ShortfallPolicy::Abort),
                    Some("cover") => Some(ShortfallPolicy::Cover),
                    Some(other) => {
                        check.error(
                            value.span().start,
                            key_name,
                            other,
                            "must be \"abort\" or \"cover\"",
                        );
                        None
                    }
                    None => None,
                }
            }
            "securities_check" => {
                securities_check = match value.get_ref() {
                    DeValue::Boolean(b) => Some(*b),
                    other => {
                        check.error(
                            value.span().start,
                            key_name,
                            "",
                            format!("must be true or false, found {}", other.type_str()),
                        );
                        None
                    }
                }
            }
            "banks" => banks = read_banks(&mut check, value),
            "channel_policy" => {
                channel_policy = channels::read_policy(&mut check, value).map(|p| (p, at));
            }
            "channels" => {
                channel_list = channels::read_channels(&mut check, value).map(|c| (c, at));
            }
            "ledger" => {
                check.string(key_name, value);
            }
            "tokens" => {
                if !matches!(value.get_ref(), DeValue::Array(_)) {
                    check.error(
                        value.span().start,
                        key_name,
                        "",
                        "must be an array of [[tokens]] tables",
                    );
                }
            }
            other => check.error(
                at,
                other,
                "",
                format!(
                    "is not a known key (expected one of {})",
                    PLATFORM_KEYS.join(", ")
                ),
            ),
        }
    }
    for (key, missing) in [
        ("name", name.is_none()),
        ("delivery_bank", delivery_bank.is_none()),
        ("delivery_account", delivery_account.is_none()),
        ("fee_account", fee_account.is_none()),
        ("guarantee_account", guarantee_account.is_none()),
        ("suspense_account", suspense_account.is_none()),
        ("banks", banks.is_none()),
    ] {
        let present = root.get_ref().get(key).is_some();
        if missing && !present {
            check.error(0, key, "", "is missing");
        }
    }
    if let (Some((bank, at)), Some(banks)) = (&delivery_bank, &banks) {
        match banks.get(bank) {
            None => check.error(
                *at,
                "delivery_bank",
                bank,
                format!(
                    "is not a key of [banks] (banks: {})",
                    banks.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            Some(b) => {
                if let Some((account, at)) = &delivery_account {
                    if *account == b.custody_account {
                        check.error(
                            *at,
                            "delivery_account",
                            account,
                            format!("is the custody account of the delivery bank {bank}; the delivery account must be a different account"),
                        );
                    }
                }
            }
        }
    }
    // The platform's virtual accounts must be three different accounts: fees, the guarantee
    // fund and unallocated money must never mix.
    let accounts = [
        ("fee_account", &fee_account),
        ("guarantee_account", &guarantee_account),
        ("suspense_account", &suspense_account),
    ];
    for (i, (key, account)) in accounts.iter().enumerate() {
        for (other_key, other) in &accounts[..i] {
            if let (Some((a, at)), Some((b, _))) = (account, other) {
                if a == b {
                    check.error(*at, key, a, format!("is the same account as {other_key}"));
                }
            }
        }
    }
    let channels_present = root.get_ref().get("channels").is_some();
    let channels = channels::combine(&mut check, channel_policy, channel_list, channels_present);
    if !check.errors.is_empty() {
        check.errors.sort();
        return Err(check.errors);
    }
    match (
        name,
        delivery_bank,
        delivery_account,
        fee_account,
        guarantee_account,
        suspense_account,
        shortfall_policy,
        securities_check,
        banks,
    ) {
        (
            Some(name),
            Some((delivery_bank, _)),
            Some((delivery_account, _)),
            Some((fee_account, _)),
            Some((guarantee_account, _)),
            Some((suspense_account, _)),
            Some(shortfall_policy),
            Some(securities_check),
            Some(banks),
        ) => Ok(Platform {
            name,
            delivery_bank,
            delivery_account,
            fee_account,
            guarantee_account,
            suspense_account,
            shortfall_policy,
            securities_check,
            banks,
            channels,
        }),
        // Every `None` above was reported when it was set or in the missing-key pass.
        _ => Err(vec![RowError::new(
            Location::new(path, 1),
            "",
            "",
            "",
            "platform.toml is incomplete",
        )]),
    }
}

fn read_banks(
    check: &mut TomlCheck<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Option<BTreeMap<String, Bank>> {
    let DeValue::Table(table) = value.get_ref() else {
        check.error(
            value.span().start,
            "banks",
            "",
            "must be a table of [banks.<id>] tables",
        );
        return None;
    };
    let mut banks = BTreeMap::new();
    let mut ok = true;
    for (id, bank) in table.iter() {
        let id_text: &str = id.get_ref();
        let key = format!("banks.{id_text}");
        if let Some(reason) = id_problem(id_text) {
            check.error(id.span().start, &key, id_text, reason);
            ok = false;
            continue;
        }
        let DeValue::Table(fields) = bank.get_ref() else {
            check.error(
                bank.span().start,
                &key,
                "",
                "must be a table with custody_account",
            );
            ok = false;
            continue;
        };
        let mut custody = None;
        let mut bic = None;
        for (field, value) in fields.iter() {
            let field_name: &str = field.get_ref();
            let full = format!("{key}.{field_name}");
            match field_name {
                "custody_account" => custody = check.id(&full, value),
                "bic" => {
                    bic = channels::read_bic(check, &full, value);
                    ok &= bic.is_some();
                }
                _ => {
                    check.error(
                        field.span().start,
                        &full,
                        "",
                        "is not a known key (expected custody_account or bic)",
                    );
                    ok = false;
                }
            }
        }
        match custody {
            Some(custody_account) => {
                banks.insert(
                    id_text.to_owned(),
                    Bank {
                        id: id_text.to_owned(),
                        custody_account,
                        bic,
                    },
                );
            }
            None => {
                if fields.get("custody_account").is_none() {
                    check.error(
                        id.span().start,
                        &format!("{key}.custody_account"),
                        "",
                        "is missing",
                    );
                }
                ok = false;
            }
        }
    }
    if banks.is_empty() && ok {
        check.error(
            value.span().start,
            "banks",
            "",
            "must name at least one bank",
        );
        ok = false;
    }
    ok.then_some(banks)
}

/// One CSV row being decoded: its fields by known column, and the problems found so far.
pub(crate) struct Row<'a> {
    pub(crate) at: Location,
    /// The row's id for messages, once it is known to be valid.
    id: String,
    columns: &'static [Column],
    values: Vec<Option<&'a str>>,
    errors: Vec<RowError>,
}

impl<'a> Row<'a> {
    pub(crate) fn text(&self, k: usize) -> &'a str {
        self.values.get(k).copied().flatten().unwrap_or("")
    }

    pub(crate) fn present(&self, k: usize) -> bool {
        self.values.get(k).copied().flatten().is_some()
    }

    pub(crate) fn fail(&mut self, k: usize, value: &str, reason: impl Into<String>) {
        self.errors.push(RowError::new(
            self.at.clone(),
            self.id.clone(),
            self.columns[k].name,
            value,
            reason,
        ));
    }

    pub(crate) fn id(&mut self, k: usize) -> Option<String> {
        let text = self.text(k);
        match id_problem(text) {
            None => Some(text.to_owned()),
            Some(reason) => {
                self.fail(k, text, reason);
                None
            }
        }
    }

    /// Free text that may not be empty (names, account numbers at other banks).
    pub(crate) fn filled(&mut self, k: usize) -> Option<String> {
        let text = self.text(k);
        if text.trim().is_empty() {
            self.fail(k, text, "is empty");
            None
        } else {
            Some(text.to_owned())
        }
    }

    pub(crate) fn non_negative_decimal(&mut self, k: usize) -> Option<Decimal> {
        let text = self.text(k);
        match Decimal::parse(text) {
            Ok(d) if d.is_negative() => {
                self.fail(k, text, "is negative; it must be at least 0");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.fail(k, text, decimal_reason(&e));
                None
            }
        }
    }

    pub(crate) fn currency(&mut self, k: usize) -> Option<Currency> {
        let text = self.text(k);
        let found = Currency::from_code(text);
        if found.is_none() {
            self.fail(
                k,
                text,
                "is not a known ISO 4217 currency code (upper case, e.g. CNY)",
            );
        }
        found
    }

    pub(crate) fn integer(&mut self, k: usize) -> Option<i64> {
        let text = self.text(k);
        match parse_i64(text) {
            Ok(v) => Some(v),
            Err(e) => {
                let reason = e.reason(self.columns[k].name);
                self.fail(k, text, reason);
                None
            }
        }
    }
}

/// Reads a reference CSV file, handing each row whose fields are UTF-8 to `decode`, and
/// collects every problem. `id_column` names the column whose value identifies a row in
/// messages.
pub(crate) fn read_reference_csv<T>(
    path: &Path,
    columns: &'static [Column],
    id_column: usize,
    mut decode: impl FnMut(&mut Row<'_>) -> Option<T>,
) -> Result<Parsed<T>, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    // The scanner reads in large blocks itself.
    let mut scanner = CsvScanner::new(file);
    let mut parsed = Parsed {
        rows: Vec::new(),
        errors: Vec::new(),
    };
    let layout = match read_header(&mut scanner, path, columns).map_err(io_error)? {
        Ok(layout) => layout,
        Err(errors) => {
            parsed.errors = errors;
            return Ok(parsed);
        }
    };
    loop {
        let line = match scanner.next_record().map_err(io_error)? {
            Scan::End => break,
            Scan::Malformed { line, reason } => {
                parsed
                    .errors
                    .push(RowError::new(Location::new(path, line), "", "", "", reason));
                continue;
            }
            Scan::Record(line) => line,
        };
        let at = Location::new(path, line);
        if scanner.len() != layout.width {
            parsed.errors.push(width_error(at, scanner.len(), &layout));
            continue;
        }
        let mut row = Row {
            at,
            id: String::new(),
            columns,
            values: Vec::with_capacity(columns.len()),
            errors: Vec::new(),
        };
        for (k, index) in layout.index.iter().enumerate() {
            match index.map(|i| scanner.field_str(i)) {
                None => row.values.push(None),
                Some(Ok(text)) => row.values.push(Some(text)),
                Some(Err(shown)) => {
                    row.values.push(None);
                    row.fail(k, &shown, UTF8_REASON);
                }
            }
        }
        let id_text = row.text(id_column);
        if id_problem(id_text).is_none() {
            row.id = id_text.to_owned();
        }
        if !row.errors.is_empty() {
            parsed.errors.append(&mut row.errors);
            continue;
        }
        let decoded = decode(&mut row);
        parsed.errors.append(&mut row.errors);
        if let Some(value) = decoded {
            parsed.rows.push(value);
        }
    }
    Ok(parsed)
}

/// Keeps the first line of every key and reports later ones.
pub(crate) struct Unique<K> {
    seen: HashMap<K, u64>,
}

impl<K: std::hash::Hash + Eq> Unique<K> {
    pub(crate) fn new() -> Self {
        Unique {
            seen: HashMap::new(),
        }
    }

    /// `Err(first_line)` when the key was seen before.
    pub(crate) fn insert(&mut self, key: K, line: u64) -> Result<(), u64> {
        match self.seen.get(&key) {
            Some(&first) => Err(first),
            None => {
                self.seen.insert(key, line);
                Ok(())
            }
        }
    }
}

const MEMBER_COLUMNS: &[Column] = &[
    required("member_id"),
    required("name"),
    required("settlement_bank"),
    required("bound_bank"),
    required("bound_account"),
    required("bound_account_name"),
    required("status"),
    required("fee_rate"),
    required("min_fee"),
    optional("deposit_code"),
];

pub fn read_members(path: &Path) -> Result<Parsed<Member>, FormatError> {
    const ID: usize = 0;
    const NAME: usize = 1;
    const SETTLEMENT_BANK: usize = 2;
    const BOUND_BANK: usize = 3;
    const BOUND_ACCOUNT: usize = 4;
    const BOUND_ACCOUNT_NAME: usize = 5;
    const STATUS: usize = 6;
    const FEE_RATE: usize = 7;
    const MIN_FEE: usize = 8;
    const DEPOSIT_CODE: usize = 9;
    let mut ids = Unique::new();
    let mut codes = Unique::new();
    read_reference_csv(path, MEMBER_COLUMNS, ID, |row| {
        let member_id = row.id(ID);
        let name = row.filled(NAME);
        let settlement_bank = row.id(SETTLEMENT_BANK);
        let bound_bank = row.filled(BOUND_BANK);
        let bound_account = row.filled(BOUND_ACCOUNT);
        let bound_account_name = row.filled(BOUND_ACCOUNT_NAME);
        let status = match row.text(STATUS) {
            "active" => Some(MemberStatus::Active),
            "suspended" => Some(MemberStatus::Suspended),
            "closed" => Some(MemberStatus::Closed),
            other => {
                row.fail(STATUS, other, "must be active, suspended or closed");
                None
            }
        };
        let fee_rate = row.non_negative_decimal(FEE_RATE);
        let min_fee = row.non_negative_decimal(MIN_FEE);
        // An empty code means the member has none; several members may have none.
        let deposit_code = if row.present(DEPOSIT_CODE) && !row.text(DEPOSIT_CODE).is_empty() {
            Some(row.id(DEPOSIT_CODE))
        } else {
            None
        };
        let line = row.at.line;
        if let Some(id) = &member_id {
            if let Err(first) = ids.insert(id.clone(), line) {
                row.fail(
                    ID,
                    id,
                    format!("is a duplicate member_id (first on line {first})"),
                );
                return None;
            }
        }
        if let Some(Some(code)) = &deposit_code {
            if let Err(first) = codes.insert(code.clone(), line) {
                row.fail(
                    DEPOSIT_CODE,
                    code,
                    format!("is a duplicate deposit_code (first on line {first})"),
                );
                return None;
            }
        }
        Some(Member {
            member_id: member_id?,
            name: name?,
            settlement_bank: settlement_bank?,
            bound_bank: bound_bank?,
            bound_account: bound_account?,
            bound_account_name: bound_account_name?,
            status: status?,
            fee_rate: FeeRate(fee_rate?),
            min_fee: min_fee?,
            deposit_code: match deposit_code {
                Some(code) => Some(code?),
                None => None,
            },
            line,
        })
    })
}

const INSTRUMENT_COLUMNS: &[Column] = &[
    required("instrument"),
    required("name"),
    required("currency"),
    required("price_scale"),
    required("lot_size"),
];

/// SPEC §2.3: a price has at most 8 decimals.
const MAX_PRICE_SCALE: i64 = 8;

pub fn read_instruments(path: &Path) -> Result<Parsed<Instrument>, FormatError> {
    const ID: usize = 0;
    const NAME: usize = 1;
    const CURRENCY: usize = 2;
    const PRICE_SCALE: usize = 3;
    const LOT_SIZE: usize = 4;
    let mut ids = Unique::new();
    read_reference_csv(path, INSTRUMENT_COLUMNS, ID, |row| {
        let instrument = row.id(ID);
        let name = row.filled(NAME);
        let currency = row.currency(CURRENCY);
        let price_scale = row.integer(PRICE_SCALE).and_then(|scale| {
            if (0..=MAX_PRICE_SCALE).contains(&scale) {
                u32::try_from(scale).ok()
            } else {
                row.fail(
                    PRICE_SCALE,
                    row.text(PRICE_SCALE),
                    format!("must be between 0 and {MAX_PRICE_SCALE}"),
                );
                None
            }
        });
        let lot_size = row.integer(LOT_SIZE).and_then(|lot| {
            if lot >= 1 {
                Some(lot)
            } else {
                row.fail(LOT_SIZE, row.text(LOT_SIZE), "must be at least 1");
                None
            }
        });
        let line = row.at.line;
        if let Some(id) = &instrument {
            if let Err(first) = ids.insert(id.clone(), line) {
                row.fail(
                    ID,
                    id,
                    format!("is a duplicate instrument (first on line {first})"),
                );
                return None;
            }
        }
        Some(Instrument {
            instrument: instrument?,
            name: name?,
            currency: currency?,
            price_scale: price_scale?,
            lot_size: lot_size?,
            line,
        })
    })
}

const BALANCE_COLUMNS: &[Column] = &[
    required("account"),
    required("currency"),
    required("balance"),
];

/// Opening balances. A negative balance is refused: a virtual account holds money that sits
/// in a custody account, and a debt is never carried as a balance (SPEC §3, policy `cover`).
pub fn read_opening_balances(path: &Path) -> Result<Parsed<OpeningBalance>, FormatError> {
    const ACCOUNT: usize = 0;
    const CURRENCY: usize = 1;
    const BALANCE: usize = 2;
    let mut keys = Unique::new();
    read_reference_csv(path, BALANCE_COLUMNS, ACCOUNT, |row| {
        let account = row.id(ACCOUNT);
        let currency = row.currency(CURRENCY);
        let balance = currency.and_then(|currency| {
            let text = row.text(BALANCE);
            match currency.parse_amount(text) {
                Ok(amount) if amount.0 < 0 => {
                    row.fail(
                        BALANCE,
                        text,
                        "is negative; an opening balance is at least 0",
                    );
                    None
                }
                Ok(amount) => Some(amount),
                Err(e) => {
                    row.fail(
                        BALANCE,
                        text,
                        format!("{} for {currency}", decimal_reason(&e)),
                    );
                    None
                }
            }
        });
        let line = row.at.line;
        let (account, currency, balance) = (account?, currency?, balance?);
        if let Err(first) = keys.insert((account.clone(), currency), line) {
            row.fail(
                ACCOUNT,
                &account,
                format!("has a second {currency} balance (first on line {first})"),
            );
            return None;
        }
        Some(OpeningBalance {
            account,
            currency,
            balance,
            line,
        })
    })
}

const POSITION_COLUMNS: &[Column] = &[
    required("member_id"),
    required("instrument"),
    required("quantity"),
];

/// Opening positions. A negative quantity is refused: a short position would already be a
/// securities shortfall (SPEC §3).
pub fn read_opening_positions(path: &Path) -> Result<Parsed<OpeningPosition>, FormatError> {
    const MEMBER: usize = 0;
    const INSTRUMENT: usize = 1;
    const QUANTITY: usize = 2;
    let mut keys = Unique::new();
    read_reference_csv(path, POSITION_COLUMNS, MEMBER, |row| {
        let member_id = row.id(MEMBER);
        let instrument = row.id(INSTRUMENT);
        let quantity = row.integer(QUANTITY).and_then(|q| {
            if q < 0 {
                row.fail(
                    QUANTITY,
                    row.text(QUANTITY),
                    "is negative; an opening position is at least 0",
                );
                None
            } else {
                Some(q)
            }
        });
        let line = row.at.line;
        let (member_id, instrument, quantity) = (member_id?, instrument?, quantity?);
        if let Err(first) = keys.insert((member_id.clone(), instrument.clone()), line) {
            row.fail(
                INSTRUMENT,
                &instrument,
                format!("is listed twice for member {member_id} (first on line {first})"),
            );
            return None;
        }
        Some(OpeningPosition {
            member_id,
            instrument,
            quantity,
            line,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        (dir, path)
    }

    const PLATFORM: &str = r#"
name = "Example Exchange"
delivery_bank = "B01"          # bank that holds the delivery account
delivery_account = "DLV-001"
fee_account = "FEE"
guarantee_account = "GUARANTEE"
suspense_account = "SUSPENSE"
shortfall_policy = "cover"

[banks.B01]
custody_account = "CUS-B01"
[banks.B02]
custody_account = "CUS-B02"
"#;

    fn platform(text: &str) -> Result<Platform, Vec<RowError>> {
        parse_platform(Path::new("platform.toml"), text.as_bytes())
    }

    fn reasons(errors: &[RowError]) -> Vec<String> {
        errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn reads_the_spec_platform() {
        let p = platform(PLATFORM).unwrap();
        assert_eq!(p.name, "Example Exchange");
        assert_eq!(p.delivery_bank, "B01");
        assert_eq!(p.shortfall_policy, ShortfallPolicy::Cover);
        assert!(p.securities_check);
        assert_eq!(p.banks.len(), 2);
        assert_eq!(p.banks["B02"].custody_account, "CUS-B02");
        assert_eq!(p.banks["B02"].id, "B02");
        let defaulted = platform(&PLATFORM.replace("shortfall_policy = \"cover\"", "")).unwrap();
        assert_eq!(defaulted.shortfall_policy, ShortfallPolicy::Abort);
        let cash_only =
            platform(&PLATFORM.replace("shortfall_policy = \"cover\"", "securities_check = false"))
                .unwrap();
        assert!(!cash_only.securities_check);
    }

    #[test]
    fn accepts_tokens_tables() {
        let text = format!(
            "{PLATFORM}\n[[tokens]]\nname = \"ops\"\nsha256 = \"ab\"\nrole = \"operator\"\n"
        );
        assert!(platform(&text).is_ok());
    }

    #[test]
    fn platform_errors_name_the_key_and_line() {
        let errors = platform(&PLATFORM.replace("fee_account", "fee_acount")).unwrap_err();
        let text = reasons(&errors);
        assert!(
            text.iter()
                .any(|e| e.contains("platform.toml:5: column fee_acount: is not a known key")),
            "{text:?}"
        );
        assert!(text
            .iter()
            .any(|e| e.contains("column fee_account: is missing")));

        let errors =
            platform(&PLATFORM.replace("delivery_bank = \"B01\"", "delivery_bank = \"B09\""))
                .unwrap_err();
        assert!(reasons(&errors)[0].contains("value \"B09\": is not a key of [banks]"));

        let errors = platform(&PLATFORM.replace("\"cover\"", "\"maybe\"")).unwrap_err();
        assert!(reasons(&errors)[0].contains("must be \"abort\" or \"cover\""));

        let errors = platform(&PLATFORM.replace("\"SUSPENSE\"", "\"FEE\"")).unwrap_err();
        assert!(reasons(&errors)[0].contains("is the same account as fee_account"));

        let errors = platform(&PLATFORM.replace("\"CUS-B02\"", "\"CUS B02\"")).unwrap_err();
        assert!(reasons(&errors)[0].contains("banks.B02.custody_account"));

        let errors = platform(&format!("{PLATFORM}\n[banks.B03]\ncustody = \"X\"\n")).unwrap_err();
        let text = reasons(&errors);
        assert!(text
            .iter()
            .any(|e| e.contains("banks.B03.custody: is not a known key")));
        assert!(text
            .iter()
            .any(|e| e.contains("banks.B03.custody_account: is missing")));

        let errors = platform(
            &PLATFORM
                .replace("securities_check", "x")
                .replace("shortfall_policy = \"cover\"", "securities_check = \"no\""),
        )
        .unwrap_err();
        assert!(reasons(&errors)[0].contains("must be true or false"));
    }

    #[test]
    fn toml_syntax_errors_give_line_and_column() {
        let errors = platform("name = \"x\"\ndelivery_bank = B01\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].location.line, 2);
        assert!(
            errors[0]
                .reason
                .starts_with("TOML syntax error at line 2, column 17"),
            "{}",
            errors[0].reason
        );
        let errors = parse_platform(Path::new("p.toml"), b"name = \"\xFF\"").unwrap_err();
        assert!(errors[0].reason.contains("UTF-8"));
    }

    #[test]
    fn reads_platform_from_disk() {
        let (_dir, path) = file("platform.toml", PLATFORM.as_bytes());
        assert!(read_platform(&path).unwrap().is_ok());
        assert!(matches!(
            read_platform(&path.with_file_name("absent.toml")),
            Err(FormatError::Io { .. })
        ));
    }

    const MEMBERS_HEADER: &str = "member_id,name,settlement_bank,bound_bank,bound_account,bound_account_name,status,fee_rate,min_fee";

    #[test]
    fn reads_members_in_any_column_order() {
        let text = "\u{FEFF}status,member_id,name,settlement_bank,bound_bank,bound_account,bound_account_name,fee_rate,min_fee,deposit_code\r\n\
            active,A,\"Alpha, Ltd\",B01,ICBC,6222 0001,Alpha Ltd,0.0003,5.00,ALPHA1\r\n\
            suspended,B,Beta,B02,CCB,6222 0002,Beta,0.00025,0,\r\n";
        let (_dir, path) = file("members.csv", text.as_bytes());
        let parsed = read_members(&path).unwrap();
        assert_eq!(parsed.errors, vec![]);
        assert_eq!(parsed.rows.len(), 2);
        let a = &parsed.rows[0];
        assert_eq!(a.member_id, "A");
        assert_eq!(a.name, "Alpha, Ltd");
        assert_eq!(a.fee_rate, FeeRate(Decimal::parse("0.0003").unwrap()));
        assert_eq!(a.min_fee, Decimal::parse("5").unwrap());
        assert_eq!(a.deposit_code.as_deref(), Some("ALPHA1"));
        assert_eq!(a.line, 2);
        assert_eq!(parsed.rows[1].status, MemberStatus::Suspended);
        assert_eq!(parsed.rows[1].deposit_code, None);
    }

    #[test]
    fn reports_every_bad_member_row() {
        let text = format!(
            "{MEMBERS_HEADER},deposit_code\n\
             A,Alpha,B01,ICBC,1,Alpha,active,0.0003,5,C1\n\
             A,Alpha again,B01,ICBC,1,Alpha,active,0.0003,5,\n\
             B,Beta,B01,ICBC,2,Beta,frozen,-0.1,x,C1\n\
             C,Gamma,B01,ICBC,3,Gamma,active,0,0,C1\n\
             D,Delta,B01\n\
             E,@@,B01,ICBC,4,E,active,0,0,\n\
             bad id,Zeta,B01,ICBC,5,Z,active,0,0,\n"
        );
        let bytes = text.replace("@@", "\u{1}").into_bytes();
        let bytes: Vec<u8> = bytes
            .iter()
            .map(|&b| if b == 1 { 0xFF } else { b })
            .collect();
        let (_dir, path) = file("members.csv", &bytes);
        let parsed = read_members(&path).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        let shown = reasons(&parsed.errors);
        let expect = [
            "members.csv:3: column member_id: value \"A\": is a duplicate member_id (first on line 2)",
            "members.csv:4: column status: value \"frozen\": must be active, suspended or closed",
            "members.csv:4: column fee_rate: value \"-0.1\": is negative",
            "members.csv:4: column min_fee: value \"x\": is not a decimal number",
            "members.csv:4: column deposit_code: value \"C1\": is a duplicate deposit_code (first on line 2)",
            "members.csv:5: column deposit_code: value \"C1\": is a duplicate deposit_code (first on line 2)",
            "members.csv:6: row has 3 fields, the header (line 1) has 10",
            "members.csv:7: column name: value \"\u{FFFD}\": is not valid UTF-8",
            "members.csv:8: column member_id: value \"bad id\": is not a valid id",
        ];
        assert_eq!(shown.len(), expect.len(), "{shown:#?}");
        for (got, want) in shown.iter().zip(expect) {
            assert!(got.contains(want), "{got} / {want}");
        }
        assert_eq!(parsed.errors[1].id, "B");
        assert_eq!(parsed.errors[8].id, "");
    }

    #[test]
    fn header_problems_are_errors_at_line_one() {
        for (text, want) in [
            ("", "file is empty"),
            (
                "member_id,name\n",
                "column settlement_bank: is missing from the header",
            ),
            (
                &format!("{MEMBERS_HEADER},colour\n") as &str,
                "column colour: is not a known column",
            ),
            (
                &format!("{MEMBERS_HEADER},name\n") as &str,
                "column name: appears twice in the header",
            ),
        ] {
            let (_dir, path) = file("members.csv", text.as_bytes());
            let parsed = read_members(&path).unwrap();
            assert!(parsed.rows.is_empty());
            assert!(
                parsed
                    .errors
                    .iter()
                    .any(|e| e.location.line == 1 && e.to_string().contains(want)),
                "{text:?}: {:?}",
                reasons(&parsed.errors)
            );
        }
    }

    #[test]
    fn reads_instruments_with_range_checks() {
        let text = "instrument,name,currency,price_scale,lot_size\n\
                    X,Ex,CNY,3,1\n\
                    Y,Why,JPY,0,100\n\
                    X,Dup,CNY,2,1\n\
                    Z,Zed,XXX,9,0\n\
                    W,Dub,cny,1.5,-1\n";
        let (_dir, path) = file("instruments.csv", text.as_bytes());
        let parsed = read_instruments(&path).unwrap();
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[1].currency.code(), "JPY");
        assert_eq!(parsed.rows[1].lot_size, 100);
        assert_eq!(parsed.rows[0].price_scale, 3);
        let shown = reasons(&parsed.errors);
        assert_eq!(shown.len(), 7, "{shown:#?}");
        assert!(shown[0].contains(":4: column instrument: value \"X\": is a duplicate"));
        assert!(shown[1].contains(":5: column currency: value \"XXX\": is not a known ISO 4217"));
        assert!(shown[2].contains("column price_scale: value \"9\": must be between 0 and 8"));
        assert!(shown[3].contains("column lot_size: value \"0\": must be at least 1"));
        assert!(shown[4].contains(":6: column currency: value \"cny\""));
        assert!(shown[5].contains("column price_scale: value \"1.5\": is not an integer"));
        assert!(shown[6].contains("column lot_size: value \"-1\""));
    }

    #[test]
    fn reads_opening_balances_at_the_currency_scale() {
        let text = "currency,account,balance\n\
                    CNY,A,1000.00\n\
                    JPY,A,500\n\
                    CNY,B,20000\n\
                    CNY,A,1\n\
                    CNY,C,1.005\n\
                    JPY,D,1.5\n\
                    CNY,E,-1\n\
                    CNY,F,99999999999999999999\n";
        let (_dir, path) = file("opening_balances.csv", text.as_bytes());
        let parsed = read_opening_balances(&path).unwrap();
        assert_eq!(
            parsed
                .rows
                .iter()
                .map(|b| (b.account.as_str(), b.balance.0))
                .collect::<Vec<_>>(),
            vec![("A", 100000), ("A", 500), ("B", 2000000)]
        );
        let shown = reasons(&parsed.errors);
        assert_eq!(shown.len(), 5, "{shown:#?}");
        assert!(shown[0].contains(
            ":5: column account: value \"A\": has a second CNY balance (first on line 2)"
        ));
        assert!(shown[1].contains(
            ":6: column balance: value \"1.005\": has 3 decimals, at most 2 allowed for CNY"
        ));
        assert!(shown[2].contains("has 1 decimals, at most 0 allowed for JPY"));
        assert!(shown[3].contains("is negative"));
        assert!(shown[4].contains("too many digits"));
    }

    #[test]
    fn reads_opening_positions() {
        let text = "member_id,instrument,quantity\nA,X,1000\nA,Y,0\nA,X,5\nB,X,1.5\nB,Y,-3\nC,X,99999999999999999999\n";
        let (_dir, path) = file("opening_positions.csv", text.as_bytes());
        let parsed = read_opening_positions(&path).unwrap();
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[0].quantity, 1000);
        let shown = reasons(&parsed.errors);
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(shown[0].contains(
            ":4: column instrument: value \"X\": is listed twice for member A (first on line 2)"
        ));
        assert!(shown[1].contains("is not an integer"));
        assert!(shown[2].contains("is negative"));
        assert!(shown[3].contains("quantity overflow"));
    }

    #[test]
    fn missing_file_is_an_io_error() {
        assert!(matches!(
            read_members(Path::new("/nonexistent/members.csv")),
            Err(FormatError::Io { .. })
        ));
    }
}
