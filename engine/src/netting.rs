//! Netting: from valid trades to each member's cash net per currency and quantity net per
//! instrument, with fees (SPEC §3).
//!
//! Input: a stream of [`ValidTrade`]s. Output: [`Nets`], whose conservation (Σ cash nets +
//! fees = 0 per currency, Σ quantity nets = 0 per instrument) is checked before it is returned.
//! Accumulators are plain sums, so partial [`NettingAccumulator`]s built on separate threads
//! merge into exactly the result of one.

use rustc_hash::FxHashMap;

use clearhouse_formats::money::{div_round_half_away, AmountMinor};

use crate::reference::{CurrencyIdx, InstrumentIdx, MemberIdx, RefData};
use crate::EngineError;

/// A trade that passed validation, with its amount already rounded (SPEC §3:
/// `A = round(price × quantity)` in the currency's minor unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidTrade {
    pub buyer: MemberIdx,
    pub seller: MemberIdx,
    pub instrument: InstrumentIdx,
    pub amount_minor: i64,
    pub quantity: i64,
}

/// `max(round(amount × fee_rate), min_fee)` for one side of one trade.
pub fn fee_minor(
    refs: &RefData,
    member: MemberIdx,
    currency: CurrencyIdx,
    amount_minor: i64,
) -> i128 {
    let rate = refs.member(member).fee_rate.0;
    let scaled = i128::from(amount_minor) * i128::from(rate.mantissa);
    let fee = div_round_half_away(scaled, 10i128.pow(rate.scale));
    fee.max(i128::from(refs.min_fee(member, currency).0))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CashCell {
    bought: i128,
    sold: i128,
    fees: i128,
    trades: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct QtyCell {
    bought: i128,
    sold: i128,
}

/// Member × instrument quantities: dense when the grid is small enough to sit in memory,
/// hashed otherwise (a day with a million members must still run).
#[derive(Debug, Clone)]
enum QtyGrid {
    Dense(Vec<QtyCell>),
    Sparse(FxHashMap<(u32, u32), QtyCell>),
}

/// Grids up to this many cells (× 32 bytes) are dense arrays.
const DENSE_QTY_CELLS_MAX: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct NettingAccumulator {
    currencies: usize,
    instruments: usize,
    cash: Vec<CashCell>,
    qty: QtyGrid,
}

impl NettingAccumulator {
    pub fn new(refs: &RefData) -> NettingAccumulator {
        let members = refs.members.len();
        let instruments = refs.instruments.len();
        let cells = members.saturating_mul(instruments);
        let qty = if cells <= DENSE_QTY_CELLS_MAX {
            QtyGrid::Dense(vec![QtyCell::default(); cells])
        } else {
            QtyGrid::Sparse(FxHashMap::default())
        };
        NettingAccumulator {
            currencies: refs.currencies.len(),
            instruments,
            cash: vec![CashCell::default(); members * refs.currencies.len()],
            qty,
        }
    }

    /// Adds one trade. Sums are i128, so no realistic day overflows them; the final nets are
    /// narrowed to i64 in [`NettingAccumulator::finish`], where an overflow is reported.
    pub fn push(&mut self, refs: &RefData, trade: &ValidTrade) {
        let currency = refs.instrument_currency[trade.instrument.0 as usize];
        let amount = i128::from(trade.amount_minor);
        let fee_buyer = fee_minor(refs, trade.buyer, currency, trade.amount_minor);
        let fee_seller = fee_minor(refs, trade.seller, currency, trade.amount_minor);
        let buyer = &mut self.cash[trade.buyer.0 as usize * self.currencies + currency.0 as usize];
        buyer.bought += amount;
        buyer.fees += fee_buyer;
        buyer.trades += 1;
        let seller =
            &mut self.cash[trade.seller.0 as usize * self.currencies + currency.0 as usize];
        seller.sold += amount;
        seller.fees += fee_seller;
        seller.trades += 1;
        let quantity = i128::from(trade.quantity);
        self.qty_cell(trade.buyer, trade.instrument).bought += quantity;
        self.qty_cell(trade.seller, trade.instrument).sold += quantity;
    }

    fn qty_cell(&mut self, member: MemberIdx, instrument: InstrumentIdx) -> &mut QtyCell {
        match &mut self.qty {
            QtyGrid::Dense(cells) => {
                &mut cells[member.0 as usize * self.instruments + instrument.0 as usize]
            }
            QtyGrid::Sparse(map) => map.entry((member.0, instrument.0)).or_default(),
        }
    }

    /// Adds another accumulator's sums into this one (both built from the same reference data).
    pub fn merge(&mut self, other: NettingAccumulator) {
        for (a, b) in self.cash.iter_mut().zip(other.cash) {
            a.bought += b.bought;
            a.sold += b.sold;
            a.fees += b.fees;
            a.trades += b.trades;
        }
        match (&mut self.qty, other.qty) {
            (QtyGrid::Dense(a), QtyGrid::Dense(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    x.bought += y.bought;
                    x.sold += y.sold;
                }
            }
            (QtyGrid::Sparse(a), QtyGrid::Sparse(b)) => {
                for (key, y) in b {
                    let x = a.entry(key).or_default();
                    x.bought += y.bought;
                    x.sold += y.sold;
                }
            }
            _ => unreachable!("accumulators built from the same reference data"),
        }
    }

    /// The nets, sorted by member then currency / instrument, with conservation checked.
    pub fn finish(self, refs: &RefData) -> Result<Nets, EngineError> {
        let mut cash = Vec::new();
        let mut fee_totals = vec![0i128; self.currencies];
        for (i, cell) in self.cash.iter().enumerate() {
            if cell.trades == 0 {
                continue;
            }
            let member = MemberIdx((i / self.currencies) as u32);
            let currency = CurrencyIdx((i % self.currencies) as u32);
            fee_totals[currency.0 as usize] += cell.fees;
            let net = cell.sold - cell.bought - cell.fees;
            let narrow = |value: i128, what: &str| {
                i64::try_from(value).map_err(|_| EngineError::Overflow {
                    what: format!(
                        "{what} of member {} in {}",
                        refs.member(member).member_id,
                        refs.currency(currency)
                    ),
                })
            };
            cash.push(CashNet {
                member,
                currency,
                bought_minor: narrow(cell.bought, "bought amount")?,
                sold_minor: narrow(cell.sold, "sold amount")?,
                fees_minor: narrow(cell.fees, "fees")?,
                net_minor: narrow(net, "net amount")?,
            });
        }
        let mut qty: Vec<QtyNet> = Vec::new();
        let mut push_qty =
            |member: u32, instrument: u32, cell: &QtyCell| -> Result<(), EngineError> {
                if cell.bought == 0 && cell.sold == 0 {
                    return Ok(());
                }
                let narrow = |value: i128, what: &str| {
                    i64::try_from(value).map_err(|_| EngineError::Overflow {
                        what: format!(
                            "{what} of member {} in {}",
                            refs.members[member as usize].member_id,
                            refs.instruments[instrument as usize].instrument
                        ),
                    })
                };
                qty.push(QtyNet {
                    member: MemberIdx(member),
                    instrument: InstrumentIdx(instrument),
                    bought: narrow(cell.bought, "bought quantity")?,
                    sold: narrow(cell.sold, "sold quantity")?,
                    net: narrow(cell.bought - cell.sold, "net quantity")?,
                });
                Ok(())
            };
        match &self.qty {
            QtyGrid::Dense(cells) => {
                for (i, cell) in cells.iter().enumerate() {
                    push_qty(
                        (i / self.instruments.max(1)) as u32,
                        (i % self.instruments.max(1)) as u32,
                        cell,
                    )?;
                }
            }
            QtyGrid::Sparse(map) => {
                let mut keys: Vec<_> = map.keys().copied().collect();
                keys.sort_unstable();
                for key in keys {
                    push_qty(key.0, key.1, &map[&key])?;
                }
            }
        }
        let fee_totals_minor = fee_totals
            .iter()
            .enumerate()
            .map(|(i, &total)| {
                i64::try_from(total).map_err(|_| EngineError::Overflow {
                    what: format!("fee total in {}", refs.currencies[i]),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let nets = Nets {
            cash,
            qty,
            fee_totals_minor,
        };
        nets.check_conservation(refs)?;
        Ok(nets)
    }
}

/// A member's cash result in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CashNet {
    pub member: MemberIdx,
    pub currency: CurrencyIdx,
    pub bought_minor: i64,
    pub sold_minor: i64,
    pub fees_minor: i64,
    /// `sold − bought − fees`.
    pub net_minor: i64,
}

/// A member's quantity result in one instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QtyNet {
    pub member: MemberIdx,
    pub instrument: InstrumentIdx,
    pub bought: i64,
    pub sold: i64,
    /// `bought − sold`.
    pub net: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nets {
    /// Sorted by member, then currency; only member-currency pairs that traded.
    pub cash: Vec<CashNet>,
    /// Sorted by member, then instrument; only pairs that traded.
    pub qty: Vec<QtyNet>,
    /// Fee account credit per currency index.
    pub fee_totals_minor: Vec<i64>,
}

impl Nets {
    /// SPEC §3 conservation: per currency Σ member cash nets + fee total = 0; per instrument
    /// Σ quantity nets = 0. A failure is a bug in the engine, never bad input.
    pub fn check_conservation(&self, refs: &RefData) -> Result<(), EngineError> {
        let mut cash = vec![0i128; refs.currencies.len()];
        for net in &self.cash {
            cash[net.currency.0 as usize] += i128::from(net.net_minor);
        }
        for (i, sum) in cash.iter().enumerate() {
            let total = sum + i128::from(self.fee_totals_minor[i]);
            if total != 0 {
                return Err(EngineError::Invariant(format!(
                    "cash conservation broken in {}: Σ nets + fees = {total}",
                    refs.currencies[i]
                )));
            }
        }
        let mut qty: FxHashMap<InstrumentIdx, i128> = FxHashMap::default();
        for net in &self.qty {
            *qty.entry(net.instrument).or_default() += i128::from(net.net);
        }
        if let Some((instrument, sum)) = qty.iter().find(|(_, sum)| **sum != 0) {
            return Err(EngineError::Invariant(format!(
                "quantity conservation broken in {}: Σ nets = {sum}",
                refs.instrument(*instrument).instrument
            )));
        }
        Ok(())
    }

    pub fn fee_total(&self, currency: CurrencyIdx) -> AmountMinor {
        AmountMinor(self.fee_totals_minor[currency.0 as usize])
    }
}
