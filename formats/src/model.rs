//! The shared vocabulary of Clearhouse: reference data, trades as read from a file, and the
//! places and reasons of bad input. Readers produce these; the engine consumes them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::money::{AmountMinor, Currency, Decimal};

/// A business date, `YYYY-MM-DD`, stored as `yyyymmdd` so that comparison is numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusinessDate(u32);

impl BusinessDate {
    /// Parses `YYYY-MM-DD` with a real calendar check (no 2026-02-30).
    pub fn parse(text: &str) -> Option<BusinessDate> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |s: &[u8]| -> Option<u32> {
            s.iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
        if y == 0 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        Some(BusinessDate(y * 10000 + m * 100 + d))
    }

    pub fn yyyymmdd(&self) -> u32 {
        self.0
    }

    pub fn from_yyyymmdd(value: u32) -> Option<BusinessDate> {
        Self::parse(&format!(
            "{:04}-{:02}-{:02}",
            value / 10000,
            value / 100 % 100,
            value % 100
        ))
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

impl fmt::Display for BusinessDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0 / 10000,
            self.0 / 100 % 100,
            self.0 % 100
        )
    }
}

/// Ids of members, trades, requests: 1–32 chars of `[A-Za-z0-9_-]` (SPEC §2.2, §2.4).
pub fn is_valid_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The pattern of ISO 20022 `BICFIDec2014Identifier` (ISO 9362, 8 or 11 characters):
/// `[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?`.
pub fn is_bic(text: &str) -> bool {
    let b = text.as_bytes();
    let alnum = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    (b.len() == 8 || b.len() == 11)
        && b[..4].iter().all(alnum)
        && b[4..6].iter().all(u8::is_ascii_uppercase)
        && b[6..].iter().all(alnum)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShortfallPolicy {
    Abort,
    Cover,
}

/// One settlement bank of the platform and the platform's custody account there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bank {
    pub id: String,
    pub custody_account: String,
    /// The bank's BIC (ISO 9362), if platform.toml gives one: the bank files then identify the
    /// bank by `BICFI` instead of by its id.
    pub bic: Option<String>,
}

/// The channel of every instruction of a platform that declares no `[[channels]]`: the bank's
/// default. A declared channel may not take this name.
pub const DEFAULT_CHANNEL: &str = "default";

/// How instructions are put on the platform's payment channels (`channel_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelPolicy {
    /// Each instruction goes whole through the cheapest channel whose maximum fits it.
    Route,
    /// Each instruction goes through the cheapest channel; an amount above its maximum is
    /// split into items of the maximum, the remainder last.
    Split,
}

impl ChannelPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelPolicy::Route => "route",
            ChannelPolicy::Split => "split",
        }
    }
}

/// The per-item maximum of a payment channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMax {
    /// No maximum in any currency.
    Unlimited,
    /// The same number of units in every currency (`max_amount = "50000.00"`): at least one
    /// whole unit; in a currency with fewer minor digits than the number has decimals it is
    /// truncated toward zero, so the maximum is never exceeded.
    Every(Decimal),
    /// Per currency (`max_amount = { CNY = "50000.00", JPY = "5000000" }`), in minor units, each
    /// > 0; a currency not listed has no maximum on this channel.
    PerCurrency(BTreeMap<Currency, AmountMinor>),
}

/// One payment channel of platform.toml `[[channels]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// 1–32 characters of `[A-Za-z0-9_-]`, unique, not `default`.
    pub name: String,
    /// Lower is cheaper; ties are broken by name.
    pub cost: u32,
    pub max_amount: ChannelMax,
}

impl Channel {
    /// The largest amount one item may carry in `currency`, in minor units; `None` when the
    /// channel has no maximum there. Always ≥ 1 when present.
    pub fn max_minor(&self, currency: Currency) -> Option<i64> {
        match &self.max_amount {
            ChannelMax::Unlimited => None,
            ChannelMax::PerCurrency(table) => table.get(&currency).map(|a| a.0),
            ChannelMax::Every(units) => Some(truncate_to_minor(*units, currency.minor_digits())),
        }
    }
}

/// `units` in minor units of a currency with `digits` minor digits, truncated toward zero,
/// saturating at `i64::MAX` (a maximum that large is no maximum).
fn truncate_to_minor(units: Decimal, digits: u32) -> i64 {
    let mantissa = i128::from(units.mantissa);
    let value = if digits >= units.scale {
        10i128
            .checked_pow(digits - units.scale)
            .and_then(|f| mantissa.checked_mul(f))
            .unwrap_or(i128::MAX)
    } else {
        10i128
            .checked_pow(units.scale - digits)
            .map_or(0, |f| mantissa / f)
    };
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The payment channels of a platform and the policy that uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    pub policy: ChannelPolicy,
    /// At least one; sorted cheapest first, ties by name.
    pub channels: Vec<Channel>,
}

/// platform.toml (SPEC §2.1), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub name: String,
    pub delivery_bank: String,
    pub delivery_account: String,
    pub fee_account: String,
    pub guarantee_account: String,
    pub suspense_account: String,
    pub shortfall_policy: ShortfallPolicy,
    /// `false` for markets that only settle cash: no securities shortfall check.
    pub securities_check: bool,
    /// Sorted by bank id.
    pub banks: BTreeMap<String, Bank>,
    /// `None` when platform.toml declares no `[[channels]]`: every instruction goes through
    /// the bank's default channel, whole.
    pub channels: Option<Channels>,
}

impl Platform {
    /// The platform's own virtual accounts, all held at the delivery bank.
    pub fn platform_accounts(&self) -> [&str; 3] {
        [
            &self.fee_account,
            &self.guarantee_account,
            &self.suspense_account,
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Active,
    Suspended,
    Closed,
}

impl MemberStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Suspended => "suspended",
            MemberStatus::Closed => "closed",
        }
    }
}

/// A fee rate such as `0.0003`, kept exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRate(pub Decimal);

/// One row of members.csv (SPEC §2.2), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub name: String,
    pub settlement_bank: String,
    pub bound_bank: String,
    pub bound_account: String,
    pub bound_account_name: String,
    pub status: MemberStatus,
    pub fee_rate: FeeRate,
    /// In the trade's currency; converted to each currency's minor unit by the engine.
    pub min_fee: Decimal,
    pub deposit_code: Option<String>,
    /// 1-based line in members.csv, for messages.
    pub line: u64,
}

/// One row of instruments.csv (SPEC §2.3), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub instrument: String,
    pub name: String,
    pub currency: Currency,
    /// The most decimals a price may have, 0–8.
    pub price_scale: u32,
    pub lot_size: i64,
    pub line: u64,
}

/// One row of opening_balances.csv (SPEC §2.5). The amount is kept as decimal text until the
/// engine knows the currency's minor unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningBalance {
    pub account: String,
    pub currency: Currency,
    pub balance: AmountMinor,
    pub line: u64,
}

/// One row of opening_positions.csv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningPosition {
    pub member_id: String,
    pub instrument: String,
    pub quantity: i64,
    pub line: u64,
}

/// A trade as a reader decoded it: fields are syntactically valid (the id is text, the price a
/// decimal, the quantity an integer); whether they make sense (known members, lot size,
/// price scale) is the engine's validation. Borrowed so that readers do not allocate per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeFields<'a> {
    pub trade_id: &'a str,
    pub business_date: &'a str,
    pub instrument: &'a str,
    pub buyer: &'a str,
    pub seller: &'a str,
    pub price: Decimal,
    pub quantity: i64,
    pub executed_at: Option<&'a str>,
}

/// How a deposit reached the custody account (SPEC §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DepositChannel {
    /// An ordinary bank transfer: spendable and withdrawable at once.
    Bank,
    /// An online third-party channel: spendable at once, withdrawable from the next business
    /// date, when the channel has settled.
    Online,
}

impl DepositChannel {
    pub fn as_str(&self) -> &'static str {
        match self {
            DepositChannel::Bank => "bank",
            DepositChannel::Online => "online",
        }
    }
}

/// One row of deposits.csv: money that arrived at the custody account of `bank`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    pub bank_ref: String,
    pub bank: String,
    pub payer_bank: String,
    pub payer_account: String,
    pub payer_name: String,
    pub currency: Currency,
    /// Always > 0.
    pub amount: AmountMinor,
    pub memo: String,
    pub channel: DepositChannel,
    pub line: u64,
}

/// One row of withdrawals.csv: a member asks for money to its bound account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub request_id: String,
    pub member_id: String,
    pub currency: Currency,
    /// Always > 0.
    pub amount: AmountMinor,
    pub line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeAction {
    Freeze,
    Unfreeze,
}

impl FreezeAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            FreezeAction::Freeze => "freeze",
            FreezeAction::Unfreeze => "unfreeze",
        }
    }
}

/// One row of freezes.csv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeEvent {
    pub freeze_id: String,
    pub member_id: String,
    pub currency: Currency,
    /// Always > 0.
    pub amount: AmountMinor,
    pub action: FreezeAction,
    pub line: u64,
}

/// Where a row came from: a line of a text file, or a row of a Parquet file (1-based, header
/// not counted for Parquet; CSV lines count the header as line 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: u64,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: u64) -> Location {
        Location {
            file: file.into(),
            line,
        }
    }

    /// The file name alone, as `rejects.csv` prints it in its `source` column.
    pub fn source(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.file.display().to_string())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One bad row: the place, the column (or field), the offending value and the reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowError {
    pub location: Location,
    /// The row's id where it could be read (trade id, member id, ...), else empty.
    pub id: String,
    /// The column or field; empty when the whole row is at fault.
    pub column: String,
    /// The offending value, truncated to a readable length.
    pub value: String,
    pub reason: String,
}

/// Longest value quoted back in a message; longer values are cut with an ellipsis.
const VALUE_SHOWN_MAX: usize = 64;

impl RowError {
    pub fn new(
        location: Location,
        id: impl Into<String>,
        column: impl Into<String>,
        value: &str,
        reason: impl Into<String>,
    ) -> RowError {
        let mut shown: String = value.chars().take(VALUE_SHOWN_MAX).collect();
        if value.chars().count() > VALUE_SHOWN_MAX {
            shown.push('…');
        }
        RowError {
            location,
            id: id.into(),
            column: column.into(),
            value: shown,
            reason: reason.into(),
        }
    }

    /// The `reason` column of rejects.csv: column, value and reason in one sentence.
    pub fn describe(&self) -> String {
        match (self.column.is_empty(), self.value.is_empty()) {
            (true, _) => self.reason.clone(),
            (false, true) => format!("column {}: {}", self.column, self.reason),
            (false, false) => format!(
                "column {}: value {:?}: {}",
                self.column, self.value, self.reason
            ),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_against_the_calendar() {
        assert_eq!(
            BusinessDate::parse("2026-11-25").unwrap().to_string(),
            "2026-11-25"
        );
        assert!(BusinessDate::parse("2024-02-29").is_some());
        assert!(BusinessDate::parse("2026-02-29").is_none());
        assert!(BusinessDate::parse("2026-13-01").is_none());
        assert!(BusinessDate::parse("2026-1-01").is_none());
        assert!(BusinessDate::parse("20261125").is_none());
        assert!(BusinessDate::parse("2026-11-25") < BusinessDate::parse("2026-11-26"));
    }

    #[test]
    fn bics_follow_the_iso_pattern() {
        assert!(is_bic("BANKCNBJ"));
        assert!(is_bic("BANKCNBJXXX"));
        assert!(is_bic("B0NKCN1J"));
        assert!(!is_bic("BANKC1BJ"));
        assert!(!is_bic("bankcnbj"));
        assert!(!is_bic("BANKCNBJX"));
        assert!(!is_bic(""));
    }

    #[test]
    fn ids_follow_the_spec_alphabet() {
        assert!(is_valid_id("T-0001_a"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id(&"x".repeat(33)));
        assert!(!is_valid_id("é"));
    }
}
