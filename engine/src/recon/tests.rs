use std::collections::BTreeMap;

use clearhouse_formats::bankfiles::{
    BalanceKind, BankEntry, Direction, EntryStatus, StatementBalance,
};
use clearhouse_formats::model::{BusinessDate, Location};
use clearhouse_formats::money::{AmountMinor, Currency};

use super::matching::{reconcile, AccountRole, Expected, KnownDeposit, Outcome, Stored};
use super::*;

fn date() -> BusinessDate {
    BusinessDate::parse("2026-11-25").unwrap()
}

fn cny() -> Currency {
    Currency::from_code("CNY").unwrap()
}

fn instruction(id: &str, kind: &str, amount: i64, debit: &str, credit: &str) -> Stored {
    let phase = match kind {
        "pay_in" => 1,
        "withdrawal" => 3,
        _ => 2,
    };
    Stored {
        row: InstructionRow {
            instruction_id: id.to_string(),
            phase,
            kind: kind.to_string(),
            currency: "CNY".to_string(),
            amount_minor: amount,
            debit_bank: if debit == "CUS-B02" { "B02" } else { "B01" }.to_string(),
            debit_account: debit.to_string(),
            credit_bank: if credit == "CUS-B02" { "B02" } else { "B01" }.to_string(),
            credit_account: credit.to_string(),
        },
        status: Status::Pending,
        matched_by: String::new(),
        bank_ref: String::new(),
        detail: String::new(),
        resolution: String::new(),
    }
}

/// The worked example's legs and a withdrawal.
fn instructions() -> Vec<Stored> {
    vec![
        instruction("P1", "pay_in", 863015, "CUS-B02", "DLV-001"),
        instruction("P2", "in_book", 863015, "DLV-001", "CUS-B01"),
        instruction("P3-W1", "withdrawal", 200000, "CUS-B01", "6222"),
    ]
}

fn accounts() -> BTreeMap<String, AccountRole> {
    [
        ("CUS-B01", Some("B01")),
        ("CUS-B02", Some("B02")),
        ("DLV-001", None),
    ]
    .into_iter()
    .map(|(a, bank)| {
        let role = match bank {
            Some(b) => AccountRole::Custody {
                bank: b.to_string(),
            },
            None => AccountRole::Delivery,
        };
        (a.to_string(), role)
    })
    .collect()
}

fn entry(account: &str, side: Direction, amount: i64, bank_ref: &str) -> BankEntry {
    BankEntry {
        at: Location::new("bank.xml", 7),
        account: Some(account.to_string()),
        currency: cny(),
        amount: AmountMinor(amount),
        direction: Some(side),
        status: EntryStatus::Booked,
        reversal: false,
        booking_date: Some(date()),
        value_date: None,
        instruction_id: None,
        end_to_end_id: None,
        account_servicer_ref: Some(bank_ref.to_string()),
        entry_ref: None,
        remittance: None,
        reason: None,
    }
}

struct World {
    instructions: Vec<Stored>,
    accounts: BTreeMap<String, AccountRole>,
    custody: BTreeMap<(String, String), i64>,
    deposits: BTreeMap<String, KnownDeposit>,
}

impl World {
    fn new() -> World {
        World {
            instructions: instructions(),
            accounts: accounts(),
            custody: [
                (("B01".to_string(), "CNY".to_string()), 963015),
                (("B02".to_string(), "CNY".to_string()), 1136985),
            ]
            .into(),
            deposits: [(
                "R1".to_string(),
                KnownDeposit {
                    bank: "B01".to_string(),
                    currency: "CNY".to_string(),
                    amount_minor: 50000,
                },
            )]
            .into(),
        }
    }

    fn run(&self, entries: &[BankEntry], balances: &[StatementBalance]) -> Outcome {
        let exp = Expected {
            date: date(),
            instructions: &self.instructions,
            accounts: &self.accounts,
            custody: &self.custody,
            deposits: &self.deposits,
        };
        reconcile(&exp, entries, balances)
    }
}

fn status_of(outcome: &Outcome, id: &str) -> (String, Option<Break>) {
    let row = outcome
        .rows
        .iter()
        .find(|r| r.record == Record::Instruction && r.id == id)
        .unwrap();
    (row.status.clone(), row.break_kind)
}

#[test]
fn matches_by_amount_account_and_date_when_there_is_no_reference() {
    let world = World::new();
    let out = world.run(
        &[
            entry("CUS-B02", Direction::Debit, 863015, "a"),
            entry("CUS-B01", Direction::Credit, 863015, "b"),
            // Booked on another day: not this date's.
            BankEntry {
                booking_date: BusinessDate::parse("2026-11-24"),
                ..entry("CUS-B01", Direction::Debit, 200000, "c")
            },
        ],
        &[],
    );
    assert_eq!(status_of(&out, "P1"), ("settled".into(), None));
    assert_eq!(status_of(&out, "P2"), ("settled".into(), None));
    assert_eq!(
        status_of(&out, "P3-W1"),
        ("pending".into(), Some(Break::MissingEntry))
    );
    let unmatched: Vec<_> = out
        .rows
        .iter()
        .filter(|r| r.record == Record::Entry)
        .collect();
    assert_eq!(unmatched.len(), 1);
    assert!(
        unmatched[0].detail.contains("(not on 2026-11-25)"),
        "{unmatched:?}"
    );
    assert_eq!(out.transitions.len(), 2);
    assert!(out
        .transitions
        .iter()
        .all(|t| t.to == Status::Settled && t.matched_by == "amount_account_date"));
}

#[test]
fn one_leg_is_matched_once_and_a_second_entry_is_unmatched() {
    let world = World::new();
    let out = world.run(
        &[
            entry("CUS-B02", Direction::Debit, 863015, "a"),
            entry("CUS-B02", Direction::Debit, 863015, "b"),
        ],
        &[],
    );
    assert_eq!(out.counts.matched, 1);
    assert_eq!(out.counts.unmatched, 1);
}

#[test]
fn the_same_booking_in_two_files_counts_once() {
    let world = World::new();
    let e = entry("CUS-B02", Direction::Debit, 863015, "a");
    let out = world.run(&[e.clone(), e], &[]);
    assert_eq!(out.counts.duplicates, 1);
    assert_eq!(out.counts.unmatched, 0);
}

#[test]
fn a_reversal_fails_the_instruction_it_undoes() {
    let world = World::new();
    let booked = entry("CUS-B01", Direction::Debit, 200000, "w");
    let returned = BankEntry {
        reversal: true,
        reason: Some("AC04: account closed".into()),
        ..entry("CUS-B01", Direction::Credit, 200000, "w-ret")
    };
    let out = world.run(&[booked, returned], &[]);
    assert_eq!(
        status_of(&out, "P3-W1"),
        ("failed".into(), Some(Break::Failed))
    );
    let t = out
        .transitions
        .iter()
        .find(|t| t.instruction_id == "P3-W1")
        .unwrap();
    assert_eq!(t.resolution, Some(Resolution::Returned));
    assert_eq!(t.detail, "AC04: account closed");
}

#[test]
fn an_id_on_the_wrong_account_is_not_a_match() {
    let world = World::new();
    let out = world.run(
        &[BankEntry {
            end_to_end_id: Some("P1".into()),
            ..entry("CUS-B01", Direction::Debit, 863015, "z")
        }],
        &[],
    );
    let row = out.rows.iter().find(|r| r.record == Record::Entry).unwrap();
    assert!(
        row.detail
            .contains("names instruction P1 but is a DBIT on account CUS-B01"),
        "{row:?}"
    );
    assert_eq!(
        status_of(&out, "P1"),
        ("pending".into(), Some(Break::MissingEntry))
    );
}

#[test]
fn statuses_only_move_forward() {
    let mut world = World::new();
    world.instructions[0].status = Status::Failed;
    world.instructions[0].resolution = "carried".into();
    world.instructions[1].status = Status::Settled;
    let csv = |id: &str, status| BankEntry {
        account: None,
        direction: None,
        booking_date: None,
        instruction_id: Some(id.to_string()),
        status,
        ..entry("", Direction::Debit, 863015, "r")
    };
    let out = world.run(
        &[
            csv("P1", EntryStatus::Booked),
            csv("P2", EntryStatus::Pending),
        ],
        &[],
    );
    assert_eq!(
        status_of(&out, "P1"),
        ("failed".into(), Some(Break::Failed))
    );
    assert_eq!(status_of(&out, "P2"), ("settled".into(), None));
    assert!(out.transitions.is_empty(), "{:?}", out.transitions);
    let p1 = out.rows.iter().find(|r| r.id == "P1").unwrap();
    assert_eq!(p1.action, "carried");
}

#[test]
fn deposits_on_the_statement_are_no_break_unless_the_amount_differs() {
    let world = World::new();
    let ok = world.run(&[entry("CUS-B01", Direction::Credit, 50000, "R1")], &[]);
    assert_eq!((ok.counts.deposits, ok.counts.unmatched), (1, 0));
    assert!(ok.rows.iter().all(|r| r.record != Record::Entry));
    let off = world.run(&[entry("CUS-B01", Direction::Credit, 50001, "R1")], &[]);
    let row = off.rows.iter().find(|r| r.record == Record::Entry).unwrap();
    assert_eq!(row.break_kind, Some(Break::AmountMismatch));
    assert_eq!(row.expected_minor, Some(50000));
}

fn closing(account: &str, amount: i64) -> StatementBalance {
    StatementBalance {
        at: Location::new("s.xml", 3),
        account: account.to_string(),
        kind: BalanceKind::Closing,
        currency: cny(),
        amount: AmountMinor(amount),
        date: Some(date()),
    }
}

#[test]
fn closing_balances_are_checked_against_custody_less_what_failed() {
    let world = World::new();
    let failed_pay_in = BankEntry {
        account: None,
        direction: None,
        booking_date: None,
        instruction_id: Some("P1".into()),
        status: EntryStatus::Failed,
        ..entry("", Direction::Debit, 863015, "f")
    };
    let out = world.run(
        &[failed_pay_in],
        &[
            closing("CUS-B02", 1136985 + 863015),
            closing("CUS-B01", 963015 - 1),
            closing("DLV-001", 5),
            closing("XX", 0),
        ],
    );
    let balance = |id: &str| {
        out.rows
            .iter()
            .find(|r| r.record == Record::Balance && r.id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(balance("CUS-B02").break_kind, None);
    assert_eq!(balance("CUS-B01").break_kind, Some(Break::BalanceMismatch));
    assert_eq!(balance("DLV-001").status, "unchecked");
    assert_eq!(balance("XX").break_kind, Some(Break::UnknownAccount));
}

#[test]
fn carried_instructions_are_summed_per_leg_with_phase_and_custody_bank_in_the_id() {
    let rows = |s: Vec<Stored>| s.into_iter().map(|s| s.row).collect::<Vec<_>>();
    let carries = rows(vec![
        instruction("20261124-P1-B02-CNY", "pay_in", 100, "CUS-B02", "DLV-001"),
        instruction("20261125-P1-B02-CNY", "pay_in", 250, "CUS-B02", "DLV-001"),
        instruction("20261125-P2-B01-CNY", "in_book", 7, "DLV-001", "CUS-B01"),
    ]);
    let next = BusinessDate::parse("2026-11-26").unwrap();
    let out = carried_instructions(next, &carries).unwrap();
    let got: Vec<_> = out
        .iter()
        .map(|i| (i.instruction_id.as_str(), i.phase, i.kind, i.amount_minor))
        .collect();
    assert_eq!(
        got,
        [
            ("20261126-P1-B02-CNY-C", 1, InstructionKind::PayIn, 350),
            ("20261126-P2-B01-CNY-C", 2, InstructionKind::InBook, 7),
        ]
    );
    let withdrawal = rows(vec![instruction("W", "withdrawal", 1, "CUS-B01", "x")]);
    assert!(carried_instructions(next, &withdrawal).is_err());
}

#[test]
fn recon_csv_quotes_and_formats_amounts() {
    let world = World::new();
    let out = world.run(&[], &[closing("CUS-B01", 963015)]);
    let text = String::from_utf8(render(&out.rows).unwrap()).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "record,id,status,break,matched_by,currency,expected,actual,account,bank_ref,source,action,detail"
    );
    assert_eq!(
        lines.next().unwrap(),
        "instruction,P1,pending,missing_entry,,CNY,8630.15,,,,,,no bank entry for this instruction"
    );
    assert!(text.contains(
        "balance,CUS-B01,ok,,,CNY,9630.15,9630.15,CUS-B01,,s.xml:3,,custody account of B01\n"
    ));
}
