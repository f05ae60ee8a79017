//! Property tests over random days: the optimised netting path against a naive reference
//! model written with rust_decimal, conservation, the custody invariant, and a delivery
//! account that nets to zero.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rust_decimal::prelude::*;

use clearhouse_engine::banks::aggregate;
use clearhouse_engine::book::Book;
use clearhouse_engine::funding::check_funding;
use clearhouse_engine::ledger::{Balance, Snapshot};
use clearhouse_engine::netting::{Nets, NettingAccumulator};
use clearhouse_engine::posting::post_nets;
use clearhouse_engine::reference::RefData;
use clearhouse_engine::validate::TradeValidator;
use clearhouse_formats::model::{
    Bank, FeeRate, Instrument, Member, MemberStatus, Platform, ShortfallPolicy, TradeFields,
};
use clearhouse_formats::money::{Currency, Decimal as Dec};
use clearhouse_formats::trades::TradeSink;

const CURRENCIES: [&str; 3] = ["CNY", "JPY", "USD"];

#[derive(Debug, Clone)]
struct DaySpec {
    banks: usize,
    members: Vec<(usize, u32, u32)>, // (bank, fee rate in 1e-5, min fee in minor units)
    instruments: Vec<(usize, u32, i64)>, // (currency, price scale, lot)
    trades: Vec<(usize, usize, usize, i64, i64)>, // (instrument, buyer, seller, price mantissa, lots)
}

fn day_spec() -> impl Strategy<Value = DaySpec> {
    (1usize..4, 2usize..7, 1usize..5).prop_flat_map(|(banks, members, instruments)| {
        (
            Just(banks),
            prop::collection::vec((0..banks, 0u32..100, 0u32..600), members),
            prop::collection::vec(
                (
                    0usize..3,
                    0u32..5,
                    prop::sample::select(vec![1i64, 3, 7, 100]),
                ),
                instruments,
            ),
            prop::collection::vec(
                (
                    0..instruments,
                    0..members,
                    0..members,
                    1i64..2_000_000,
                    1i64..30,
                ),
                0..60,
            ),
        )
            .prop_map(|(banks, members, instruments, trades)| DaySpec {
                banks,
                members,
                instruments,
                trades,
            })
    })
}

fn refs_of(spec: &DaySpec) -> RefData {
    let banks: BTreeMap<String, Bank> = (0..spec.banks)
        .map(|b| {
            let id = format!("B{b}");
            (
                id.clone(),
                Bank {
                    id: id.clone(),
                    custody_account: format!("CUS-{id}"),
                    bic: None,
                },
            )
        })
        .collect();
    let platform = Platform {
        name: "prop".into(),
        delivery_bank: "B0".into(),
        delivery_account: "DLV".into(),
        fee_account: "FEE".into(),
        guarantee_account: "GUARANTEE".into(),
        suspense_account: "SUSPENSE".into(),
        shortfall_policy: ShortfallPolicy::Abort,
        securities_check: false,
        banks,
        channels: None,
    };
    let members = spec
        .members
        .iter()
        .enumerate()
        .map(|(i, (bank, rate, min_fee))| Member {
            member_id: format!("M{i}"),
            name: format!("Member {i}"),
            settlement_bank: format!("B{bank}"),
            bound_bank: "X".into(),
            bound_account: format!("{i}"),
            bound_account_name: "x".into(),
            status: MemberStatus::Active,
            fee_rate: FeeRate(Dec::from_unscaled(i128::from(*rate), 5).unwrap()),
            // Whole units, so the minimum fits JPY's zero minor digits too.
            min_fee: Dec::from_unscaled(i128::from(*min_fee / 100), 0).unwrap(),
            deposit_code: None,
            line: i as u64 + 2,
        })
        .collect();
    let instruments = spec
        .instruments
        .iter()
        .enumerate()
        .map(|(i, (c, scale, lot))| Instrument {
            instrument: format!("I{i}"),
            name: format!("Instrument {i}"),
            currency: Currency::from_code(CURRENCIES[*c]).unwrap(),
            price_scale: *scale,
            lot_size: *lot,
            line: i as u64 + 2,
        })
        .collect();
    RefData::build(
        platform,
        members,
        instruments,
        std::path::Path::new("members.csv"),
    )
    .unwrap()
}

/// The valid trades of a spec (buyer ≠ seller), as owned field values.
fn trades_of(spec: &DaySpec) -> Vec<(String, String, String, String, Dec, i64)> {
    spec.trades
        .iter()
        .enumerate()
        .filter(|(_, t)| t.1 != t.2)
        .map(|(n, (i, b, s, p, lots))| {
            let (_, scale, lot) = spec.instruments[*i];
            (
                format!("T{n}"),
                format!("I{i}"),
                format!("M{b}"),
                format!("M{s}"),
                Dec::from_unscaled(i128::from(*p), scale).unwrap(),
                lot * lots,
            )
        })
        .collect()
}

fn net(refs: &RefData, trades: &[(String, String, String, String, Dec, i64)]) -> (Nets, u64) {
    let mut v = TradeValidator::new(refs, None);
    v.set_file(std::path::Path::new("trades.csv"));
    for (n, (id, instrument, buyer, seller, price, quantity)) in trades.iter().enumerate() {
        v.trade(
            n as u64 + 2,
            &TradeFields {
                trade_id: id,
                business_date: "2026-11-25",
                instrument,
                buyer,
                seller,
                price: *price,
                quantity: *quantity,
                executed_at: None,
            },
        );
    }
    let done = v.finish();
    assert!(done.rejects.is_empty(), "{:?}", done.rejects);
    (done.netting.finish(refs).unwrap(), done.counts.netted)
}

/// The naive model: rust_decimal arithmetic, one BTreeMap per result.
fn reference_nets(
    refs: &RefData,
    trades: &[(String, String, String, String, Dec, i64)],
) -> BTreeMap<(String, String), (Decimal, Decimal, Decimal)> {
    let mut out: BTreeMap<(String, String), (Decimal, Decimal, Decimal)> = BTreeMap::new();
    for (_, instrument, buyer, seller, price, quantity) in trades {
        let inst = &refs.instruments[refs.instrument_idx(instrument).unwrap().0 as usize];
        let digits = inst.currency.minor_digits();
        let price = Decimal::new(price.mantissa, price.scale);
        let amount = (price * Decimal::from(*quantity))
            .round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
        let fee = |member: &str| {
            let m = &refs.members[refs.member_idx(member).unwrap().0 as usize];
            let rate = Decimal::new(m.fee_rate.0.mantissa, m.fee_rate.0.scale);
            let min = Decimal::new(m.min_fee.mantissa, m.min_fee.scale);
            (amount * rate)
                .round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero)
                .max(min)
        };
        let code = inst.currency.code().to_string();
        let b = out.entry((buyer.clone(), code.clone())).or_default();
        b.0 += amount;
        b.2 += fee(buyer);
        let s = out.entry((seller.clone(), code)).or_default();
        s.1 += amount;
        s.2 += fee(seller);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn netting_matches_the_reference_model_and_conserves(spec in day_spec()) {
        let refs = refs_of(&spec);
        let trades = trades_of(&spec);
        let (nets, netted) = net(&refs, &trades);
        prop_assert_eq!(netted as usize, trades.len());
        let model = reference_nets(&refs, &trades);
        prop_assert_eq!(nets.cash.len(), model.len());
        for n in &nets.cash {
            let c = refs.currency(n.currency);
            let key = (refs.member(n.member).member_id.clone(), c.code().to_string());
            let (bought, sold, fees) = model[&key];
            let minor = |d: Decimal| (d * Decimal::from(10i64.pow(c.minor_digits()))).to_i64().unwrap();
            prop_assert_eq!(n.bought_minor, minor(bought));
            prop_assert_eq!(n.sold_minor, minor(sold));
            prop_assert_eq!(n.fees_minor, minor(fees));
            prop_assert_eq!(n.net_minor, minor(sold - bought - fees));
        }
        // Conservation, independently of the engine's own check.
        let mut sums: BTreeMap<u32, i128> = BTreeMap::new();
        for n in &nets.cash {
            *sums.entry(n.currency.0).or_default() += i128::from(n.net_minor);
        }
        for (c, sum) in sums {
            prop_assert_eq!(sum + i128::from(nets.fee_totals_minor[c as usize]), 0);
        }
        let mut qty: BTreeMap<u32, i128> = BTreeMap::new();
        for q in &nets.qty {
            *qty.entry(q.instrument.0).or_default() += i128::from(q.net);
        }
        prop_assert!(qty.values().all(|s| *s == 0));
    }

    #[test]
    fn split_and_merged_netting_is_bit_identical(spec in day_spec(), cut in 0usize..60) {
        let refs = refs_of(&spec);
        let trades = trades_of(&spec);
        let (whole, _) = net(&refs, &trades);
        let cut = cut.min(trades.len());
        let part = |slice: &[(String, String, String, String, Dec, i64)]| {
            let mut v = TradeValidator::new(&refs, None);
            for (n, (id, instrument, buyer, seller, price, quantity)) in slice.iter().enumerate() {
                v.trade(n as u64, &TradeFields { trade_id: id, business_date: "2026-11-25", instrument, buyer, seller, price: *price, quantity: *quantity, executed_at: None });
            }
            v.finish().netting
        };
        let mut a: NettingAccumulator = part(&trades[..cut]);
        a.merge(part(&trades[cut..]));
        prop_assert_eq!(a.finish(&refs).unwrap(), whole);
    }

    #[test]
    fn posting_keeps_custody_and_the_delivery_account_nets_to_zero(spec in day_spec()) {
        let refs = refs_of(&spec);
        let trades = trades_of(&spec);
        let (nets, _) = net(&refs, &trades);
        // Every member starts rich at its bank; custody balances match (the invariant holds).
        let mut snapshot = Snapshot { version: 1, ..Snapshot::default() };
        for m in &refs.members {
            for c in &refs.currencies {
                snapshot.balances.insert((m.member_id.clone(), c.code().to_string()), Balance { balance_minor: 1_000_000_000_000_000, frozen_minor: 0 });
                *snapshot.custody.entry((m.settlement_bank.clone(), c.code().to_string())).or_default() += 1_000_000_000_000_000;
            }
        }
        let external: BTreeSet<String> = refs.platform.banks.values().map(|b| b.custody_account.clone()).collect();
        let mut book = Book::from_snapshot(&snapshot, external);
        let shortfalls = check_funding(&refs, &nets, &book);
        prop_assert!(shortfalls.is_empty());
        post_nets(&refs, &nets, &shortfalls, &mut book).unwrap().unwrap();
        let bank_of = |a: &str| refs.bank_of(a).map(str::to_string);
        let agg = aggregate(&book, bank_of, &snapshot.custody, &BTreeMap::new()).unwrap();
        // Custody invariant after settlement: Σ virtual at each bank = custody balance.
        let mut virtual_sum: BTreeMap<(String, String), i64> = BTreeMap::new();
        for ((account, currency), b) in &book.balances() {
            *virtual_sum.entry((refs.bank_of(account).unwrap().to_string(), currency.clone())).or_default() += b.balance_minor;
        }
        for (key, sum) in &virtual_sum {
            prop_assert_eq!(agg.custody_after.get(key).copied().unwrap_or(0), *sum);
        }
        // The delivery account nets to zero: per currency, what banks pay in (net < 0) is what
        // the others are paid out. (Instructions are built from these nets inside the batch,
        // by a module private to it; their own property test is in engine/src/day.rs.)
        let mut delivery: BTreeMap<String, i128> = BTreeMap::new();
        for n in &agg.nets {
            prop_assert!(n.net_minor != 0);
            *delivery.entry(n.currency.clone()).or_default() += i128::from(n.net_minor);
        }
        prop_assert!(delivery.values().all(|s| *s == 0));
        // Every double-entry entry balances per asset.
        let mut entries: BTreeMap<(String, String), i128> = BTreeMap::new();
        for leg in book.legs() {
            *entries.entry((leg.entry_id.clone(), leg.asset.clone())).or_default() += i128::from(leg.amount);
        }
        prop_assert!(entries.values().all(|s| *s == 0));
    }
}
