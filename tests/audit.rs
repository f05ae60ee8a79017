//! `clearhouse audit` recomputes the ledger from its entries: clean after real days, and it
//! names a balance, a custody account and an entry that were tampered with.

mod common;

use common::*;

#[test]
fn audit_is_clean_after_posted_days_and_names_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    assert_eq!(run_day(&sample("day1"), &data, &[]).code, 0);
    assert_eq!(run_day(&sample("day2"), &data, &[]).code, 0);
    let data_arg = data.to_str().unwrap();
    let run = clearhouse(&["audit", "--data-dir", data_arg]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("2 batches"), "{}", run.stdout);
    assert!(run.stdout.contains("clean"), "{}", run.stdout);

    ledger_execute(&data, "UPDATE balances SET balance_minor = balance_minor + 1 WHERE account = 'ALPHA' AND currency = 'CNY'");
    ledger_execute(&data, "UPDATE entries SET amount = amount - 7 WHERE entry_id = 'FEE-USD' AND account = 'FEE' AND business_date = '2026-11-26'");
    let run = clearhouse(&["audit", "--data-dir", data_arg]);
    assert_eq!(run.code, 6, "{}", run.text());
    for needle in [
        "balance of ALPHA in CNY: stored 81938051, entries give 81938050",
        "entry FEE-USD of 2026-11-26 does not balance in USD: -7",
        "balance of FEE in USD",
        "custody account of B01 in CNY: real balance 92126832, Σ virtual balances 92126833",
        "the custody invariant is broken",
    ] {
        assert!(
            run.stdout.contains(needle),
            "audit output lacks {needle:?}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn audit_of_a_missing_ledger_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = clearhouse(&["audit", "--data-dir", tmp.path().to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stderr.contains("no ledger"), "{}", run.stderr);
}

// The same tests with the ledger in PostgreSQL (skipped without CLEARHOUSE_TEST_POSTGRES).
postgres_variants!(audit_is_clean_after_posted_days_and_names_tampering,);
