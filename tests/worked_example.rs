//! SPEC §3's worked example, run through the real binary: every number must come out exactly
//! as the specification writes it.

mod common;

use common::*;

#[test]
fn worked_example_matches_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = run_day(&sample("worked-example"), &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let out = data.join("out/2026-11-25");

    assert_eq!(
        csv_rows(&out.join("member_positions.csv")),
        vec![
            vec!["A", "CNY", "10.01", "8638.00", "10.00", "8617.99"],
            vec!["B", "CNY", "8638.00", "10.01", "2.16", "-8630.15"],
        ]
    );
    assert_eq!(
        csv_rows(&out.join("security_positions.csv")),
        vec![
            vec!["A", "X", "1", "700", "-699"],
            vec!["B", "X", "700", "1", "699"]
        ]
    );
    assert_eq!(
        csv_rows(&out.join("bank_positions.csv")),
        vec![
            vec!["B01", "CNY", "8630.15"],
            vec!["B02", "CNY", "-8630.15"]
        ]
    );
    assert_eq!(
        csv_rows(&out.join("instructions.csv")),
        vec![
            vec![
                "20261125-P1-B02-CNY",
                "1",
                "pay_in",
                "CNY",
                "8630.15",
                "B02",
                "CUS-B02",
                "B01",
                "DLV-001",
                "default"
            ],
            vec![
                "20261125-P2-B01-CNY",
                "2",
                "in_book",
                "CNY",
                "8630.15",
                "B01",
                "DLV-001",
                "B01",
                "CUS-B01",
                "default"
            ],
        ]
    );
    let balances = csv_rows(&out.join("balances.csv"));
    assert_eq!(
        balances,
        vec![
            vec!["A", "CNY", "9617.99", "0.00", "9617.99"],
            vec!["B", "CNY", "11369.85", "0.00", "11369.85"],
            vec!["FEE", "CNY", "12.16", "0.00", "12.16"],
        ]
    );

    // Closing positions live in the ledger: A 301 X, B 699 X.
    let db = rusqlite::Connection::open(data.join("ledger.sqlite")).unwrap();
    let position = |account: &str| -> i64 {
        db.query_row(
            "SELECT quantity FROM positions WHERE account = ?1 AND instrument = 'X'",
            [account],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(position("A"), 301);
    assert_eq!(position("B"), 699);
    // The custody invariant: per bank, Σ virtual balances = the custody account's balance.
    let custody = |bank: &str| -> i64 {
        db.query_row(
            "SELECT balance_minor FROM custody WHERE bank = ?1 AND currency = 'CNY'",
            [bank],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(custody("B01"), 961_799 + 1_216);
    assert_eq!(custody("B02"), 1_136_985);

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["currencies"]["CNY"]["fees_total"], "12.16");
    assert_eq!(summary["currencies"]["CNY"]["conservation"], "ok");
    assert_eq!(summary["currencies"]["CNY"]["pay_in_total"], "8630.15");
    assert_eq!(summary["currencies"]["CNY"]["pay_out_total"], "8630.15");
}
