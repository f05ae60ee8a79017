//! Shortfalls under the two policies of SPEC §3: `abort` posts nothing and exits 3; `cover`
//! posts everything and the guarantee account pays.

mod common;

use common::*;
use std::path::Path;

/// The worked example, except that A buys 200 X from B at 10.00: A cannot pay 2005.00 with
/// 1000.00, and B sells 200 X it does not hold.
fn short_day(dir: &Path, policy: &str, guarantee: &str) {
    copy_dir(&sample("worked-example"), dir);
    let platform = std::fs::read_to_string(dir.join("platform.toml")).unwrap();
    std::fs::write(
        dir.join("platform.toml"),
        platform.replace(
            "shortfall_policy = \"abort\"",
            &format!("shortfall_policy = \"{policy}\""),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("opening_balances.csv"),
        format!(
            "account,currency,balance\nA,CNY,1000.00\nB,CNY,20000.00\nGUARANTEE,CNY,{guarantee}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("trades.csv"),
        "trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\n\
         T1,2026-11-25,X,A,B,10.00,200,\n",
    )
    .unwrap();
}

#[test]
fn abort_posts_nothing_and_lists_every_shortfall() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    short_day(&day, "abort", "5000.00");
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 3, "{}", run.text());
    assert!(
        run.stdout.contains("2 shortfall(s) under policy abort"),
        "{}",
        run.stdout
    );
    assert_eq!(
        csv_rows(&data.join("out/2026-11-25/shortfalls.csv")),
        vec![
            vec!["A", "cash", "CNY", "2005.00", "1000.00", "1005.00"],
            vec!["B", "securities", "X", "200", "0", "200"],
        ]
    );
    assert!(!ledger_exists(&data), "a new ledger stays new");
}

#[test]
fn cover_posts_and_the_guarantee_account_pays() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    short_day(&day, "cover", "5000.00");
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let out = data.join("out/2026-11-25");
    assert_eq!(
        csv_rows(&out.join("defaults.csv")),
        vec![
            vec!["A", "cash", "CNY", "1005.00", "GUARANTEE", "0"],
            vec!["B", "securities", "X", "200", "GUARANTEE", "0"],
        ]
    );
    // A ends at zero; the guarantee account paid 1005.00 of its 5000.00.
    let balances = csv_rows(&out.join("balances.csv"));
    assert!(
        balances.contains(&vec![
            "A".into(),
            "CNY".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into()
        ]),
        "{balances:?}"
    );
    assert!(
        balances.contains(&vec![
            "GUARANTEE".into(),
            "CNY".into(),
            "3995.00".into(),
            "0.00".into(),
            "3995.00".into()
        ]),
        "{balances:?}"
    );
    let pos = |account: &str| -> i64 {
        // A position of zero is not stored: no row reads as 0.
        ledger_count(
            &data,
            &format!(
                "SELECT coalesce(
                     (SELECT quantity FROM positions WHERE account = '{account}' AND instrument = 'X'), 0)"
            ),
        )
    };
    assert_eq!(pos("A"), 1200);
    assert_eq!(pos("B"), 0);
    assert_eq!(
        pos("GUARANTEE"),
        -200,
        "the guarantee account owes the undelivered quantity"
    );
}

#[test]
fn cover_refuses_when_the_guarantee_account_cannot_pay() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    short_day(&day, "cover", "100.00");
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 3, "{}", run.text());
    assert!(
        run.stdout.contains(
            "guarantee account GUARANTEE holds 100.00 CNY available, the shortfalls need 1005.00"
        ),
        "{}",
        run.stdout
    );
    assert!(!ledger_exists(&data));
}

// The same tests with the ledger in PostgreSQL (skipped without CLEARHOUSE_TEST_POSTGRES).
postgres_variants!(
    abort_posts_nothing_and_lists_every_shortfall,
    cover_posts_and_the_guarantee_account_pays,
    cover_refuses_when_the_guarantee_account_cannot_pay,
);
