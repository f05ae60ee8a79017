//! The simple bank confirmation CSV: `instruction_id,status,bank_ref,amount,currency,reason`.
//!
//! One row per instruction the bank processed. `status` is `settled`, `failed` or `pending`;
//! `amount` is what the bank moved, in `currency`; `bank_ref` (the bank's own reference) and
//! `reason` (why it failed) may be empty, and the `reason` column may be left out. Columns in
//! any order; an unknown column is an error, as in every CSV Clearhouse reads.

use std::path::Path;

use crate::bankfiles::{BankEntry, BankFile, BankFileKind, EntryStatus};
use crate::csvscan::{optional, required, Column};
use crate::fields::decimal_reason;
use crate::model::RowError;
use crate::reference::read_reference_csv;
use crate::FormatError;

const COLUMNS: &[Column] = &[
    required("instruction_id"),
    required("status"),
    optional("bank_ref"),
    required("amount"),
    required("currency"),
    optional("reason"),
];

/// Instruction ids are longer than member ids (`20261125-P3-<request id>`), so they are
/// checked for length and characters here rather than as a 32-character id.
const INSTRUCTION_ID_BYTES_MAX: usize = 128;

pub fn read_recon_csv(path: &Path) -> Result<Result<BankFile, Vec<RowError>>, FormatError> {
    const ID: usize = 0;
    const STATUS: usize = 1;
    const BANK_REF: usize = 2;
    const AMOUNT: usize = 3;
    const CURRENCY: usize = 4;
    const REASON: usize = 5;
    let parsed = read_reference_csv(path, COLUMNS, ID, |row| {
        let id = row.text(ID).to_owned();
        let id_ok = !id.is_empty()
            && id.len() <= INSTRUCTION_ID_BYTES_MAX
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !id_ok {
            row.fail(
                ID,
                &id,
                format!(
                    "is not an instruction id: 1 to {INSTRUCTION_ID_BYTES_MAX} characters of \
                     A-Z, a-z, 0-9, '_' and '-'"
                ),
            );
        }
        let status = match row.text(STATUS) {
            "settled" => Some(EntryStatus::Booked),
            "failed" => Some(EntryStatus::Failed),
            "pending" => Some(EntryStatus::Pending),
            other => {
                let other = other.to_owned();
                row.fail(STATUS, &other, "is not settled, failed or pending");
                None
            }
        };
        let currency = row.currency(CURRENCY);
        let amount = currency.and_then(|c| {
            let text = row.text(AMOUNT);
            match c.parse_amount(text) {
                Ok(a) if a.0 <= 0 => {
                    row.fail(AMOUNT, text, "must be > 0");
                    None
                }
                Ok(a) => Some(a),
                Err(e) => {
                    row.fail(AMOUNT, text, format!("{} for {c}", decimal_reason(&e)));
                    None
                }
            }
        });
        let text = |k: usize| Some(row.text(k).trim().to_owned()).filter(|s| !s.is_empty());
        let bank_ref = text(BANK_REF);
        let reason = text(REASON);
        if !id_ok {
            return None;
        }
        Some(BankEntry {
            at: row.at.clone(),
            account: None,
            currency: currency?,
            amount: amount?,
            direction: None,
            status: status?,
            reversal: false,
            booking_date: None,
            value_date: None,
            instruction_id: Some(id),
            end_to_end_id: None,
            account_servicer_ref: bank_ref,
            entry_ref: None,
            remittance: None,
            reason,
        })
    })?;
    if !parsed.errors.is_empty() {
        return Ok(Err(parsed.errors));
    }
    Ok(Ok(BankFile {
        path: path.to_owned(),
        kind: BankFileKind::Csv,
        entries: parsed.rows,
        balances: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::AmountMinor;

    fn read(text: &str) -> Result<BankFile, Vec<RowError>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.csv");
        std::fs::write(&path, text).unwrap();
        read_recon_csv(&path).unwrap()
    }

    #[test]
    fn reads_rows_in_any_column_order() {
        let file = read(
            "status,instruction_id,amount,currency,bank_ref,reason\n\
             settled,20261125-P1-B02-CNY,8630.15,CNY,BK-1,\n\
             failed,20261125-P2-B03-CNY,10.00,CNY,,account closed\n",
        )
        .unwrap();
        assert_eq!(file.kind, BankFileKind::Csv);
        let [a, b] = file.entries.as_slice() else {
            panic!("{:?}", file.entries)
        };
        assert_eq!(a.instruction_id.as_deref(), Some("20261125-P1-B02-CNY"));
        assert_eq!(a.amount, AmountMinor(863015));
        assert_eq!(a.status, EntryStatus::Booked);
        assert_eq!(a.account_servicer_ref.as_deref(), Some("BK-1"));
        assert_eq!(a.at.line, 2);
        assert_eq!(b.status, EntryStatus::Failed);
        assert_eq!(b.account_servicer_ref, None);
        assert_eq!(b.reason.as_deref(), Some("account closed"));
    }

    #[test]
    fn the_reason_column_may_be_left_out() {
        let file =
            read("instruction_id,status,bank_ref,amount,currency\nI1,settled,R,1,JPY\n").unwrap();
        assert_eq!(file.entries[0].amount, AmountMinor(1));
    }

    #[test]
    fn reports_every_bad_row_with_its_line() {
        let errors = read(
            "instruction_id,status,bank_ref,amount,currency,reason\n\
             I1,done,R1,1.00,CNY,\n\
             I2,settled,R2,1.001,CNY,\n\
             I3,settled,R3,-1,CNY,\n\
             I 4,settled,R4,1,CNY,\n\
             I5,settled,R5,1,XXX,\n",
        )
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let expect = [
            ":2: column status: value \"done\": is not settled, failed or pending",
            ":3: column amount: value \"1.001\": has 3 decimals, at most 2 allowed for CNY",
            ":4: column amount: value \"-1\": must be > 0",
            ":5: column instruction_id: value \"I 4\": is not an instruction id",
            ":6: column currency: value \"XXX\": is not a known ISO 4217 currency code",
        ];
        for (e, want) in text.iter().zip(expect) {
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
        assert_eq!(text.len(), expect.len(), "{text:#?}");
    }

    #[test]
    fn an_unknown_column_is_an_error() {
        let errors = read("instruction_id,status,amount,currency,colour\nI1,settled,1,CNY,red\n")
            .unwrap_err();
        assert!(errors[0].to_string().contains("colour"), "{errors:?}");
    }
}
