//! Reconciliation's reads and writes of the ledger: what the date's batch expects, and the
//! statuses, carries and returns a run records, in one transaction.

use std::collections::BTreeMap;

use clearhouse_formats::model::BusinessDate;
use clearhouse_formats::money::{AmountMinor, Currency};

use super::matching::{AccountRole, KnownDeposit, Resolution, Status, Stored, Transition};
use crate::book::kind;
use crate::ledger::{Db, DbError, InstructionRow, Ledger, LedgerError};
use crate::EngineError;

/// What the ledger holds about a posted date, read at one version.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub version: i64,
    pub instructions: Vec<Stored>,
    pub accounts: BTreeMap<String, AccountRole>,
    pub custody: BTreeMap<(String, String), i64>,
    pub deposits: BTreeMap<String, KnownDeposit>,
}

/// Reads the date's state in one read transaction, so that it is one version's. `refs` are
/// the bank references of the bank files: the deposits among them are looked up.
pub fn load(ledger: &Ledger, date: BusinessDate, refs: &[&str]) -> Result<State, LedgerError> {
    let Some(conn) = ledger.connection() else {
        return Ok(State::default());
    };
    let tx = conn.read_tx().map_err(|e| ledger.error(e))?;
    let state = read(&tx, date, refs).map_err(|e| ledger.error(e))?;
    drop(tx);
    Ok(state)
}

fn read(conn: &Db, date: BusinessDate, refs: &[&str]) -> Result<State, DbError> {
    let date = date.to_string();
    let version = conn
        .query_one("SELECT value FROM meta WHERE key = 'version'", &[])?
        .get(0)?;
    let instructions = conn
        .query(
            &format!(
                "SELECT {}, status, matched_by, bank_ref, status_detail, resolution
                 FROM instructions WHERE business_date = ?1 ORDER BY instruction_id",
                InstructionRow::COLUMNS
            ),
            &[&date],
        )?
        .iter()
        .map(|r| {
            let status: String = r.get(9)?;
            Ok(Stored {
                row: InstructionRow::from_row(r)?,
                status: Status::parse(&status).ok_or_else(|| DbError::Type {
                    column: 9,
                    message: format!("status {status:?}"),
                })?,
                matched_by: r.get(10)?,
                bank_ref: r.get(11)?,
                detail: r.get(12)?,
                resolution: r.get(13)?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let mut accounts = BTreeMap::new();
    for r in conn.query(
        "SELECT account, bank, role FROM platform_accounts WHERE role IN ('custody', 'delivery')",
        &[],
    )? {
        let role: String = r.get(2)?;
        let role = if role == "custody" {
            AccountRole::Custody { bank: r.get(1)? }
        } else {
            AccountRole::Delivery
        };
        accounts.insert(r.get(0)?, role);
    }
    let mut custody = BTreeMap::new();
    for r in conn.query(
        "SELECT bank, currency, balance_minor FROM custody_history WHERE business_date = ?1",
        &[&date],
    )? {
        custody.insert((r.get(0)?, r.get(1)?), r.get(2)?);
    }
    let mut deposits = BTreeMap::new();
    for bank_ref in refs {
        let found = conn.query_opt(
            "SELECT bank, currency, amount_minor FROM deposits WHERE bank_ref = ?1",
            &[bank_ref],
        )?;
        if let Some(r) = found {
            let d = KnownDeposit {
                bank: r.get(0)?,
                currency: r.get(1)?,
                amount_minor: r.get(2)?,
            };
            deposits.insert(bank_ref.to_string(), d);
        }
    }
    Ok(State {
        version,
        instructions,
        accounts,
        custody,
        deposits,
    })
}

/// Whether a business date was posted.
pub fn is_posted(ledger: &Ledger, date: BusinessDate) -> Result<bool, LedgerError> {
    Ok(ledger.posted_digest(date)?.is_some())
}

/// A returned withdrawal: who gets the money back.
struct Refund {
    instruction_id: String,
    member_id: String,
}

/// Records the transitions in one transaction on `state.version`: each status, and for each
/// instruction that failed now its carry (`CARRY-<id>`) or, for a withdrawal, its return
/// (`RET-<id>`), each a balanced entry with an audit record in `adjustments`. Returns the
/// adjustment ids posted.
pub fn record(
    ledger: &mut Ledger,
    state: &State,
    date: BusinessDate,
    transitions: &[Transition],
) -> Result<Vec<String>, EngineError> {
    let by_id: BTreeMap<&str, &InstructionRow> = state
        .instructions
        .iter()
        .map(|s| (s.row.instruction_id.as_str(), &s.row))
        .collect();
    let mut refunds = Vec::new();
    for t in transitions {
        if t.resolution == Some(Resolution::Returned) {
            let row = by_id[t.instruction_id.as_str()];
            refunds.push(refund_of(ledger, date, row)?);
        }
    }
    let date_text = date.to_string();
    let posted = ledger.write(state.version, |tx| {
        let mut posted = Vec::new();
        for t in transitions {
            let resolution = t.resolution.map_or("", |r| r.as_str());
            // The version check makes a miss impossible; a status is never overwritten blind.
            tx.execute_one(
                "UPDATE instructions SET status = ?2, matched_by = ?3, bank_ref = ?4,
                 status_detail = ?5, resolution = ?6 WHERE instruction_id = ?1 AND status = ?7",
                &[
                    &t.instruction_id,
                    &t.to.as_str(),
                    &t.matched_by,
                    &t.bank_ref,
                    &t.detail,
                    &resolution,
                    &t.from.as_str(),
                ],
            )?;
            let row = by_id[t.instruction_id.as_str()];
            match t.resolution {
                None => {}
                Some(Resolution::Carried) => {
                    posted.push(post_carry(tx, &date_text, row, &t.detail)?);
                }
                Some(Resolution::Returned) => {
                    let refund = refunds
                        .iter()
                        .find(|r| r.instruction_id == t.instruction_id)
                        .expect("looked up above");
                    posted.push(post_return(tx, &date_text, row, refund, &t.detail)?);
                }
            }
        }
        Ok(posted)
    })?;
    Ok(posted)
}

fn money(row: &InstructionRow) -> String {
    Currency::from_code(&row.currency).map_or_else(
        || format!("{} (minor units) {}", row.amount_minor, row.currency),
        |c| {
            format!(
                "{} {}",
                c.format(AmountMinor(row.amount_minor)),
                row.currency
            )
        },
    )
}

fn describe(row: &InstructionRow) -> String {
    format!(
        "{} {} {} {}@{} -> {}@{}",
        row.instruction_id,
        row.kind,
        money(row),
        row.debit_account,
        row.debit_bank,
        row.credit_account,
        row.credit_bank
    )
}

fn insert_leg(
    tx: &Db,
    date: &str,
    entry_id: &str,
    entry_kind: &str,
    account: &str,
    currency: &str,
    amount: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO entries (business_date, entry_id, kind, account, asset, amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[&date, &entry_id, &entry_kind, &account, &currency, &amount],
    )?;
    Ok(())
}

fn insert_adjustment(
    tx: &Db,
    id: &str,
    adjustment_kind: &str,
    date: &str,
    detail: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO adjustments (adjustment_id, kind, business_date, detail)
         VALUES (?1, ?2, ?3, ?4)",
        &[&id, &adjustment_kind, &date, &detail],
    )?;
    Ok(())
}

/// `CARRY-<id>`: the transfer between two of the platform's real accounts did not happen;
/// the debited account still holds the money, the credited one is owed it. Both legs are on
/// external (real) accounts: no virtual balance moves, members keep their posted results.
/// The next batch re-sends it (`Snapshot::carries`).
fn post_carry(tx: &Db, date: &str, row: &InstructionRow, reason: &str) -> Result<String, DbError> {
    let id = format!("CARRY-{}", row.instruction_id);
    let c = &row.currency;
    insert_leg(
        tx,
        date,
        &id,
        kind::CARRY,
        &row.debit_account,
        c,
        row.amount_minor,
    )?;
    insert_leg(
        tx,
        date,
        &id,
        kind::CARRY,
        &row.credit_account,
        c,
        -row.amount_minor,
    )?;
    let detail = format!(
        "{} failed ({reason}); carried to the next cycle, which re-sends it",
        describe(row)
    );
    insert_adjustment(tx, &id, kind::CARRY, date, &detail)?;
    Ok(id)
}

fn refund_of(
    ledger: &Ledger,
    date: BusinessDate,
    row: &InstructionRow,
) -> Result<Refund, EngineError> {
    let prefix = format!("{}-P3-", date.yyyymmdd());
    let invariant = |what: &str| {
        EngineError::Invariant(format!(
            "withdrawal instruction {}: {what}",
            row.instruction_id
        ))
    };
    let rest = row
        .instruction_id
        .strip_prefix(&prefix)
        .ok_or_else(|| invariant("its id does not name a request"))?;
    let conn = ledger.connection().ok_or_else(|| invariant("no ledger"))?;
    let lookup = |request_id: &str| {
        conn.query_opt(
            "SELECT member_id, currency, amount_minor FROM withdrawals WHERE request_id = ?1",
            &[&request_id],
        )
        .and_then(|row| {
            row.map(|r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?)))
                .transpose()
        })
        .map_err(|e| ledger.error(e))
    };
    // `<request>` whole, or `<request>-<n>`: one part of a withdrawal a channel split.
    let mut found = lookup(rest)?.map(|f| (f, false));
    if found.is_none() {
        if let Some((request_id, part)) = rest.rsplit_once('-') {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                found = lookup(request_id)?.map(|f| (f, true));
            }
        }
    }
    match found {
        Some(((member_id, currency, amount), part))
            if currency == row.currency
                && (amount == row.amount_minor || (part && amount > row.amount_minor)) =>
        {
            Ok(Refund {
                instruction_id: row.instruction_id.clone(),
                member_id,
            })
        }
        Some(_) => Err(invariant(
            "the paid withdrawal has another currency or a smaller amount",
        )),
        None => Err(invariant(&format!("no paid withdrawal {rest}"))),
    }
}

/// `RET-<id>`: the bank did not pay the withdrawal out, so the money is still in the custody
/// account; it goes back to the member (balance and custody both up by the amount, the
/// custody invariant kept).
fn post_return(
    tx: &Db,
    date: &str,
    row: &InstructionRow,
    refund: &Refund,
    reason: &str,
) -> Result<String, DbError> {
    let id = format!("RET-{}", row.instruction_id);
    let c = &row.currency;
    let amount = row.amount_minor;
    insert_leg(
        tx,
        date,
        &id,
        kind::WITHDRAWAL_RETURN,
        &refund.member_id,
        c,
        amount,
    )?;
    insert_leg(
        tx,
        date,
        &id,
        kind::WITHDRAWAL_RETURN,
        &row.debit_account,
        c,
        -amount,
    )?;
    tx.execute(
        "INSERT INTO balances (account, currency, balance_minor, frozen_minor)
         VALUES (?1, ?2, ?3, 0)
         ON CONFLICT (account, currency) DO UPDATE
         SET balance_minor = balances.balance_minor + excluded.balance_minor",
        &[&refund.member_id, c, &amount],
    )?;
    tx.execute(
        "INSERT INTO custody (bank, currency, balance_minor) VALUES (?1, ?2, ?3)
         ON CONFLICT (bank, currency) DO UPDATE
         SET balance_minor = custody.balance_minor + excluded.balance_minor",
        &[&row.debit_bank, c, &amount],
    )?;
    let detail = format!(
        "{} failed ({reason}); credited back to {}",
        describe(row),
        refund.member_id
    );
    insert_adjustment(tx, &id, kind::WITHDRAWAL_RETURN, date, &detail)?;
    Ok(id)
}
