//! summary.json (SPEC §4): business date, counts, totals per currency, conservation checks
//! and stage timings. Keys are sorted; everything but `timings_ms` depends only on the input.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use clearhouse_formats::model::BusinessDate;
use clearhouse_formats::money::AmountMinor;

use crate::instructions::Instruction;
use crate::netting::Nets;
use crate::reference::RefData;
use crate::validate::TradeCounts;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CurrencyTotals {
    /// Σ trade amounts (each trade counted once).
    pub traded_amount: String,
    pub fees_total: String,
    /// Σ member cash nets; with `fees_total` it must sum to zero.
    pub member_nets_total: String,
    /// `"ok"` when Σ member nets + fees = 0.
    pub conservation: String,
    pub pay_in_total: String,
    pub pay_out_total: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub business_date: String,
    pub status: String,
    pub input_digest: String,
    pub trades: TradeCounts,
    pub members_netted: usize,
    pub currencies: BTreeMap<String, CurrencyTotals>,
    pub instruments_netted: usize,
    /// `"ok"` when Σ quantity nets = 0 in every instrument.
    pub quantity_conservation: String,
    pub instructions: usize,
    pub shortfalls: usize,
    pub defaults: usize,
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    refs: &RefData,
    date: BusinessDate,
    digest: &str,
    counts: &TradeCounts,
    nets: &Nets,
    instructions: &[Instruction],
    shortfalls: usize,
    defaults: usize,
    status: &str,
) -> Summary {
    let mut currencies = BTreeMap::new();
    for (ci, currency) in refs.currencies.iter().enumerate() {
        let rows: Vec<_> = nets
            .cash
            .iter()
            .filter(|n| n.currency.0 as usize == ci)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let traded: i128 = rows.iter().map(|n| i128::from(n.bought_minor)).sum();
        let member_nets: i128 = rows.iter().map(|n| i128::from(n.net_minor)).sum();
        let fees = i128::from(nets.fee_totals_minor[ci]);
        let legs = |phase: u8| -> i128 {
            instructions
                .iter()
                .filter(|i| i.currency == currency.code() && i.phase == phase)
                .map(|i| i128::from(i.amount_minor))
                .sum()
        };
        let fmt = |v: i128| clearhouse_formats::money::format_scaled(v, currency.minor_digits());
        currencies.insert(
            currency.code().to_string(),
            CurrencyTotals {
                traded_amount: fmt(traded),
                fees_total: currency.format(AmountMinor(nets.fee_totals_minor[ci])),
                member_nets_total: fmt(member_nets),
                conservation: if member_nets + fees == 0 {
                    "ok"
                } else {
                    "broken"
                }
                .to_string(),
                pay_in_total: fmt(legs(1)),
                pay_out_total: fmt(legs(2)),
            },
        );
    }
    let members_netted = distinct(nets.cash.iter().map(|n| n.member.0));
    // A sort of the instruments of 2M (member, instrument) nets was 60 ms on the one busy
    // core between rendering and the commit; marking them off costs one pass.
    let instruments_netted = distinct(nets.qty.iter().map(|n| n.instrument.0));
    Summary {
        business_date: date.to_string(),
        status: status.to_string(),
        input_digest: digest.to_string(),
        trades: *counts,
        members_netted,
        currencies,
        instruments_netted,
        quantity_conservation: "ok".to_string(),
        instructions: instructions.len(),
        shortfalls,
        defaults,
    }
}

/// How many different indexes `indexes` holds.
fn distinct(indexes: impl Iterator<Item = u32>) -> usize {
    let mut seen: Vec<bool> = Vec::new();
    let mut count = 0;
    for i in indexes {
        let i = i as usize;
        if i >= seen.len() {
            seen.resize(i + 1, false);
        }
        if !std::mem::replace(&mut seen[i], true) {
            count += 1;
        }
    }
    count
}

/// The summary as pretty JSON with the stage timings in milliseconds.
pub fn to_json(summary: &Summary, timings: &[(&'static str, Duration)]) -> String {
    let mut value = serde_json::to_value(summary).expect("a summary is plain data");
    let timings: serde_json::Map<String, serde_json::Value> = timings
        .iter()
        .map(|(stage, d)| {
            (
                stage.to_string(),
                serde_json::Value::from(d.as_millis() as u64),
            )
        })
        .collect();
    value["timings_ms"] = serde_json::Value::Object(timings);
    let mut text = serde_json::to_string_pretty(&value).expect("a JSON value serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::distinct;

    #[test]
    fn distinct_counts_each_index_once_in_any_order() {
        assert_eq!(distinct([].into_iter()), 0);
        assert_eq!(distinct([7, 3, 7, 0, 3, 3].into_iter()), 3);
        assert_eq!(distinct((0..100).chain(0..100).rev()), 100);
    }
}
