//! ISO 20022 files for the banks: **pacs.009.001.09** (financial institution credit transfer)
//! for the settlement legs between custody accounts and the delivery account, and
//! **pain.001.001.10** (customer credit transfer initiation) for withdrawals to members' bound
//! accounts. The schemas are in `formats/iso20022/xsd/`; every file written here validates
//! against them (tests/iso20022.rs runs `xmllint --schema`).
//!
//! Input: a [`Message`], this module's own plain description of one file (it knows nothing
//! of the engine). Output: the file's bytes. The same message always gives the same bytes:
//! the creation time is the business date at [`CREATION_TIME`], never the clock, and message
//! ids derive from date, phase and bank.
//!
//! What goes where:
//! - `EndToEndId` (and `InstrId`, and `TxId` in pacs.009) = the instruction id, or when that
//!   is longer than the 35 characters ISO allows, [`reference_id`]'s deterministic short form;
//!   the full instruction id is always in `RmtInf/Ustrd` as `<kind> <instruction id>`;
//! - amounts with exactly the currency's minor digits and a `Ccy` attribute; `CtrlSum` is the
//!   exact sum of the amounts of the file (mixed currencies are summed as ISO defines it,
//!   "irrespective of currencies", at the largest number of minor digits among them);
//! - accounts as `Id/Othr/Id`; banks as `FinInstnId/BICFI` when a BIC is known, else
//!   `FinInstnId/Othr/Id` with the bank id;
//! - the payment channel, when the platform declares channels, as `PmtTpInf/LclInstrm/Prtry`.

mod pacs009;
mod pain001;
mod xml;

#[cfg(test)]
mod tests;

use crate::model::{is_bic, BusinessDate};
use crate::money::{format_scaled, AmountMinor, Currency};

/// The time of day written as every file's creation time (`CreDtTm`), after the business
/// date: the batch runs at close, and the clock must not make re-runs differ.
pub const CREATION_TIME: &str = "18:00:00";

/// ISO 20022 `Max35Text`: references and ids.
pub const ID_CHARS_MAX: usize = 35;
/// `Max34Text`: account numbers in `Othr/Id`.
pub const ACCOUNT_CHARS_MAX: usize = 34;
/// `Max140Text`: names and unstructured remittance information.
pub const TEXT_CHARS_MAX: usize = 140;
/// `ActiveCurrencyAndAmount` and `DecimalNumber` allow 18 digits in all.
const TOTAL_DIGITS_MAX: u32 = 18;
/// Transactions in one file; a day with more instructions per bank and phase than this is
/// refused rather than written as a file no gateway takes.
pub const TRANSACTIONS_MAX: usize = 1_000_000;

/// Which ISO 20022 message a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// pacs.009.001.09: pay-in, pay-out and in-book legs.
    Pacs009,
    /// pain.001.001.10: withdrawals.
    Pain001,
}

impl Scheme {
    pub fn namespace(&self) -> &'static str {
        match self {
            Scheme::Pacs009 => "urn:iso:std:iso:20022:tech:xsd:pacs.009.001.09",
            Scheme::Pain001 => "urn:iso:std:iso:20022:tech:xsd:pain.001.001.10",
        }
    }

    /// The file name of a message: `pacs009-P1-B02.xml`, `pain001-P3-B01.xml`.
    pub fn file_name(&self, phase: u8, bank: &str) -> String {
        let prefix = match self {
            Scheme::Pacs009 => "pacs009",
            Scheme::Pain001 => "pain001",
        };
        format!("{prefix}-P{phase}-{bank}.xml")
    }

    /// Whether `name` is a file of this scheme for `phase` (as [`Scheme::file_name`] makes).
    pub fn is_file_of_phase(name: &str, phase: u8) -> bool {
        let tail = format!("-P{phase}-");
        name.ends_with(".xml")
            && (name.starts_with("pacs009") || name.starts_with("pain001"))
            && name.get(7..7 + tail.len()) == Some(tail.as_str())
    }

    /// Renders one message.
    pub fn write(&self, message: &Message) -> Result<Vec<u8>, IsoError> {
        check_message(message)?;
        if *self == Scheme::Pain001 {
            // One `PmtInf` per currency names one debtor account.
            let first = &message.transfers[0];
            if let Some(t) = message
                .transfers
                .iter()
                .find(|t| t.debtor_account != first.debtor_account)
            {
                return Err(IsoError::Field {
                    instruction_id: t.instruction_id.clone(),
                    field: "debtor account",
                    value: t.debtor_account.clone(),
                    reason: format!(
                        "differs from {}, the debtor account of the file's other transfers",
                        first.debtor_account
                    ),
                });
            }
        }
        Ok(match self {
            Scheme::Pacs009 => pacs009::write(message),
            Scheme::Pain001 => pain001::write(message),
        })
    }
}

/// A bank as the files name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Agent {
    /// The bank id of platform.toml (or a member's `bound_bank`); at most 35 characters.
    pub id: String,
    /// ISO 9362, when known: written as `BICFI` instead of the id.
    pub bic: Option<String>,
}

/// One transfer of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub instruction_id: String,
    /// `pay_in`, `pay_out`, `in_book`, `withdrawal`: part of the remittance text.
    pub kind: String,
    /// `None`: the bank's default channel, no `PmtTpInf` is written.
    pub channel: Option<String>,
    pub currency: Currency,
    /// > 0.
    pub amount: AmountMinor,
    /// Must be the message's [`Message::debtor_agent`].
    pub debtor_agent: Agent,
    pub debtor_account: String,
    pub creditor_agent: Agent,
    pub creditor_account: String,
    /// The account holder's name (withdrawals); cut to 140 characters.
    pub creditor_name: Option<String>,
}

/// One file: the transfers of one debtor bank in one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub business_date: BusinessDate,
    pub phase: u8,
    /// The bank the file is for: it holds every debited account.
    pub debtor_agent: Agent,
    /// The platform's name: `InitgPty/Nm` and `Dbtr/Nm` of pain.001.
    pub initiating_party: String,
    /// In the order they are to be written; at least one.
    pub transfers: Vec<Transfer>,
}

impl Message {
    /// `<yyyymmdd>-P<phase>-<bank>`, unique per bank and phase of a business date.
    pub fn message_id(&self) -> String {
        reference_id(&format!(
            "{}-P{}-{}",
            self.business_date.yyyymmdd(),
            self.phase,
            self.debtor_agent.id
        ))
    }

    /// `YYYY-MM-DDT18:00:00`.
    pub fn creation_time(&self) -> String {
        format!("{}T{CREATION_TIME}", self.business_date)
    }
}

/// The exact sum of the amounts of `transfers` as `(mantissa, scale)`, at the largest number
/// of minor digits among their currencies.
fn sum_scaled<'a>(transfers: impl Iterator<Item = &'a Transfer> + Clone) -> (i128, u32) {
    let scale = transfers
        .clone()
        .map(|t| t.currency.minor_digits())
        .max()
        .unwrap_or(0);
    let sum = transfers
        .map(|t| i128::from(t.amount.0) * 10i128.pow(scale - t.currency.minor_digits()))
        .sum();
    (sum, scale)
}

/// `CtrlSum` of `transfers` (a whole message, or one payment information block).
fn control_sum<'a>(transfers: impl Iterator<Item = &'a Transfer> + Clone) -> String {
    let (sum, scale) = sum_scaled(transfers);
    format_scaled(sum, scale)
}

/// Why a message cannot be written as a valid file. These are refusals before anything is
/// posted: the batch stops and names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsoError {
    #[error("bank file for {bank} phase {phase} has no transfer")]
    Empty { bank: String, phase: u8 },
    #[error("bank file for {bank} phase {phase} has {count} transfers, at most {max}")]
    TooManyTransfers {
        bank: String,
        phase: u8,
        count: usize,
        max: usize,
    },
    #[error("instruction {instruction_id}: {field} {value:?} {reason}")]
    Field {
        instruction_id: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "instruction {instruction_id}: debtor bank {found} is not the bank of its file, {expected}"
    )]
    WrongDebtor {
        instruction_id: String,
        expected: String,
        found: String,
    },
    #[error("bank file for {bank} phase {phase}: the control sum has more than {digits} digits")]
    ControlSumTooLarge {
        bank: String,
        phase: u8,
        digits: u32,
    },
}

/// The id written where ISO allows 35 characters: `id` itself when it fits, else its first 22
/// characters, `-`, and 12 hex digits of its BLAKE3 hash. Deterministic, and distinct ids stay
/// distinct (up to a 48-bit hash collision among ids sharing their first 22 characters, which
/// start with the business date).
pub fn reference_id(id: &str) -> String {
    if id.chars().count() <= ID_CHARS_MAX {
        return id.to_string();
    }
    let hash = blake3::hash(id.as_bytes()).to_hex();
    let head: String = id.chars().take(ID_CHARS_MAX - 13).collect();
    format!("{head}-{}", &hash.as_str()[..12])
}

/// A name as ISO `Max140Text`: characters XML cannot carry plainly become spaces, runs of
/// spaces one, and the result is cut to 140 characters. `None` if nothing is left.
fn name_text(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if xml::is_plain_char(c) { c } else { ' ' };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let cut: String = out.trim_end().chars().take(TEXT_CHARS_MAX).collect();
    let cut = cut.trim_end().to_string();
    (!cut.is_empty()).then_some(cut)
}

/// An amount with the currency's minor digits, as ISO amounts are written.
fn amount_text(t: &Transfer) -> String {
    t.currency.format(t.amount)
}

fn check_message(m: &Message) -> Result<(), IsoError> {
    let bank = || m.debtor_agent.id.clone();
    if m.transfers.is_empty() {
        return Err(IsoError::Empty {
            bank: bank(),
            phase: m.phase,
        });
    }
    if m.transfers.len() > TRANSACTIONS_MAX {
        return Err(IsoError::TooManyTransfers {
            bank: bank(),
            phase: m.phase,
            count: m.transfers.len(),
            max: TRANSACTIONS_MAX,
        });
    }
    for t in &m.transfers {
        check_transfer(m, t)?;
    }
    // Amounts are < 10^18 each and at most TRANSACTIONS_MAX of them: the i128 sum cannot
    // overflow.
    let (sum, _) = sum_scaled(m.transfers.iter());
    if sum >= 10i128.pow(TOTAL_DIGITS_MAX) {
        return Err(IsoError::ControlSumTooLarge {
            bank: bank(),
            phase: m.phase,
            digits: TOTAL_DIGITS_MAX,
        });
    }
    Ok(())
}

fn check_transfer(m: &Message, t: &Transfer) -> Result<(), IsoError> {
    let field = |field: &'static str, value: &str, reason: String| IsoError::Field {
        instruction_id: t.instruction_id.clone(),
        field,
        value: value.to_string(),
        reason,
    };
    if t.debtor_agent != m.debtor_agent {
        return Err(IsoError::WrongDebtor {
            instruction_id: t.instruction_id.clone(),
            expected: m.debtor_agent.id.clone(),
            found: t.debtor_agent.id.clone(),
        });
    }
    if t.amount.0 <= 0 {
        return Err(field(
            "amount",
            &amount_text(t),
            "must be greater than zero".into(),
        ));
    }
    if i128::from(t.amount.0) >= 10i128.pow(TOTAL_DIGITS_MAX) {
        return Err(field(
            "amount",
            &amount_text(t),
            format!("has more than {TOTAL_DIGITS_MAX} digits"),
        ));
    }
    let mut texts: Vec<(&'static str, &str, usize)> = vec![
        ("instruction id", &t.instruction_id, TEXT_CHARS_MAX / 2),
        ("kind", &t.kind, ID_CHARS_MAX),
        ("debtor account", &t.debtor_account, ACCOUNT_CHARS_MAX),
        ("creditor account", &t.creditor_account, ACCOUNT_CHARS_MAX),
    ];
    if let Some(channel) = &t.channel {
        texts.push(("channel", channel, ID_CHARS_MAX));
    }
    for (name, value, max) in texts {
        check_text(value, max).map_err(|reason| field(name, value, reason))?;
    }
    for agent in [&t.debtor_agent, &t.creditor_agent] {
        check_text(&agent.id, ID_CHARS_MAX).map_err(|reason| field("bank", &agent.id, reason))?;
        if let Some(bic) = &agent.bic {
            if !is_bic(bic) {
                return Err(field("bic", bic, "is not a BIC".into()));
            }
        }
    }
    Ok(())
}

/// An id or account number is written as it is or not at all: cutting or cleaning it would
/// send money elsewhere.
fn check_text(value: &str, chars_max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = value.chars().find(|c| !xml::is_plain_char(*c)) {
        return Err(format!(
            "holds the character U+{:04X}, which an ISO 20022 file cannot carry",
            u32::from(c)
        ));
    }
    let chars = value.chars().count();
    if chars > chars_max {
        return Err(format!(
            "has {chars} characters, ISO 20022 allows at most {chars_max}"
        ));
    }
    Ok(())
}

/// `FinInstnId`: the BIC when known, else the bank id as `Othr/Id`.
fn write_agent(w: &mut xml::XmlWriter, tag: &'static str, agent: &Agent) {
    w.open(tag);
    w.open("FinInstnId");
    match &agent.bic {
        Some(bic) => w.leaf("BICFI", bic),
        None => {
            w.open("Othr");
            w.leaf("Id", &agent.id);
            w.close();
        }
    }
    w.close();
    w.close();
}

/// `CashAccount38` with `Id/Othr/Id`.
fn write_account(w: &mut xml::XmlWriter, tag: &'static str, account: &str) {
    w.open(tag);
    w.open("Id");
    w.open("Othr");
    w.leaf("Id", account);
    w.close();
    w.close();
    w.close();
}

/// `PmtTpInf/LclInstrm/Prtry` = the channel, when there is one.
fn write_channel(w: &mut xml::XmlWriter, channel: Option<&str>) {
    if let Some(channel) = channel {
        w.open("PmtTpInf");
        w.open("LclInstrm");
        w.leaf("Prtry", channel);
        w.close();
        w.close();
    }
}

/// `RmtInf/Ustrd` = `<kind> <instruction id>`: the full id even where `EndToEndId` is short.
fn write_remittance(w: &mut xml::XmlWriter, t: &Transfer) {
    // Checked: kind ≤ 35 and id ≤ 70 characters, so this fits Max140Text.
    w.open("RmtInf");
    w.leaf("Ustrd", &format!("{} {}", t.kind, t.instruction_id));
    w.close();
}
