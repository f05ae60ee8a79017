//! Delivery instructions (SPEC §3): each bank's net moved between the platform's custody
//! account there and the delivery account. Pay-ins (phase 1) come before pay-outs (phase 2),
//! so the delivery account never dips below its opening balance; legs at the delivery bank
//! itself are in-book transfers that take the phase of their direction.
//!
//! Input: bank nets. Output: instructions sorted by id. Ids are
//! `<yyyymmdd>-P<phase>-<bank>-<currency>`: deterministic, so a re-sent file can be
//! de-duplicated by the bank, and sorting by id is sorting by phase.
//!
//! Nothing on the trade intake path depends on this module: instructions exist only once a
//! batch has been netted and posted.

use std::collections::BTreeMap;

use clearhouse_formats::model::{BusinessDate, Platform, DEFAULT_CHANNEL};

use crate::banks::BankNet;
use crate::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstructionKind {
    PayIn,
    PayOut,
    InBook,
    Withdrawal,
}

impl InstructionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            InstructionKind::PayIn => "pay_in",
            InstructionKind::PayOut => "pay_out",
            InstructionKind::InBook => "in_book",
            InstructionKind::Withdrawal => "withdrawal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instruction {
    pub instruction_id: String,
    pub phase: u8,
    pub kind: InstructionKind,
    pub currency: String,
    /// Always > 0.
    pub amount_minor: i64,
    pub debit_bank: String,
    pub debit_account: String,
    pub credit_bank: String,
    pub credit_account: String,
    /// The payment channel (`[[channels]]` of platform.toml), or [`DEFAULT_CHANNEL`] when the
    /// platform declares none. Set by [`crate::channels::assign`].
    pub channel: String,
    /// The holder of the credited account when it is not the platform's: a withdrawal's
    /// `bound_account_name`. Written into the bank files, not into instructions.csv.
    pub creditor_name: Option<String>,
}

/// Builds the settlement legs of a batch and checks that the delivery account nets to zero.
pub fn build_instructions(
    date: BusinessDate,
    platform: &Platform,
    nets: &[BankNet],
) -> Result<Vec<Instruction>, EngineError> {
    let delivery_bank = &platform.delivery_bank;
    let delivery_account = &platform.delivery_account;
    let mut out = Vec::with_capacity(nets.len());
    for net in nets {
        let custody = &platform
            .banks
            .get(&net.bank)
            .ok_or_else(|| {
                EngineError::Invariant(format!(
                    "bank {} has a net but is not in platform.toml",
                    net.bank
                ))
            })?
            .custody_account;
        let amount_minor = net
            .net_minor
            .checked_abs()
            .ok_or_else(|| EngineError::Overflow {
                what: format!("instruction amount of bank {}", net.bank),
            })?;
        let into_delivery = net.net_minor < 0;
        let phase = if into_delivery { 1 } else { 2 };
        let kind = match (net.bank == *delivery_bank, into_delivery) {
            (true, _) => InstructionKind::InBook,
            (false, true) => InstructionKind::PayIn,
            (false, false) => InstructionKind::PayOut,
        };
        let custody_side = (net.bank.clone(), custody.clone());
        let delivery_side = (delivery_bank.clone(), delivery_account.clone());
        let (debit, credit) = if into_delivery {
            (custody_side, delivery_side)
        } else {
            (delivery_side, custody_side)
        };
        out.push(Instruction {
            instruction_id: format!("{}-P{phase}-{}-{}", date.yyyymmdd(), net.bank, net.currency),
            phase,
            kind,
            currency: net.currency.clone(),
            amount_minor,
            debit_bank: debit.0,
            debit_account: debit.1,
            credit_bank: credit.0,
            credit_account: credit.1,
            channel: DEFAULT_CHANNEL.to_string(),
            creditor_name: None,
        });
    }
    out.sort();
    check_delivery_account(platform, &out)?;
    Ok(out)
}

/// A paid withdrawal: phase 3, from the custody account at the member's settlement bank to
/// its bound account. Id `<yyyymmdd>-P3-<request_id>`.
pub fn withdrawal_instruction(
    date: BusinessDate,
    platform: &Platform,
    member: &clearhouse_formats::model::Member,
    request_id: &str,
    currency: &str,
    amount_minor: i64,
) -> Instruction {
    Instruction {
        instruction_id: format!("{}-P3-{request_id}", date.yyyymmdd()),
        phase: 3,
        kind: InstructionKind::Withdrawal,
        currency: currency.to_string(),
        amount_minor,
        debit_bank: member.settlement_bank.clone(),
        debit_account: platform.banks[&member.settlement_bank]
            .custody_account
            .clone(),
        credit_bank: member.bound_bank.clone(),
        credit_account: member.bound_account.clone(),
        channel: DEFAULT_CHANNEL.to_string(),
        creditor_name: Some(member.bound_account_name.clone()),
    }
}

/// Σ into the delivery account = Σ out of it, per currency.
fn check_delivery_account(
    platform: &Platform,
    instructions: &[Instruction],
) -> Result<(), EngineError> {
    let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
    for i in instructions {
        let sign = if i.credit_account == platform.delivery_account {
            1
        } else if i.debit_account == platform.delivery_account {
            -1
        } else {
            0
        };
        *sums.entry(&i.currency).or_default() += sign * i128::from(i.amount_minor);
    }
    match sums.iter().find(|(_, s)| **s != 0) {
        Some((currency, sum)) => Err(EngineError::Invariant(format!(
            "delivery account {} does not net to zero in {currency}: {sum}",
            platform.delivery_account
        ))),
        None => Ok(()),
    }
}
