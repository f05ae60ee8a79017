//! Funds in and out: deposit allocation (bound account, deposit code, suspense), re-sent
//! notifications, online deposits not withdrawable until the next day, freezes, withdrawals
//! refused whole, phase-3 instructions, and the custody invariant after every batch.

mod common;

use common::*;
use std::path::Path;

fn funds_day(dir: &Path) {
    copy_dir(&sample("worked-example"), dir);
    std::fs::write(
        dir.join("members.csv"),
        "member_id,name,settlement_bank,bound_bank,bound_account,bound_account_name,status,fee_rate,min_fee,deposit_code\n\
         A,Member A,B01,B01,6222000000000001,Member A Ltd,active,0.0003,5.00,ACODE\n\
         B,Member B,B02,B02,6222000000000002,Member B Ltd,active,0.00025,0,BCODE\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("deposits.csv"),
        "bank_ref,bank,payer_bank,payer_account,payer_name,currency,amount,memo,channel\n\
         R1,B01,B01,6222000000000001,Member A Ltd,CNY,500.00,top-up,bank\n\
         R2,B02,B09,9999,Someone,CNY,300.00,for BCODE please,bank\n\
         R3,B02,B09,8888,Unknown,CNY,50.00,no code XBCODE,bank\n\
         R4,B01,B01,6222000000000001,Member A Ltd,CNY,1000.00,via wallet,online\n\
         R1,B01,B01,6222000000000001,Member A Ltd,CNY,500.00,top-up,bank\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("freezes.csv"),
        "freeze_id,member_id,currency,amount,action\n\
         F1,B,CNY,1000.00,freeze\n\
         F2,A,CNY,999999.00,freeze\n\
         F9,A,CNY,1.00,unfreeze\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("withdrawals.csv"),
        "request_id,member_id,currency,amount\n\
         W1,A,CNY,2000.00\n\
         W2,A,CNY,9000.00\n\
         W3,B,CNY,11000.00\n",
    )
    .unwrap();
}

/// Per bank and currency: Σ virtual balances held there, and the custody balance.
fn custody_check(data: &Path) {
    let rows: Vec<(String, String, i64, i64)> = ledger_query(
        data,
        "SELECT c.bank, c.currency, c.balance_minor,
                (SELECT coalesce(sum(b.balance_minor), 0) FROM balances b
                 JOIN accounts a ON a.account = b.account
                 WHERE a.bank = c.bank AND b.currency = c.currency)
         FROM custody c",
    )
    .into_iter()
    .map(|r| {
        (
            r[0].clone(),
            r[1].clone(),
            r[2].parse().unwrap(),
            r[3].parse().unwrap(),
        )
    })
    .collect();
    assert!(!rows.is_empty());
    for (bank, currency, custody, virtual_sum) in rows {
        assert_eq!(
            custody, virtual_sum,
            "custody invariant broken at {bank} in {currency}"
        );
    }
}

#[test]
fn deposits_freezes_and_withdrawals_in_one_day_and_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    funds_day(&day);
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let out = data.join("out/2026-11-25");

    let balances = csv_rows(&out.join("balances.csv"));
    let row = |account: &str| balances.iter().find(|r| r[0] == account).cloned().unwrap();
    // A: 1000 + 500 (bound account) + 1000 (online) + 8617.99 − 2000 (W1) = 9117.99; the
    // online 1000.00 is not withdrawable today.
    assert_eq!(row("A"), ["A", "CNY", "9117.99", "0.00", "8117.99"]);
    // B: 20000 + 300 (deposit code) − 8630.15 = 11669.85, 1000.00 of it frozen.
    assert_eq!(row("B"), ["B", "CNY", "11669.85", "1000.00", "10669.85"]);
    // R3's memo holds "XBCODE", not the word BCODE: suspense.
    assert_eq!(
        row("SUSPENSE"),
        ["SUSPENSE", "CNY", "50.00", "0.00", "50.00"]
    );

    let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
    for needle in [
        "freezes.csv,3,F2,freeze of 999999.00 CNY exceeds the available balance",
        "freezes.csv,4,F9,unfreeze of an unknown freeze_id",
        "withdrawals.csv,3,W2,amount 9000.00 CNY exceeds the withdrawable balance 8117.99",
        "withdrawals.csv,4,W3,amount 11000.00 CNY exceeds the withdrawable balance 10669.85",
    ] {
        assert!(
            rejects.contains(needle),
            "rejects.csv lacks {needle:?}:\n{rejects}"
        );
    }
    let instructions = csv_rows(&out.join("instructions.csv"));
    assert!(
        instructions.contains(&vec![
            "20261125-P3-W1".into(),
            "3".into(),
            "withdrawal".into(),
            "CNY".into(),
            "2000.00".into(),
            "B01".into(),
            "CUS-B01".into(),
            "B01".into(),
            "6222000000000001".into(),
            "default".into()
        ]),
        "{instructions:?}"
    );
    // Pay-ins equal pay-outs: the delivery account nets to zero.
    let sum = |phase: &str| -> i64 {
        instructions
            .iter()
            .filter(|r| r[1] == phase)
            .map(|r| r[4].replace('.', "").parse::<i64>().unwrap())
            .sum()
    };
    assert_eq!(sum("1"), sum("2"));
    custody_check(&data);

    // The next day: the online deposit is withdrawable, F1 is released, R1 re-sent is one
    // deposit, W1 sent again is refused.
    let next = tmp.path().join("next");
    copy_dir(&sample("worked-example"), &next);
    std::fs::remove_file(next.join("opening_balances.csv")).unwrap();
    std::fs::remove_file(next.join("opening_positions.csv")).unwrap();
    std::fs::copy(day.join("members.csv"), next.join("members.csv")).unwrap();
    std::fs::write(
        next.join("trades.csv"),
        "trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\n\
         N1,2026-11-26,X,B,A,10.000,1,\n",
    )
    .unwrap();
    std::fs::write(
        next.join("deposits.csv"),
        "bank_ref,bank,payer_bank,payer_account,payer_name,currency,amount,memo,channel\n\
         R1,B01,B01,6222000000000001,Member A Ltd,CNY,500.00,top-up,bank\n",
    )
    .unwrap();
    std::fs::write(next.join("freezes.csv"), "freeze_id,member_id,currency,amount,action\nF1,B,CNY,1000.00,unfreeze\nF1,B,CNY,1000.00,unfreeze\n").unwrap();
    std::fs::write(
        next.join("withdrawals.csv"),
        "request_id,member_id,currency,amount\nW1,A,CNY,1.00\nW4,A,CNY,9122.99\n",
    )
    .unwrap();
    let run = run_day(&next, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let out = data.join("out/2026-11-26");
    let balances = csv_rows(&out.join("balances.csv"));
    let row = |account: &str| balances.iter().find(|r| r[0] == account).cloned().unwrap();
    // A sold 1 X for 10.00, paid the 5.00 minimum fee, and withdrew everything: 9117.99 + 5.00.
    assert_eq!(row("A"), ["A", "CNY", "0.00", "0.00", "0.00"]);
    assert_eq!(row("B")[3], "0.00");
    let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
    assert!(
        rejects.contains("withdrawals.csv,2,W1,request_id was already paid on 2026-11-25"),
        "{rejects}"
    );
    assert!(
        rejects.contains("freezes.csv,3,F1,freeze_id was already released"),
        "{rejects}"
    );
    custody_check(&data);
}

#[test]
fn a_deposit_reusing_a_booked_reference_with_other_content_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    funds_day(&day);
    let data = tmp.path().join("data");
    assert_eq!(run_day(&day, &data, &[]).code, 0);
    let before = ledger_rows(&data);
    let next = tmp.path().join("next");
    copy_dir(&day, &next);
    for f in [
        "opening_balances.csv",
        "opening_positions.csv",
        "freezes.csv",
        "withdrawals.csv",
    ] {
        std::fs::remove_file(next.join(f)).unwrap();
    }
    std::fs::write(next.join("trades.csv"), "trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\nN1,2026-11-26,X,B,A,10.000,1,\n").unwrap();
    std::fs::write(
        next.join("deposits.csv"),
        "bank_ref,bank,payer_bank,payer_account,payer_name,currency,amount,memo,channel\n\
         R1,B01,B01,6222000000000001,Member A Ltd,CNY,501.00,top-up,bank\n",
    )
    .unwrap();
    let run = run_day(&next, &data, &[]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(run.text().contains("deposits.csv:2: column bank_ref: value \"R1\": was booked on 2026-11-25 with other content"), "{}", run.text());
    assert_eq!(ledger_rows(&data), before);
}

// The same tests with the ledger in PostgreSQL (skipped without CLEARHOUSE_TEST_POSTGRES).
postgres_variants!(
    deposits_freezes_and_withdrawals_in_one_day_and_the_next,
    a_deposit_reusing_a_booked_reference_with_other_content_is_rejected,
);
