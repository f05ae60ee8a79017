//! Property: over random multi-day histories of trades, deposits, withdrawals and freezes, run
//! through the real day runner, the custody invariant holds after every batch (per bank and
//! currency, Σ virtual balances = the custody account's balance), every entry balances, every
//! balance is recomputable from the entries, and the delivery account nets to zero.

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;

use clearhouse_engine::audit::audit;
use clearhouse_engine::day::{run_day, Quiet, RunOptions, RunStatus};

const MEMBERS: usize = 4;
const BANKS: [&str; 3] = ["B01", "B02", "B03"];

#[derive(Debug, Clone)]
struct Day {
    trades: Vec<(usize, usize, u32, u32)>, // (buyer, seller, price in cents, lots)
    deposits: Vec<(usize, usize, u32, bool, u8)>, // (member, arriving bank, amount, online, how matched)
    freezes: Vec<(usize, u32, bool)>,             // (member, amount, unfreeze the previous one)
    withdrawals: Vec<(usize, u32)>,               // (member, amount)
}

fn day() -> impl Strategy<Value = Day> {
    (
        prop::collection::vec((0..MEMBERS, 0..MEMBERS, 100u32..50_000, 1u32..20), 1..25),
        prop::collection::vec(
            (
                0..MEMBERS,
                0..BANKS.len(),
                1u32..500_000,
                any::<bool>(),
                0u8..3,
            ),
            0..5,
        ),
        prop::collection::vec((0..MEMBERS, 1u32..300_000, any::<bool>()), 0..4),
        prop::collection::vec((0..MEMBERS, 1u32..900_000), 0..5),
    )
        .prop_map(|(trades, deposits, freezes, withdrawals)| Day {
            trades,
            deposits,
            freezes,
            withdrawals,
        })
}

fn cents(v: u32) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

fn write_reference(dir: &Path) {
    let mut platform = String::from(
        "name = \"prop\"\ndelivery_bank = \"B01\"\ndelivery_account = \"DLV\"\nfee_account = \"FEE\"\n\
         guarantee_account = \"GUARANTEE\"\nsuspense_account = \"SUSPENSE\"\n\
         shortfall_policy = \"cover\"\nsecurities_check = false\n",
    );
    for b in BANKS {
        let _ = writeln!(platform, "[banks.{b}]\ncustody_account = \"CUS-{b}\"");
    }
    std::fs::write(dir.join("platform.toml"), platform).unwrap();
    let mut members = String::from(
        "member_id,name,settlement_bank,bound_bank,bound_account,bound_account_name,status,fee_rate,min_fee,deposit_code\n",
    );
    for m in 0..MEMBERS {
        let _ = writeln!(
            members,
            "M{m},Member {m},{},X{m},ACC{m},Member {m},active,0.0003,1.00,CODE{m}",
            BANKS[m % BANKS.len()]
        );
    }
    std::fs::write(dir.join("members.csv"), members).unwrap();
    std::fs::write(
        dir.join("instruments.csv"),
        "instrument,name,currency,price_scale,lot_size\nX,X,CNY,3,7\n",
    )
    .unwrap();
}

fn write_day(dir: &Path, n: usize, d: &Day) {
    write_reference(dir);
    let date = format!("2026-11-{:02}", 20 + n);
    let mut trades =
        String::from("trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\n");
    for (i, (b, s, price, lots)) in d.trades.iter().enumerate() {
        let seller = if b == s { (s + 1) % MEMBERS } else { *s };
        let _ = writeln!(
            trades,
            "D{n}T{i},{date},X,M{b},M{seller},{},{},",
            cents(*price),
            7 * lots
        );
    }
    std::fs::write(dir.join("trades.csv"), trades).unwrap();
    let mut deposits = String::from(
        "bank_ref,bank,payer_bank,payer_account,payer_name,currency,amount,memo,channel\n",
    );
    for (i, (m, bank, amount, online, how)) in d.deposits.iter().enumerate() {
        let (payer_bank, payer_account, memo) = match how {
            0 => (format!("X{m}"), format!("ACC{m}"), String::new()),
            1 => ("Y".into(), "999".into(), format!("pay CODE{m}")),
            _ => ("Y".into(), "998".into(), "unknown".into()),
        };
        let channel = if *online { "online" } else { "bank" };
        let _ = writeln!(
            deposits,
            "D{n}R{i},{},{payer_bank},{payer_account},Payer,CNY,{},{memo},{channel}",
            BANKS[*bank],
            cents(*amount)
        );
    }
    std::fs::write(dir.join("deposits.csv"), deposits).unwrap();
    let mut freezes = String::from("freeze_id,member_id,currency,amount,action\n");
    for (i, (m, amount, release)) in d.freezes.iter().enumerate() {
        let _ = writeln!(freezes, "D{n}F{i},M{m},CNY,{},freeze", cents(*amount));
        if *release {
            let _ = writeln!(freezes, "D{n}F{i},M{m},CNY,{},unfreeze", cents(*amount));
        }
    }
    std::fs::write(dir.join("freezes.csv"), freezes).unwrap();
    let mut withdrawals = String::from("request_id,member_id,currency,amount\n");
    for (i, (m, amount)) in d.withdrawals.iter().enumerate() {
        let _ = writeln!(withdrawals, "D{n}W{i},M{m},CNY,{}", cents(*amount));
    }
    std::fs::write(dir.join("withdrawals.csv"), withdrawals).unwrap();
    if n == 0 {
        let mut opening = String::from("account,currency,balance\nGUARANTEE,CNY,100000000.00\n");
        for m in 0..MEMBERS {
            let _ = writeln!(opening, "M{m},CNY,20000.00");
        }
        std::fs::write(dir.join("opening_balances.csv"), opening).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn custody_invariant_holds_after_every_batch(days in prop::collection::vec(day(), 1..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        for (n, d) in days.iter().enumerate() {
            let dir = tmp.path().join(format!("day{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            write_day(&dir, n, d);
            let opts = RunOptions { day_dir: dir, data_dir: data.clone(), out_dir: None, skip_invalid: false };
            let report = run_day(&opts, &mut Quiet).unwrap();
            prop_assert_eq!(&report.status, &RunStatus::Posted, "{:?}", report.rejects);
            let report = audit(&data).unwrap();
            prop_assert!(report.is_clean(), "day {}: {:?}", n, report.differences);
            let out = data.join(format!("out/2026-11-{:02}/instructions.csv", 20 + n));
            let text = std::fs::read_to_string(out).unwrap();
            let mut delivery: i64 = 0;
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split(',').collect();
                let amount: i64 = cols[4].replace('.', "").parse().unwrap();
                match cols[1] { "1" => delivery += amount, "2" => delivery -= amount, _ => {} }
            }
            prop_assert_eq!(delivery, 0, "the delivery account must net to zero");
        }
    }
}
