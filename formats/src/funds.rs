//! Readers of the fund events of a day directory (SPEC §2.6): deposits.csv, withdrawals.csv
//! and freezes.csv. Each checks what the file alone can tell; whether a member exists, or a
//! withdrawal fits the balance, is the engine's to judge.

use std::path::Path;

use crate::csvscan::{required, Column};
use crate::fields::decimal_reason;
use crate::model::{Deposit, DepositChannel, FreezeAction, FreezeEvent, Withdrawal};
use crate::money::{AmountMinor, Currency};
use crate::reference::{read_reference_csv, Row, Unique};
use crate::{FormatError, Parsed};

/// A positive amount in the row's currency, refusing more decimals than the currency has.
fn positive_amount(row: &mut Row<'_>, k: usize, currency: Option<Currency>) -> Option<AmountMinor> {
    let currency = currency?;
    let text = row.text(k);
    match currency.parse_amount(text) {
        Ok(amount) if amount.0 <= 0 => {
            row.fail(k, text, "must be > 0");
            None
        }
        Ok(amount) => Some(amount),
        Err(e) => {
            row.fail(k, text, format!("{} for {currency}", decimal_reason(&e)));
            None
        }
    }
}

const DEPOSIT_COLUMNS: &[Column] = &[
    required("bank_ref"),
    required("bank"),
    required("payer_bank"),
    required("payer_account"),
    required("payer_name"),
    required("currency"),
    required("amount"),
    required("memo"),
    required("channel"),
];

/// Deposits. A `bank_ref` repeated with identical content is one deposit (a re-sent
/// notification) and is dropped here; repeated with other content it is an error.
pub fn read_deposits(path: &Path) -> Result<Parsed<Deposit>, FormatError> {
    const REF: usize = 0;
    const BANK: usize = 1;
    const PAYER_BANK: usize = 2;
    const PAYER_ACCOUNT: usize = 3;
    const PAYER_NAME: usize = 4;
    const CURRENCY: usize = 5;
    const AMOUNT: usize = 6;
    const MEMO: usize = 7;
    const CHANNEL: usize = 8;
    let mut seen: std::collections::HashMap<String, (Deposit, u64)> = Default::default();
    let mut parsed = read_reference_csv(path, DEPOSIT_COLUMNS, REF, |row| {
        let bank_ref = row.id(REF);
        let bank = row.id(BANK);
        let payer_bank = row.text(PAYER_BANK).to_owned();
        let payer_account = row.text(PAYER_ACCOUNT).to_owned();
        let payer_name = row.text(PAYER_NAME).to_owned();
        let currency = row.currency(CURRENCY);
        let amount = positive_amount(row, AMOUNT, currency);
        let channel = match row.text(CHANNEL) {
            "bank" => Some(DepositChannel::Bank),
            "online" => Some(DepositChannel::Online),
            other => {
                let other = other.to_owned();
                row.fail(CHANNEL, &other, "is not bank or online");
                None
            }
        };
        let deposit = Deposit {
            bank_ref: bank_ref?,
            bank: bank?,
            payer_bank,
            payer_account,
            payer_name,
            currency: currency?,
            amount: amount?,
            memo: row.text(MEMO).to_owned(),
            channel: channel?,
            line: row.at.line,
        };
        match seen.get(&deposit.bank_ref) {
            Some((first, _))
                if Deposit {
                    line: 0,
                    ..first.clone()
                } == Deposit {
                    line: 0,
                    ..deposit.clone()
                } =>
            {
                None
            }
            Some((_, first_line)) => {
                let first_line = *first_line;
                row.fail(
                    REF,
                    &deposit.bank_ref,
                    format!("was already used on line {first_line} with other content"),
                );
                None
            }
            None => {
                seen.insert(deposit.bank_ref.clone(), (deposit.clone(), deposit.line));
                Some(deposit)
            }
        }
    })?;
    parsed.rows.sort_by_key(|d| d.line);
    Ok(parsed)
}

const WITHDRAWAL_COLUMNS: &[Column] = &[
    required("request_id"),
    required("member_id"),
    required("currency"),
    required("amount"),
];

pub fn read_withdrawals(path: &Path) -> Result<Parsed<Withdrawal>, FormatError> {
    const ID: usize = 0;
    const MEMBER: usize = 1;
    const CURRENCY: usize = 2;
    const AMOUNT: usize = 3;
    let mut ids = Unique::new();
    read_reference_csv(path, WITHDRAWAL_COLUMNS, ID, |row| {
        let request_id = row.id(ID);
        let member_id = row.id(MEMBER);
        let currency = row.currency(CURRENCY);
        let amount = positive_amount(row, AMOUNT, currency);
        let line = row.at.line;
        let request_id = request_id?;
        if let Err(first) = ids.insert(request_id.clone(), line) {
            row.fail(
                ID,
                &request_id,
                format!("repeats the request of line {first}"),
            );
            return None;
        }
        Some(Withdrawal {
            request_id,
            member_id: member_id?,
            currency: currency?,
            amount: amount?,
            line,
        })
    })
}

const FREEZE_COLUMNS: &[Column] = &[
    required("freeze_id"),
    required("member_id"),
    required("currency"),
    required("amount"),
    required("action"),
];

/// Freezes and unfreezes, in file order (the order they apply in).
pub fn read_freezes(path: &Path) -> Result<Parsed<FreezeEvent>, FormatError> {
    const ID: usize = 0;
    const MEMBER: usize = 1;
    const CURRENCY: usize = 2;
    const AMOUNT: usize = 3;
    const ACTION: usize = 4;
    read_reference_csv(path, FREEZE_COLUMNS, ID, |row| {
        let freeze_id = row.id(ID);
        let member_id = row.id(MEMBER);
        let currency = row.currency(CURRENCY);
        let amount = positive_amount(row, AMOUNT, currency);
        let action = match row.text(ACTION) {
            "freeze" => Some(FreezeAction::Freeze),
            "unfreeze" => Some(FreezeAction::Unfreeze),
            other => {
                let other = other.to_owned();
                row.fail(ACTION, &other, "is not freeze or unfreeze");
                None
            }
        };
        Some(FreezeEvent {
            freeze_id: freeze_id?,
            member_id: member_id?,
            currency: currency?,
            amount: amount?,
            action: action?,
            line: row.at.line,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn deposits_drop_resent_notifications_and_refuse_conflicts() {
        let (_d, path) = write(
            "bank_ref,bank,payer_bank,payer_account,payer_name,currency,amount,memo,channel\n\
             R1,B01,B02,6222,Alpha,CNY,100.00,ALP001 top-up,bank\n\
             R1,B01,B02,6222,Alpha,CNY,100.00,ALP001 top-up,bank\n\
             R1,B01,B02,6222,Alpha,CNY,100.01,ALP001 top-up,bank\n\
             R2,B01,B02,6222,Alpha,CNY,-1,,online\n\
             R3,B01,B02,6222,Alpha,CNY,1.005,,wire\n",
        );
        let parsed = read_deposits(&path).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].amount, AmountMinor(10000));
        let text: Vec<String> = parsed.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|e| e.contains(":4:") && e.contains("already used on line 2")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains(":5:") && e.contains("must be > 0")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains(":6:") && e.contains("3 decimals")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains(":6:") && e.contains("not bank or online")),
            "{text:?}"
        );
    }

    #[test]
    fn withdrawals_and_freezes_parse() {
        let (_d, path) = write("request_id,member_id,currency,amount\nW1,A,CNY,5\nW1,A,CNY,6\n");
        let parsed = read_withdrawals(&path).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert!(parsed.errors[0]
            .to_string()
            .contains("repeats the request of line 2"));
        let (_d, path) = write(
            "freeze_id,member_id,currency,amount,action\nF1,A,CNY,5.00,freeze\nF1,A,CNY,5.00,unfreeze\nF2,A,CNY,1,hold\n",
        );
        let parsed = read_freezes(&path).unwrap();
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[1].action, FreezeAction::Unfreeze);
        assert!(parsed.errors[0]
            .to_string()
            .contains("not freeze or unfreeze"));
    }
}
