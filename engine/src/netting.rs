//! Netting: from valid trades to each member's cash net per currency and quantity net per
//! instrument, with fees (SPEC §3).
//!
//! Input: a stream of [`ValidTrade`]s. Output: [`Nets`], whose conservation (Σ cash nets +
//! fees = 0 per currency, Σ quantity nets = 0 per instrument) is checked before it is returned.
//! Accumulators are plain sums, so partial [`NettingAccumulator`]s built on separate threads
//! merge into exactly the result of one.

mod cells;

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

/// Quantities bought and sold of one member in one instrument. `i32`, so that the grid of a
/// 1,000 × 2,000 market is 16 MB and the grids of two threads stay in a 32 MB last-level cache
/// (with `i64` cells netting 10M trades spent twice as long in cache misses); a trade that
/// would take a cell out of the `i32` range goes to [`NettingAccumulator::qty_spill`]
/// instead, so the totals stay exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct QtyCell {
    bought: i32,
    sold: i32,
}

// SAFETY: two integers; all-zero bytes are the empty cell.
unsafe impl cells::Zeroed for QtyCell {}

/// Member × instrument quantities: dense when the grid is small enough to sit in memory,
/// hashed otherwise (a day with a million members must still run).
#[derive(Debug, Clone)]
enum QtyGrid {
    Dense(cells::Cells<QtyCell>),
    Sparse(FxHashMap<(u32, u32), QtyCell>),
}

/// Grids up to this many cells (× 8 bytes) are dense arrays.
const DENSE_QTY_CELLS_MAX: usize = 4 << 20;

/// A member's fee rate as `mantissa / 10^scale`, for the fast 64-bit path of [`fee_minor`].
#[derive(Debug, Clone, Copy)]
struct FeeRateParts {
    mantissa: i64,
    scale: u32,
}

/// The same rates, all at the largest scale among them when every one converts exactly
/// (`0.0003` = `0.00030`): each fee then divides by the same power of ten, so the branch on
/// the power in [`div_round_half_away_pow10`] is always predicted, where members alternating
/// between two scales mispredicted half the time. The rounded fee is the same: the rate is the
/// same number.
fn common_scale(rates: Vec<FeeRateParts>) -> Vec<FeeRateParts> {
    let Some(scale) = rates.iter().map(|r| r.scale).max() else {
        return rates;
    };
    let converted: Option<Vec<FeeRateParts>> = rates
        .iter()
        .map(|r| {
            let factor = 10i64.checked_pow(scale - r.scale)?;
            Some(FeeRateParts {
                mantissa: r.mantissa.checked_mul(factor)?,
                scale,
            })
        })
        .collect();
    match converted {
        Some(converted) if scale <= 18 => converted,
        _ => rates,
    }
}

/// `n / 10^exp` rounded half away from zero, for `exp` ≤ 18 (`None` above): one arm per
/// power, so that each division is by a constant, which compiles to a multiplication. This
/// is the rounding of every trade amount and every fee. Always inlined: the call and its
/// `Option` in memory cost 17 instructions a trade row (callgrind, 1M CSV rows).
#[inline(always)]
pub fn div_round_half_away_pow10(n: i64, exp: u32) -> Option<i64> {
    macro_rules! by {
        ($d:expr) => {{
            const D: i64 = $d;
            let (q, r) = (n / D, n % D);
            // |r| < D ≤ 10^18, so twice it fits a u64.
            Some(if r.unsigned_abs() * 2 >= D.unsigned_abs() {
                q + n.signum()
            } else {
                q
            })
        }};
    }
    match exp {
        0 => Some(n),
        1 => by!(10),
        2 => by!(100),
        3 => by!(1_000),
        4 => by!(10_000),
        5 => by!(100_000),
        6 => by!(1_000_000),
        7 => by!(10_000_000),
        8 => by!(100_000_000),
        9 => by!(1_000_000_000),
        10 => by!(10_000_000_000),
        11 => by!(100_000_000_000),
        12 => by!(1_000_000_000_000),
        13 => by!(10_000_000_000_000),
        14 => by!(100_000_000_000_000),
        15 => by!(1_000_000_000_000_000),
        16 => by!(10_000_000_000_000_000),
        17 => by!(100_000_000_000_000_000),
        18 => by!(1_000_000_000_000_000_000),
        _ => None,
    }
}

/// How a fee's product `amount × rate mantissa` is divided by `10^scale` and rounded.
trait FeePower {
    fn div_round(product: i64, scale: u32) -> Option<i64>;
}

/// The power taken from each rate: a branch on it per fee.
struct RatePower;

impl FeePower for RatePower {
    #[inline(always)]
    fn div_round(product: i64, scale: u32) -> Option<i64> {
        div_round_half_away_pow10(product, scale)
    }
}

/// `10^P`, known when the code is compiled: only for rates whose scale is `P`
/// ([`NettingAccumulator::push_all`] chooses it from the rates).
struct Pow10<const P: u32>;

impl<const P: u32> Pow10<P> {
    const DIVISOR: i64 = 10i64.pow(P);
}

impl<const P: u32> FeePower for Pow10<P> {
    #[inline(always)]
    fn div_round(product: i64, scale: u32) -> Option<i64> {
        debug_assert_eq!(scale, P);
        Some(div_round_half_away_i64(product, Self::DIVISOR))
    }
}

/// `n / d` rounded half away from zero, for `d > 0`: [`div_round_half_away`] in 64 bits.
#[inline]
pub fn div_round_half_away_i64(n: i64, d: i64) -> i64 {
    debug_assert!(d > 0);
    let quotient = n / d;
    let remainder = n % d;
    // |remainder| < d ≤ i64::MAX, so twice it fits a u64.
    if remainder.unsigned_abs() * 2 >= d.unsigned_abs() {
        quotient + n.signum()
    } else {
        quotient
    }
}

/// Adds `value` to `cell`, or, if the sum would leave the `i32` range, returns `value` for the
/// caller to keep exactly elsewhere (the cell unchanged).
#[inline]
fn add_or_spill(cell: &mut i32, value: i64) -> Option<i64> {
    match i32::try_from(value).ok().and_then(|v| cell.checked_add(v)) {
        Some(sum) => {
            *cell = sum;
            None
        }
        None => Some(value),
    }
}

#[derive(Debug, Clone)]
pub struct NettingAccumulator {
    currencies: usize,
    instruments: usize,
    cash: Vec<CashCell>,
    qty: QtyGrid,
    /// Per `(member, instrument)`, the part of `(bought, sold)` that left the cell's `i64`
    /// range. Empty on any realistic day.
    qty_spill: FxHashMap<(u32, u32), (i128, i128)>,
    /// Per member, its fee rate; per `member * currencies + currency`, its minimum fee.
    fee_rates: Vec<FeeRateParts>,
    /// The scale every rate in `fee_rates` has, when they share one ([`common_scale`]).
    fee_scale: Option<u32>,
    min_fees: Vec<i64>,
    instrument_currency: Vec<u32>,
}

impl NettingAccumulator {
    pub fn new(refs: &RefData) -> NettingAccumulator {
        let members = refs.members.len();
        let instruments = refs.instruments.len();
        let cells = members.saturating_mul(instruments);
        let qty = if cells <= DENSE_QTY_CELLS_MAX {
            QtyGrid::Dense(cells::Cells::zeroed(cells))
        } else {
            QtyGrid::Sparse(FxHashMap::default())
        };
        let fee_rates = common_scale(
            refs.members
                .iter()
                .map(|m| {
                    let rate = m.fee_rate.0;
                    FeeRateParts {
                        mantissa: rate.mantissa,
                        scale: rate.scale,
                    }
                })
                .collect(),
        );
        let fee_scale = fee_rates.first().map(|r| r.scale);
        let fee_scale = fee_scale.filter(|&scale| fee_rates.iter().all(|r| r.scale == scale));
        let currencies = refs.currencies.len();
        let mut min_fees = Vec::with_capacity(members * currencies);
        for m in 0..members {
            for c in 0..currencies {
                min_fees.push(refs.min_fee(MemberIdx(m as u32), CurrencyIdx(c as u32)).0);
            }
        }
        NettingAccumulator {
            currencies,
            instruments,
            cash: vec![CashCell::default(); members * currencies],
            qty,
            qty_spill: FxHashMap::default(),
            fee_rates,
            fee_scale,
            min_fees,
            instrument_currency: refs.instrument_currency.iter().map(|c| c.0).collect(),
        }
    }

    /// [`fee_minor`] from the accumulator's own tables: 64-bit arithmetic when the product
    /// fits, the `i128` path otherwise. Same result either way.
    #[inline(always)]
    fn fee<P: FeePower>(&self, member: MemberIdx, currency: usize, amount_minor: i64) -> i128 {
        let rate = self.fee_rates[member.0 as usize];
        let fast = amount_minor
            .checked_mul(rate.mantissa)
            .and_then(|product| P::div_round(product, rate.scale));
        let fee = match fast {
            Some(fee) => i128::from(fee),
            None => div_round_half_away(
                i128::from(amount_minor) * i128::from(rate.mantissa),
                10i128.pow(rate.scale),
            ),
        };
        let min_fee = self.min_fees[member.0 as usize * self.currencies + currency];
        fee.max(i128::from(min_fee))
    }

    /// Adds one trade. Sums are i128, so no realistic day overflows them; the final nets are
    /// narrowed to i64 in [`NettingAccumulator::finish`], where an overflow is reported.
    #[inline]
    pub fn push(&mut self, _refs: &RefData, trade: &ValidTrade) {
        self.apply::<RatePower>(trade, 1);
    }

    /// Adds trades in bulk: the quantity cells of trades a few places ahead are prefetched,
    /// since on a large market nearly every cell is a cache miss.
    ///
    /// When the members' rates share a scale, the loop is compiled for that power of ten, so
    /// that each fee's rounding divides by a constant (a multiplication) with no branch on
    /// the power; the rounding was a fifth of the netting's time before.
    pub fn push_all(&mut self, trades: &[ValidTrade]) {
        match self.fee_scale {
            Some(1) => self.push_all_with::<Pow10<1>>(trades),
            Some(2) => self.push_all_with::<Pow10<2>>(trades),
            Some(3) => self.push_all_with::<Pow10<3>>(trades),
            Some(4) => self.push_all_with::<Pow10<4>>(trades),
            Some(5) => self.push_all_with::<Pow10<5>>(trades),
            Some(6) => self.push_all_with::<Pow10<6>>(trades),
            Some(7) => self.push_all_with::<Pow10<7>>(trades),
            Some(8) => self.push_all_with::<Pow10<8>>(trades),
            _ => self.push_all_with::<RatePower>(trades),
        }
    }

    fn push_all_with<P: FeePower>(&mut self, trades: &[ValidTrade]) {
        const AHEAD: usize = 8;
        for (i, trade) in trades.iter().enumerate() {
            if let Some(next) = trades.get(i + AHEAD) {
                self.prefetch(next);
            }
            self.apply::<P>(trade, 1);
        }
    }

    /// Takes one trade back out, exactly undoing an earlier [`NettingAccumulator::push`] of
    /// it: the parallel intake nets every valid row first and takes out the later copies of a
    /// repeated trade id once it knows them.
    pub fn remove(&mut self, trade: &ValidTrade) {
        self.apply::<RatePower>(trade, -1);
    }

    #[inline]
    fn prefetch(&self, trade: &ValidTrade) {
        #[cfg(target_arch = "x86_64")]
        if let QtyGrid::Dense(cells) = &self.qty {
            for member in [trade.buyer, trade.seller] {
                let i = member.0 as usize * self.instruments + trade.instrument.0 as usize;
                if let Some(cell) = cells.get(i) {
                    // SAFETY: a prefetch is a hint; it never faults, even on a bad address,
                    // and this one points into the live grid.
                    unsafe {
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                            (cell as *const QtyCell).cast(),
                        )
                    };
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = trade;
    }

    /// `sign` is 1 to add the trade, -1 to take it back out.
    #[inline]
    fn apply<P: FeePower>(&mut self, trade: &ValidTrade, sign: i8) {
        let currency = self.instrument_currency[trade.instrument.0 as usize] as usize;
        let amount = i128::from(trade.amount_minor);
        let fee_buyer = self.fee::<P>(trade.buyer, currency, trade.amount_minor);
        let fee_seller = self.fee::<P>(trade.seller, currency, trade.amount_minor);
        let (amount, fee_buyer, fee_seller) = if sign > 0 {
            (amount, fee_buyer, fee_seller)
        } else {
            (-amount, -fee_buyer, -fee_seller)
        };
        let buyer = &mut self.cash[trade.buyer.0 as usize * self.currencies + currency];
        buyer.bought += amount;
        buyer.fees += fee_buyer;
        buyer.trades = buyer.trades.wrapping_add_signed(i64::from(sign));
        let seller = &mut self.cash[trade.seller.0 as usize * self.currencies + currency];
        seller.sold += amount;
        seller.fees += fee_seller;
        seller.trades = seller.trades.wrapping_add_signed(i64::from(sign));
        // Quantities are > 0 (validated), so the negation cannot overflow.
        let quantity = if sign > 0 {
            trade.quantity
        } else {
            -trade.quantity
        };
        self.add_qty(trade.buyer.0, trade.instrument.0, quantity, 0);
        self.add_qty(trade.seller.0, trade.instrument.0, 0, quantity);
    }

    #[inline(always)]
    fn add_qty(&mut self, member: u32, instrument: u32, bought: i64, sold: i64) {
        let cell = match &mut self.qty {
            QtyGrid::Dense(cells) => {
                &mut cells[member as usize * self.instruments + instrument as usize]
            }
            QtyGrid::Sparse(map) => map.entry((member, instrument)).or_default(),
        };
        let spilled_bought = add_or_spill(&mut cell.bought, bought);
        let spilled_sold = add_or_spill(&mut cell.sold, sold);
        if spilled_bought.is_some() || spilled_sold.is_some() {
            self.spill(member, instrument, spilled_bought, spilled_sold);
        }
    }

    /// Out of line: no realistic trade gets here, and inlined it kept `add_qty` (twice per
    /// trade) from being inlined itself.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, member: u32, instrument: u32, bought: Option<i64>, sold: Option<i64>) {
        let spill = self.qty_spill.entry((member, instrument)).or_default();
        spill.0 += i128::from(bought.unwrap_or(0));
        spill.1 += i128::from(sold.unwrap_or(0));
    }

    /// Adds another accumulator's sums into this one (both built from the same reference data).
    pub fn merge(&mut self, other: NettingAccumulator) {
        for (a, b) in self.cash.iter_mut().zip(other.cash) {
            a.bought += b.bought;
            a.sold += b.sold;
            a.fees += b.fees;
            a.trades = a.trades.wrapping_add(b.trades);
        }
        match other.qty {
            QtyGrid::Dense(b) => {
                for (i, &y) in b.iter().enumerate() {
                    if y != QtyCell::default() {
                        let member = (i / self.instruments) as u32;
                        let instrument = (i % self.instruments) as u32;
                        self.add_qty(member, instrument, y.bought.into(), y.sold.into());
                    }
                }
            }
            QtyGrid::Sparse(b) => {
                for ((member, instrument), y) in b {
                    self.add_qty(member, instrument, y.bought.into(), y.sold.into());
                }
            }
        }
        for (key, (bought, sold)) in other.qty_spill {
            let x = self.qty_spill.entry(key).or_default();
            x.0 += bought;
            x.1 += sold;
        }
    }

    /// `(bought, sold)` of one cell, spill included.
    fn qty_total(&self, member: u32, instrument: u32, cell: &QtyCell) -> (i128, i128) {
        let (spill_bought, spill_sold) = self
            .qty_spill
            .get(&(member, instrument))
            .copied()
            .unwrap_or_default();
        (
            i128::from(cell.bought) + spill_bought,
            i128::from(cell.sold) + spill_sold,
        )
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
                let (bought, sold) = self.qty_total(member, instrument, cell);
                if bought == 0 && sold == 0 {
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
                    bought: narrow(bought, "bought quantity")?,
                    sold: narrow(sold, "sold quantity")?,
                    net: narrow(bought - sold, "net quantity")?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn rounding_in_64_bits_equals_128_bits(n in any::<i64>(), scale in 0u32..19) {
            let d = 10i64.pow(scale);
            let wide = div_round_half_away(i128::from(n), i128::from(d));
            prop_assert_eq!(i128::from(div_round_half_away_i64(n, d)), wide);
            prop_assert_eq!(div_round_half_away_pow10(n, scale).map(i128::from), Some(wide));
        }
    }

    proptest! {
        #[test]
        fn a_compiled_power_rounds_as_the_rate_power(product in any::<i64>(), p in 1u32..9) {
            let compiled = match p {
                1 => Pow10::<1>::div_round(product, 1),
                2 => Pow10::<2>::div_round(product, 2),
                3 => Pow10::<3>::div_round(product, 3),
                4 => Pow10::<4>::div_round(product, 4),
                5 => Pow10::<5>::div_round(product, 5),
                6 => Pow10::<6>::div_round(product, 6),
                7 => Pow10::<7>::div_round(product, 7),
                _ => Pow10::<8>::div_round(product, 8),
            };
            prop_assert_eq!(compiled, RatePower::div_round(product, p));
        }
    }

    #[test]
    fn powers_of_ten_above_18_are_refused() {
        assert_eq!(div_round_half_away_pow10(5, 19), None);
        assert_eq!(div_round_half_away_pow10(-15, 1), Some(-2));
        assert_eq!(div_round_half_away_pow10(i64::MIN, 18), Some(-9));
    }

    #[test]
    fn spilling_keeps_sums_exact() {
        let mut cell = i32::MAX - 1;
        assert_eq!(add_or_spill(&mut cell, 5), Some(5));
        assert_eq!(cell, i32::MAX - 1);
        assert_eq!(add_or_spill(&mut cell, -10), None);
        assert_eq!(cell, i32::MAX - 11);
        assert_eq!(add_or_spill(&mut cell, i64::MAX), Some(i64::MAX));
        assert_eq!(add_or_spill(&mut cell, i64::MIN), Some(i64::MIN));
        assert_eq!(cell, i32::MAX - 11);
    }
}
