//! The funding check (SPEC §3, Shortfall): who cannot pay for the day's net, in cash or in
//! securities, judged on the balances and positions before the trades are posted.
//!
//! Input: the nets and the book before posting. Output: every shortfall, sorted by member,
//! kind and asset. Whether a shortfall aborts the batch or is covered is the posting stage's
//! decision, by the platform's policy.

use crate::book::Book;
use crate::netting::Nets;
use crate::reference::{InstrumentIdx, MemberIdx, RefData};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShortfallKind {
    Cash,
    Securities,
}

impl ShortfallKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ShortfallKind::Cash => "cash",
            ShortfallKind::Securities => "securities",
        }
    }
}

/// What a shortfall is in: a currency (cash) or an instrument (securities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShortfallAsset {
    Currency(crate::reference::CurrencyIdx),
    Instrument(InstrumentIdx),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shortfall {
    pub member: MemberIdx,
    pub kind: ShortfallKind,
    pub asset: ShortfallAsset,
    /// Cash: `−net` in minor units. Securities: the net quantity sold.
    pub required: i64,
    /// Cash: balance − frozen before posting. Securities: the position before the batch.
    pub available: i64,
    /// `required − available`, always > 0.
    pub shortfall: i64,
}

/// Finds every shortfall. Positions are only checked when `securities_check` is on.
pub fn check_funding(refs: &RefData, nets: &Nets, book: &Book) -> Vec<Shortfall> {
    let mut shortfalls = Vec::new();
    for net in &nets.cash {
        let member = &refs.member(net.member).member_id;
        let currency = refs.currency(net.currency);
        let available = book.available(member, currency.code());
        if i128::from(available) + i128::from(net.net_minor) < 0 {
            let required = -net.net_minor;
            shortfalls.push(Shortfall {
                member: net.member,
                kind: ShortfallKind::Cash,
                asset: ShortfallAsset::Currency(net.currency),
                required,
                available,
                shortfall: required - available,
            });
        }
    }
    if refs.platform.securities_check {
        // By ids: a large market has millions of (member, instrument) nets.
        let accounts: Vec<_> = refs
            .members
            .iter()
            .map(|m| book.account_of(&m.member_id))
            .collect();
        let assets: Vec<_> = refs
            .instruments
            .iter()
            .map(|i| book.asset_of(&i.instrument))
            .collect();
        for net in &nets.qty {
            let ids = (
                accounts[net.member.0 as usize],
                assets[net.instrument.0 as usize],
            );
            let available = match ids {
                (Some(account), Some(asset)) => book.position_of(account, asset),
                _ => 0,
            };
            if i128::from(available) + i128::from(net.net) < 0 {
                let required = -net.net;
                shortfalls.push(Shortfall {
                    member: net.member,
                    kind: ShortfallKind::Securities,
                    asset: ShortfallAsset::Instrument(net.instrument),
                    required,
                    available,
                    shortfall: required - available,
                });
            }
        }
    }
    shortfalls.sort();
    shortfalls
}
