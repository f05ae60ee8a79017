//! Payment channels (platform.toml `[[channels]]`, `channel_policy`): which channel carries
//! each instruction, and the splitting of amounts above a channel's per-item maximum.
//!
//! Input: the batch's instructions sorted by id. Output: the same instructions with their
//! channel set, a split one replaced in place by its parts, so the order stays phase, then
//! instruction id, then part number. The sum of the parts is always the whole; that and the
//! uniqueness of the ids are checked before anything is returned.
//!
//! - No channels declared: every instruction keeps the channel `default`, whole, with its id.
//! - `route`: the cheapest channel whose maximum (in the instruction's currency) is at least
//!   the amount; ties by name. platform.toml is refused unless some channel has no maximum in
//!   every currency, so there is always one.
//! - `split`: the cheapest channel (ties by name). An amount above its maximum becomes
//!   ⌈amount / max⌉ items: full items of the maximum, the remainder last; ids
//!   `<id>-1` … `<id>-<n>`. An amount at or below the maximum stays whole with its id.

use std::collections::{BTreeMap, BTreeSet};

use clearhouse_formats::model::{Channel, ChannelPolicy, Platform};
use clearhouse_formats::money::Currency;

use crate::instructions::Instruction;
use crate::EngineError;

/// The most items one instruction may be split into: more means a maximum far below the
/// amounts the platform settles, a configuration error worth stopping for.
pub const PARTS_MAX: u64 = 10_000;

/// Why an amount cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the amount {amount_minor} (minor units) is not positive")]
    NotPositive { amount_minor: i64 },
    #[error("the maximum {max_minor} (minor units) is not positive")]
    MaxNotPositive { max_minor: i64 },
    #[error("splitting {amount_minor} into items of at most {max_minor} makes {parts} items, more than {max_parts}")]
    TooManyParts {
        amount_minor: i64,
        max_minor: i64,
        parts: u64,
        max_parts: u64,
    },
}

/// `amount_minor` as items of at most `max_minor`: full items first, the remainder last.
/// One item (the amount itself) when it does not exceed the maximum.
pub fn split_amount(amount_minor: i64, max_minor: i64) -> Result<Vec<i64>, SplitError> {
    if amount_minor <= 0 {
        return Err(SplitError::NotPositive { amount_minor });
    }
    if max_minor <= 0 {
        return Err(SplitError::MaxNotPositive { max_minor });
    }
    let full = amount_minor / max_minor;
    let remainder = amount_minor % max_minor;
    let parts = full.unsigned_abs() + u64::from(remainder != 0);
    if parts > PARTS_MAX {
        return Err(SplitError::TooManyParts {
            amount_minor,
            max_minor,
            parts,
            max_parts: PARTS_MAX,
        });
    }
    let mut items = vec![max_minor; full as usize];
    if remainder != 0 {
        items.push(remainder);
    }
    Ok(items)
}

/// Sets every instruction's channel and splits under policy `split`. `instructions` must be
/// sorted (by id); the result keeps that order with parts in part order.
pub fn assign(
    platform: &Platform,
    instructions: Vec<Instruction>,
) -> Result<Vec<Instruction>, EngineError> {
    let Some(channels) = &platform.channels else {
        return Ok(instructions);
    };
    assert!(
        !channels.channels.is_empty(),
        "platform.toml declares at least one channel"
    );
    let mut out = Vec::with_capacity(instructions.len());
    for instruction in &instructions {
        let currency = Currency::from_code(&instruction.currency).ok_or_else(|| {
            EngineError::Invariant(format!(
                "instruction {} has the unknown currency {}",
                instruction.instruction_id, instruction.currency
            ))
        })?;
        match channels.policy {
            ChannelPolicy::Route => {
                let channel = route(&channels.channels, currency, instruction.amount_minor)
                    .ok_or_else(|| {
                        EngineError::Invariant(format!(
                            "no channel carries instruction {} ({} {}), though platform.toml \
                             was checked to have one without a maximum",
                            instruction.instruction_id, instruction.amount_minor, currency
                        ))
                    })?;
                out.push(Instruction {
                    channel: channel.name.clone(),
                    ..instruction.clone()
                });
            }
            ChannelPolicy::Split => {
                let channel = &channels.channels[0];
                split(instruction, channel, currency, &mut out)?;
            }
        }
    }
    check_parts(&instructions, &out)?;
    Ok(out)
}

/// The cheapest channel whose maximum in `currency` fits `amount_minor` (channels are sorted
/// cheapest first, ties by name).
fn route(channels: &[Channel], currency: Currency, amount_minor: i64) -> Option<&Channel> {
    channels.iter().find(|c| match c.max_minor(currency) {
        None => true,
        Some(max_minor) => amount_minor <= max_minor,
    })
}

fn split(
    instruction: &Instruction,
    channel: &Channel,
    currency: Currency,
    out: &mut Vec<Instruction>,
) -> Result<(), EngineError> {
    let whole = Instruction {
        channel: channel.name.clone(),
        ..instruction.clone()
    };
    let Some(max_minor) = channel.max_minor(currency) else {
        out.push(whole);
        return Ok(());
    };
    let items = split_amount(instruction.amount_minor, max_minor).map_err(|e| {
        EngineError::Invariant(format!(
            "instruction {} on channel {}: {e}",
            instruction.instruction_id, channel.name
        ))
    })?;
    if items.len() == 1 {
        out.push(whole);
        return Ok(());
    }
    for (k, amount_minor) in items.into_iter().enumerate() {
        out.push(Instruction {
            instruction_id: format!("{}-{}", instruction.instruction_id, k + 1),
            amount_minor,
            ..whole.clone()
        });
    }
    Ok(())
}

/// Per (phase, currency, debit account, credit account): the total amount.
type Totals<'a> = BTreeMap<(u8, &'a str, &'a str, &'a str), i128>;

fn totals(list: &[Instruction]) -> Totals<'_> {
    let mut sums = Totals::new();
    for i in list {
        *sums
            .entry((
                i.phase,
                i.currency.as_str(),
                i.debit_account.as_str(),
                i.credit_account.as_str(),
            ))
            .or_default() += i128::from(i.amount_minor);
    }
    sums
}

/// Σ parts = whole per (phase, currency, debit account, credit account), and no id twice.
fn check_parts(before: &[Instruction], after: &[Instruction]) -> Result<(), EngineError> {
    if totals(before) != totals(after) {
        return Err(EngineError::Invariant(
            "channel assignment changed the total of some instructions".into(),
        ));
    }
    let mut ids = BTreeSet::new();
    for i in after {
        if !ids.insert(i.instruction_id.as_str()) {
            return Err(EngineError::InstructionIdCollision {
                id: i.instruction_id.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use clearhouse_formats::model::{Bank, ChannelMax, Channels, ShortfallPolicy};
    use clearhouse_formats::money::{AmountMinor, Decimal};

    use super::*;
    use crate::instructions::InstructionKind;

    fn platform(policy: ChannelPolicy, channels: Vec<Channel>) -> Platform {
        Platform {
            name: "P".into(),
            delivery_bank: "B01".into(),
            delivery_account: "DLV".into(),
            fee_account: "FEE".into(),
            guarantee_account: "G".into(),
            suspense_account: "S".into(),
            shortfall_policy: ShortfallPolicy::Abort,
            securities_check: true,
            banks: [(
                "B01".to_string(),
                Bank {
                    id: "B01".into(),
                    custody_account: "CUS-B01".into(),
                    bic: None,
                },
            )]
            .into(),
            channels: Some(Channels { policy, channels }),
        }
    }

    fn channel(name: &str, cost: u32, max: Option<&str>) -> Channel {
        Channel {
            name: name.into(),
            cost,
            max_amount: match max {
                None => ChannelMax::Unlimited,
                Some(m) => ChannelMax::Every(Decimal::parse(m).unwrap()),
            },
        }
    }

    fn instruction(id: &str, currency: &str, amount_minor: i64) -> Instruction {
        Instruction {
            instruction_id: id.into(),
            phase: 1,
            kind: InstructionKind::PayIn,
            currency: currency.into(),
            amount_minor,
            debit_bank: "B02".into(),
            debit_account: "CUS-B02".into(),
            credit_bank: "B01".into(),
            credit_account: "DLV".into(),
            channel: "default".into(),
            creditor_name: None,
        }
    }

    fn ids_amounts_channels(list: &[Instruction]) -> Vec<(String, i64, String)> {
        list.iter()
            .map(|i| (i.instruction_id.clone(), i.amount_minor, i.channel.clone()))
            .collect()
    }

    #[test]
    fn split_edge_cases() {
        assert_eq!(split_amount(5_000_000, 5_000_000).unwrap(), [5_000_000]);
        assert_eq!(split_amount(5_000_001, 5_000_000).unwrap(), [5_000_000, 1]);
        assert_eq!(split_amount(1, 5_000_000).unwrap(), [1]);
        assert_eq!(split_amount(15, 5).unwrap(), [5, 5, 5]);
        assert_eq!(split_amount(i64::MAX, i64::MAX).unwrap(), [i64::MAX]);
        assert!(matches!(
            split_amount(0, 5),
            Err(SplitError::NotPositive { .. })
        ));
        assert!(matches!(
            split_amount(5, 0),
            Err(SplitError::MaxNotPositive { .. })
        ));
        assert!(matches!(
            split_amount(10_001, 1),
            Err(SplitError::TooManyParts { parts: 10_001, .. })
        ));
        assert_eq!(split_amount(10_000, 1).unwrap().len(), 10_000);
    }

    #[test]
    fn split_policy_at_the_maximum_one_unit_above_and_in_jpy() {
        let p = platform(
            ChannelPolicy::Split,
            vec![
                channel("bulk", 1, Some("50000.00")),
                channel("large", 5, None),
            ],
        );
        let out = assign(
            &p,
            vec![
                instruction("D-P1-B02-CNY", "CNY", 5_000_000),
                instruction("D-P1-B02-JPY", "JPY", 100_001),
                instruction("D-P1-B02-USD", "USD", 5_000_001),
            ],
        )
        .unwrap();
        let bulk = || "bulk".to_string();
        assert_eq!(
            ids_amounts_channels(&out),
            [
                ("D-P1-B02-CNY".to_string(), 5_000_000, bulk()),
                ("D-P1-B02-JPY-1".to_string(), 50_000, bulk()),
                ("D-P1-B02-JPY-2".to_string(), 50_000, bulk()),
                ("D-P1-B02-JPY-3".to_string(), 1, bulk()),
                ("D-P1-B02-USD-1".to_string(), 5_000_000, bulk()),
                ("D-P1-B02-USD-2".to_string(), 1, bulk()),
            ]
        );
    }

    #[test]
    fn route_picks_the_cheapest_channel_that_fits() {
        let p = platform(
            ChannelPolicy::Route,
            vec![
                channel("bulk", 1, Some("50000.00")),
                channel("a-large", 5, None),
                channel("b-large", 5, None),
            ],
        );
        let out = assign(
            &p,
            vec![
                instruction("A", "CNY", 5_000_000),
                instruction("B", "CNY", 5_000_001),
                instruction("C", "JPY", 50_000),
                instruction("D", "JPY", 50_001),
            ],
        )
        .unwrap();
        let channels: Vec<_> = out.iter().map(|i| i.channel.as_str()).collect();
        assert_eq!(channels, ["bulk", "a-large", "bulk", "a-large"]);
        assert!(out
            .iter()
            .zip(["A", "B", "C", "D"])
            .all(|(i, id)| i.instruction_id == id));
    }

    #[test]
    fn per_currency_maxima() {
        let jpy = Currency::from_code("JPY").unwrap();
        let table = Channel {
            name: "bulk".into(),
            cost: 0,
            max_amount: ChannelMax::PerCurrency([(jpy, AmountMinor(5_000_000))].into()),
        };
        let p = platform(ChannelPolicy::Split, vec![table]);
        let out = assign(
            &p,
            vec![
                instruction("C", "CNY", 900_000_000),
                instruction("J", "JPY", 10_000_000),
            ],
        )
        .unwrap();
        let ids: Vec<_> = out.iter().map(|i| i.instruction_id.as_str()).collect();
        assert_eq!(ids, ["C", "J-1", "J-2"]);
    }

    #[test]
    fn without_channels_nothing_changes() {
        let mut p = platform(ChannelPolicy::Split, vec![]);
        p.channels = None;
        let list = vec![instruction("A", "CNY", 10), instruction("B", "JPY", 7)];
        assert_eq!(assign(&p, list.clone()).unwrap(), list);
    }

    #[test]
    fn a_split_part_that_takes_another_instructions_id_is_refused() {
        let p = platform(ChannelPolicy::Split, vec![channel("bulk", 1, Some("1"))]);
        let err = assign(
            &p,
            vec![
                instruction("D-P3-W1", "JPY", 2),
                instruction("D-P3-W1-1", "JPY", 1),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(&err, EngineError::InstructionIdCollision { id } if id == "D-P3-W1-1"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn parts_sum_to_the_whole(amount in 1i64..=i64::MAX, max in 1i64..=i64::MAX) {
            match split_amount(amount, max) {
                Ok(items) => {
                    prop_assert_eq!(items.iter().map(|&i| i128::from(i)).sum::<i128>(), i128::from(amount));
                    prop_assert!(items.iter().all(|&i| i > 0 && i <= max));
                    let (last, full) = items.split_last().unwrap();
                    prop_assert!(full.iter().all(|&i| i == max));
                    prop_assert!(*last <= max);
                    prop_assert_eq!(items.len() as u64, (amount as u64).div_ceil(max as u64));
                }
                Err(SplitError::TooManyParts { parts, .. }) => {
                    prop_assert!(parts > PARTS_MAX);
                    prop_assert_eq!(parts, (amount as u64).div_ceil(max as u64));
                }
                Err(other) => prop_assert!(false, "{other}"),
            }
        }

        #[test]
        fn split_instructions_sum_to_the_whole(
            amounts in prop::collection::vec(1i64..1_000_000_000, 1..20),
            max in 100_000i64..100_000_000,
            jpy in any::<bool>(),
        ) {
            let (code, digits) = if jpy { ("JPY", 0) } else { ("CNY", 2) };
            let max_text = clearhouse_formats::money::format_scaled(i128::from(max), digits);
            let p = platform(ChannelPolicy::Split, vec![channel("bulk", 1, Some(&max_text))]);
            let list: Vec<_> = amounts.iter().enumerate().map(|(n, &a)| instruction(&format!("I{n:02}"), code, a)).collect();
            {
                let out = assign(&p, list.clone()).unwrap();
                prop_assert!(out.iter().all(|i| i.amount_minor > 0 && i.amount_minor <= max));
                prop_assert_eq!(
                    out.iter().map(|i| i128::from(i.amount_minor)).sum::<i128>(),
                    list.iter().map(|i| i128::from(i.amount_minor)).sum::<i128>()
                );
                for original in &list {
                    let parts: Vec<_> = out.iter().filter(|i| i.instruction_id == original.instruction_id || i.instruction_id.starts_with(&format!("{}-", original.instruction_id))).collect();
                    prop_assert_eq!(parts.iter().map(|i| i.amount_minor).sum::<i64>(), original.amount_minor);
                }
            }
        }
    }
}
