//! What the banks send back, as plain entries: ISO 20022 camt.052/053/054 ([`crate::camt`])
//! and the simple confirmation CSV ([`crate::recon_csv`]).
//!
//! Both readers produce the same vocabulary: [`BankEntry`] (one booking, or one transaction of
//! a batch booking) and [`StatementBalance`] (a statement's opening or closing balance). Amounts
//! are exact minor units of their currency, never binary floats. Whether an entry confirms one
//! of our instructions is the engine's to judge (`engine::recon`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::{BusinessDate, Location, RowError};
use crate::money::{AmountMinor, Currency};
use crate::FormatError;

/// A bank file larger than this is refused rather than read: a statement of a custody account
/// for one day is kilobytes to a few megabytes.
pub const BANK_FILE_BYTES_MAX: u64 = 256 << 20;

/// Which side of the account an entry is booked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Money into the account (`CRDT`).
    Credit,
    /// Money out of the account (`DBIT`).
    Debit,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::Credit => "CRDT",
            Direction::Debit => "DBIT",
        }
    }

    pub fn flipped(self) -> Direction {
        match self {
            Direction::Credit => Direction::Debit,
            Direction::Debit => Direction::Credit,
        }
    }
}

/// What the bank says about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryStatus {
    /// Booked on the account (camt `BOOK`, CSV `settled`).
    Booked,
    /// Not booked yet (camt `PDNG` or `FUTR`, CSV `pending`).
    Pending,
    /// For information only, not a booking (camt `INFO`).
    Info,
    /// The transfer failed or was returned (CSV `failed`). A camt entry that reverses an
    /// earlier booking is [`EntryStatus::Booked`] with [`BankEntry::reversal`] set.
    Failed,
}

impl EntryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryStatus::Booked => "booked",
            EntryStatus::Pending => "pending",
            EntryStatus::Info => "info",
            EntryStatus::Failed => "failed",
        }
    }
}

/// One booking the bank reports, or one transaction of a batch booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankEntry {
    /// File and line where the entry (or its transaction details) starts.
    pub at: Location,
    /// The account it is booked on (IBAN or other id); `None` in the CSV, which names the
    /// instruction instead.
    pub account: Option<String>,
    pub currency: Currency,
    /// Always ≥ 0; the direction says which way it moved.
    pub amount: AmountMinor,
    /// `None` in the CSV.
    pub direction: Option<Direction>,
    pub status: EntryStatus,
    /// camt `RvslInd` true, or return information (`RtrInf`): this entry undoes an earlier
    /// booking, so its direction is the opposite of the original transfer's.
    pub reversal: bool,
    pub booking_date: Option<BusinessDate>,
    pub value_date: Option<BusinessDate>,
    /// The CSV's `instruction_id`, or camt `Refs/InstrId`.
    pub instruction_id: Option<String>,
    /// camt `Refs/EndToEndId` (`NOTPROVIDED` is read as absent).
    pub end_to_end_id: Option<String>,
    /// The bank's own reference: camt `AcctSvcrRef` (transaction's, else entry's), the CSV's
    /// `bank_ref`.
    pub account_servicer_ref: Option<String>,
    /// camt `NtryRef`.
    pub entry_ref: Option<String>,
    /// Unstructured remittance information, else the entry's additional information.
    pub remittance: Option<String>,
    /// Why it failed or was returned: the CSV's `reason`, camt `RtrInf` reason and text.
    pub reason: Option<String>,
}

impl BankEntry {
    /// The bank's best reference for this entry, for messages and de-duplication.
    pub fn bank_ref(&self) -> Option<&str> {
        self.account_servicer_ref
            .as_deref()
            .or(self.entry_ref.as_deref())
    }
}

/// Which balance of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BalanceKind {
    /// `OPBD`: opening booked balance.
    Opening,
    /// `CLBD`: closing booked balance.
    Closing,
}

impl BalanceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BalanceKind::Opening => "OPBD",
            BalanceKind::Closing => "CLBD",
        }
    }
}

/// An opening or closing booked balance of one account in a statement (camt.053) or report
/// (camt.052).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementBalance {
    pub at: Location,
    pub account: String,
    pub kind: BalanceKind,
    pub currency: Currency,
    /// Signed: a debit balance (`DBIT`) is negative.
    pub amount: AmountMinor,
    pub date: Option<BusinessDate>,
}

/// The kind of a bank file, with the ISO 20022 message version where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankFileKind {
    /// `camt.052` account report, `camt.053` statement or `camt.054` debit/credit
    /// notification; `version` is the namespace's message id (`camt.054.001.04`), if declared.
    Camt {
        message: &'static str,
        version: Option<String>,
    },
    /// `instruction_id,status,bank_ref,amount,currency,reason`.
    Csv,
}

impl fmt::Display for BankFileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankFileKind::Camt {
                version: Some(v), ..
            } => f.write_str(v),
            BankFileKind::Camt { message, .. } => f.write_str(message),
            BankFileKind::Csv => f.write_str("csv"),
        }
    }
}

/// Everything read from one bank file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankFile {
    pub path: PathBuf,
    pub kind: BankFileKind,
    /// In file order.
    pub entries: Vec<BankEntry>,
    /// In file order.
    pub balances: Vec<StatementBalance>,
}

/// Reads a bank file of either kind, told apart by its content: XML starts with `<`
/// (after an optional byte-order mark and white space), anything else is read as the CSV.
///
/// The outer error is a file that cannot be read at all; the inner one lists every problem
/// of its content with file, line and field.
pub fn read_bank_file(path: &Path) -> Result<Result<BankFile, Vec<RowError>>, FormatError> {
    let bytes = read_bounded(path)?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'<') {
        Ok(crate::camt::parse_camt(path, &bytes))
    } else {
        crate::recon_csv::read_recon_csv(path)
    }
}

/// The whole file, refusing one over [`BANK_FILE_BYTES_MAX`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io_error)?.len();
    if len > BANK_FILE_BYTES_MAX {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{len} bytes: a bank file may hold at most {BANK_FILE_BYTES_MAX} bytes"),
        )));
    }
    std::fs::read(path).map_err(io_error)
}
