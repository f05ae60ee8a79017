//! Every kind of bad input is rejected with exit 2, a message that names the place (file,
//! line, column, value), a rejects.csv, and a data directory left exactly as it was.

mod common;

use common::*;

/// (sample under samples/bad, text that the error report must contain).
const CASES: &[(&str, &[&str])] = &[
    ("wrong-header", &["trades.csv:1", "prise"]),
    ("missing-column", &["trades.csv:1", "price"]),
    ("extra-column", &["trades.csv:1", "venue"]),
    ("wrong-column-count", &["trades.csv:3"]),
    ("non-utf8", &["trades.csv:3", "UTF-8"]),
    ("empty-file", &["trades.csv", "empty"]),
    (
        "unknown-member",
        &[
            "trades.csv:3",
            "column buyer",
            "\"C\"",
            "not in members.csv",
        ],
    ),
    (
        "unknown-instrument",
        &[
            "trades.csv:3",
            "column instrument",
            "\"Y\"",
            "not in instruments.csv",
        ],
    ),
    (
        "buyer-is-seller",
        &["trades.csv:3", "column seller", "same member as the buyer"],
    ),
    (
        "suspended-member",
        &["trades.csv:2", "member is suspended", "trades.csv:3"],
    ),
    (
        "price-not-positive",
        &[
            "trades.csv:3",
            "column price",
            "must be > 0",
            "trades.csv:4",
            "\"-1.5\"",
        ],
    ),
    (
        "price-too-many-decimals",
        &[
            "trades.csv:3",
            "\"12.3405\"",
            "has 4 decimals, instrument X allows 3",
        ],
    ),
    (
        "quantity-not-lot-multiple",
        &[
            "trades.csv:3",
            "\"750\"",
            "not a multiple of the lot size 100",
        ],
    ),
    (
        "quantity-overflow",
        &["trades.csv:3", "column quantity", "99999999999999999999"],
    ),
    (
        "duplicate-id-different-content",
        &[
            "trades.csv:4",
            "T2",
            "already used by a trade with different content",
        ],
    ),
    (
        "mixed-business-dates",
        &[
            "trades.csv:3",
            "2026-11-26",
            "differs from the day's business date 2026-11-25",
        ],
    ),
    ("malformed-platform-toml", &["platform.toml"]),
    (
        "settlement-bank-missing",
        &[
            "members.csv:3",
            "settlement_bank",
            "\"B09\"",
            "not a bank of platform.toml",
        ],
    ),
    (
        "unknown-opening-account",
        &["opening_balances.csv:4", "\"NOBODY\""],
    ),
];

#[test]
fn every_bad_sample_is_rejected_and_changes_nothing() {
    let mut failures = Vec::new();
    for (name, needles) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let out = tmp.path().join("out");
        let day = sample(&format!("bad/{name}"));
        let run = clearhouse(&[
            "run",
            day.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        if run.code != 2 {
            failures.push(format!(
                "{name}: exit {} (want 2)\n{}",
                run.code,
                run.text()
            ));
            continue;
        }
        let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap_or_default();
        let report = format!("{}\n{rejects}", run.text());
        for needle in *needles {
            if !report.contains(needle) {
                failures.push(format!("{name}: report lacks {needle:?}\n{report}"));
            }
        }
        // A new ledger stays new.
        if data.join("ledger.sqlite").exists() {
            failures.push(format!("{name}: a ledger was created"));
        }
        // Without --out, rejects.csv still lands in the data directory's outputs.
        let data2 = tmp.path().join("data2");
        let again = run_day(&day, &data2, &[]);
        assert_eq!(again.code, 2, "{name}");
        let written: Vec<_> = ["out/2026-11-25/rejects.csv", "out/undated/rejects.csv"]
            .iter()
            .filter(|p| data2.join(p).exists())
            .collect();
        if written.len() != 1 || data2.join("ledger.sqlite").exists() {
            failures.push(format!(
                "{name}: rejects.csv not written under data2/out ({written:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bad_input_on_an_existing_ledger_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    assert_eq!(run_day(&sample("day1"), &data, &[]).code, 0);
    let before = ledger_rows(&data);
    let bad = tmp.path().join("bad-day2");
    copy_dir(&sample("day2"), &bad);
    let trades = std::fs::read_to_string(bad.join("trades.jsonl")).unwrap();
    std::fs::write(
        bad.join("trades.jsonl"),
        trades.replace(
            "\"GAMMA\",\"seller\":\"ALPHA\"",
            "\"NOBODY\",\"seller\":\"ALPHA\"",
        ),
    )
    .unwrap();
    let run = run_day(&bad, &data, &[]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(run.text().contains("trades.jsonl:3"), "{}", run.text());
    assert_eq!(ledger_rows(&data), before);
    let rejects = std::fs::read_to_string(data.join("out/2026-11-26/rejects.csv")).unwrap();
    assert!(rejects.starts_with("source,line,id,reason\n"), "{rejects}");
    assert!(rejects.contains("trades.jsonl,3,T0103,"), "{rejects}");
}

#[test]
fn every_bad_row_is_reported_not_only_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    copy_dir(&sample("worked-example"), &day);
    let mut trades =
        String::from("trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\n");
    for i in 0..50 {
        trades.push_str(&format!("BAD{i},2026-11-25,X,A,NOBODY,10.00,1,\n"));
    }
    std::fs::write(day.join("trades.csv"), trades).unwrap();
    let out = tmp.path().join("out");
    let run = clearhouse(&[
        "run",
        day.to_str().unwrap(),
        "--data-dir",
        tmp.path().join("data").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.text());
    let rows = csv_rows(&out.join("rejects.csv"));
    assert_eq!(rows.len(), 50);
    assert!(run.stderr.contains("and 30 more"), "{}", run.stderr);
}

#[test]
fn skip_invalid_posts_the_valid_rows_and_lists_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    copy_dir(&sample("worked-example"), &day);
    let mut trades = std::fs::read_to_string(day.join("trades.csv")).unwrap();
    trades.push_str("T3,2026-11-25,X,A,NOBODY,10.00,1,\n");
    std::fs::write(day.join("trades.csv"), trades).unwrap();
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(ledger_rows(&data).is_empty());

    let run = run_day(&day, &data, &["--skip-invalid"]);
    assert_eq!(run.code, 0, "{}", run.text());
    let out = data.join("out/2026-11-25");
    let rejects = csv_rows(&out.join("rejects.csv"));
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0][0..3], ["trades.csv", "4", "T3"]);
    // T1 and T2 were netted exactly as in the worked example.
    assert_eq!(
        csv_rows(&out.join("member_positions.csv")),
        vec![
            vec!["A", "CNY", "10.01", "8638.00", "10.00", "8617.99"],
            vec!["B", "CNY", "8638.00", "10.01", "2.16", "-8630.15"],
        ]
    );
}
