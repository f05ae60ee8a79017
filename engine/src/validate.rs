//! Validation and de-duplication of trades against the reference data (SPEC §2.4).
//!
//! Input: decoded rows from any trade reader. Output: [`ValidTrade`]s handed to the netting
//! accumulator, and one [`RowError`] for every row that is not valid. A row is judged on its
//! own content only (plus the day's business date and the ids seen before it), so the result
//! does not depend on how files are split across threads.

use std::path::{Path, PathBuf};

use clearhouse_formats::model::{BusinessDate, Location, RowError, TradeFields};
use clearhouse_formats::trades::{KeyColumn, TradeKeys, TradeSink};

use crate::dedup::{content_hash, Seen, TradeIdSet};
use crate::netting::{NettingAccumulator, ValidTrade};
use crate::reference::{InstrumentIdx, MemberIdx, RefData};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TradeCounts {
    /// Rows read, valid or not.
    pub rows: u64,
    /// Distinct valid trades netted.
    pub netted: u64,
    /// Rows identical to an earlier trade of the same id: counted once.
    pub duplicates: u64,
    pub rejected: u64,
}

/// The business date of the day and the row that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayDate {
    pub date: BusinessDate,
    pub set_by: Location,
    /// `date` as `YYYY-MM-DD`: a row whose date is this text needs no parsing.
    text: [u8; 10],
}

impl DayDate {
    pub fn new(date: BusinessDate, set_by: Location) -> DayDate {
        let mut text = [0u8; 10];
        text.copy_from_slice(date.to_string().as_bytes());
        DayDate { date, set_by, text }
    }
}

/// Validates rows, drops exact duplicates and nets the rest.
pub struct TradeValidator<'r> {
    refs: &'r RefData,
    file: PathBuf,
    day: Option<DayDate>,
    ids: TradeIdSet,
    netting: NettingAccumulator,
    rejects: Vec<RowError>,
    counts: TradeCounts,
}

impl<'r> TradeValidator<'r> {
    /// `expected_date` fixes the business date when it is known beforehand (a journal session);
    /// otherwise the first valid-looking row sets it.
    pub fn new(refs: &'r RefData, expected_date: Option<DayDate>) -> TradeValidator<'r> {
        TradeValidator {
            refs,
            file: PathBuf::new(),
            day: expected_date,
            ids: TradeIdSet::default(),
            netting: NettingAccumulator::new(refs),
            rejects: Vec::new(),
            counts: TradeCounts::default(),
        }
    }

    /// Rows that follow come from `file`.
    pub fn set_file(&mut self, file: &Path) {
        self.file = file.to_path_buf();
    }

    pub fn finish(self) -> ValidatedTrades {
        ValidatedTrades {
            day: self.day,
            netting: self.netting,
            rejects: self.rejects,
            counts: self.counts,
        }
    }

    fn reject(&mut self, line: u64, id: &str, column: &str, value: &str, reason: String) {
        self.counts.rejected += 1;
        self.rejects.push(RowError::new(
            Location::new(&self.file, line),
            id,
            column,
            value,
            reason,
        ));
    }

    /// Checks one row; returns the trade to net, or the first reason it is invalid as
    /// `(column, value, reason)`. The first valid-looking row sets the day's date unless the
    /// validator was given one.
    fn check(&mut self, line: u64, t: &TradeFields<'_>) -> Result<ValidTrade, TradeProblem> {
        check_day(&mut self.day, &self.file, line, t)?;
        check_against_reference(self.refs, t)
    }
}

/// The business-date check of one row: the first valid-looking row sets the day's date
/// (`day` is `None` until then, unless the date was known beforehand), every row must have it.
///
/// Inlined for the usual row, whose date has the day's exact text; the rest is out of line
/// (called on every row, the whole check cost 38 instructions, half of them its call).
#[inline]
pub fn check_day(
    day: &mut Option<DayDate>,
    file: &Path,
    line: u64,
    t: &TradeFields<'_>,
) -> Result<(), TradeProblem> {
    // As a ten-byte array, the compare is two loads, not a call to memcmp on every row.
    let text = <&[u8; 10]>::try_from(t.business_date.as_bytes()).ok();
    if matches!((day.as_ref(), text), (Some(day), Some(text)) if day.text == *text) {
        return Ok(());
    }
    check_other_day(day, file, line, t)
}

/// [`check_day`] for a row whose date text is not the day's (or the day's first row).
#[cold]
#[inline(never)]
fn check_other_day(
    day: &mut Option<DayDate>,
    file: &Path,
    line: u64,
    t: &TradeFields<'_>,
) -> Result<(), TradeProblem> {
    let date = parse_business_date(t)?;
    match day {
        Some(day) if day.date != date => Err((
            "business_date",
            t.business_date.to_string(),
            format!(
                "differs from the day's business date {} (set by {})",
                day.date, day.set_by
            ),
        )),
        Some(_) => Ok(()),
        None => {
            *day = Some(DayDate::new(date, Location::new(file, line)));
            Ok(())
        }
    }
}

/// Why one trade is invalid: `(column, value, reason)`, as rejects.csv words it.
pub type TradeProblem = (&'static str, String, String);

/// The trade's business date, or why it is not a date.
pub fn parse_business_date(t: &TradeFields<'_>) -> Result<BusinessDate, TradeProblem> {
    BusinessDate::parse(t.business_date).ok_or_else(|| {
        (
            "business_date",
            t.business_date.to_string(),
            "is not a date YYYY-MM-DD".to_string(),
        )
    })
}

/// Every check of one trade against the reference data (SPEC §2.4), in the order the batch
/// reports them: instrument, buyer, seller, price, quantity, amount. Pure: it looks at nothing
/// but the trade and `refs`, so the intake server refuses a trade on arrival for exactly the
/// reason the batch would reject it at close. The business date and the trade id (duplicates)
/// are the caller's: they depend on the day, not on the trade.
pub fn check_against_reference(
    refs: &RefData,
    t: &TradeFields<'_>,
) -> Result<ValidTrade, TradeProblem> {
    check_with_keys(refs, t, TradeKeys::default())
}

/// The dense index of an id, as [`TradeSink::key_of`] answers a reader (once per dictionary
/// entry rather than once per row).
pub fn key_of(refs: &RefData, column: KeyColumn, id: &str) -> Option<u32> {
    match column {
        KeyColumn::Instrument => refs.instrument_idx(id).map(|i| i.0),
        KeyColumn::Member => refs.member_idx(id).map(|m| m.0),
    }
}

/// [`check_against_reference`], where `keys` holds [`key_of`]'s answers for some of the
/// trade's ids (the others are looked up): the same checks in the same order.
#[inline]
pub fn check_with_keys(
    refs: &RefData,
    t: &TradeFields<'_>,
    keys: TradeKeys,
) -> Result<ValidTrade, TradeProblem> {
    match valid_trade(refs, t, keys) {
        Some(valid) => Ok(valid),
        None => explain_refusal(refs, t, keys),
    }
}

/// The checks of [`explain_refusal`] as one yes/no, for the hot loop: it builds no message,
/// and its small answer comes back in registers (the full `Result`, with three strings in
/// its error, came back through memory on every row).
#[inline]
fn valid_trade(refs: &RefData, t: &TradeFields<'_>, keys: TradeKeys) -> Option<ValidTrade> {
    let instrument = match keys.instrument {
        Some(k) => InstrumentIdx(k),
        None => refs.instrument_idx(t.instrument)?,
    };
    let member = |key: Option<u32>, id: &str| {
        let idx = match key {
            Some(k) => MemberIdx(k),
            None => refs.member_idx(id)?,
        };
        refs.is_active(idx).then_some(idx)
    };
    let buyer = member(keys.buyer, t.buyer)?;
    let seller = member(keys.seller, t.seller)?;
    let rules = refs.trade_rules(instrument);
    let valid = buyer != seller
        && t.price.is_positive()
        && t.price.scale <= rules.price_scale
        && t.quantity > 0
        && rules.lot.divides(t.quantity.unsigned_abs());
    if !valid {
        return None;
    }
    let amount_minor = trade_amount_minor(
        t.price.mantissa,
        t.price.scale,
        t.quantity,
        rules.minor_digits,
    )?;
    Some(ValidTrade {
        buyer,
        seller,
        instrument,
        amount_minor,
        quantity: t.quantity,
    })
}

/// Every check of a trade against the reference data, in order, with the reason of the first
/// that fails; the rows [`valid_trade`] refuses come here for their message.
#[cold]
#[inline(never)]
fn explain_refusal(
    refs: &RefData,
    t: &TradeFields<'_>,
    keys: TradeKeys,
) -> Result<ValidTrade, TradeProblem> {
    let instrument_idx = match keys.instrument {
        Some(k) => InstrumentIdx(k),
        None => refs.instrument_idx(t.instrument).ok_or_else(|| {
            (
                "instrument",
                t.instrument.to_string(),
                "is not in instruments.csv".to_string(),
            )
        })?,
    };
    let member = |column: &'static str, id: &str, key: Option<u32>| {
        let idx = match key {
            Some(k) => MemberIdx(k),
            None => refs
                .member_idx(id)
                .ok_or_else(|| (column, id.to_string(), "is not in members.csv".to_string()))?,
        };
        if !refs.is_active(idx) {
            return Err((
                column,
                id.to_string(),
                format!("member is {}, not active", refs.member(idx).status.as_str()),
            ));
        }
        Ok(idx)
    };
    let buyer = member("buyer", t.buyer, keys.buyer)?;
    let seller = member("seller", t.seller, keys.seller)?;
    if buyer == seller {
        return Err((
            "seller",
            t.seller.to_string(),
            "is the same member as the buyer".to_string(),
        ));
    }
    let rules = refs.trade_rules(instrument_idx);
    // The instrument's strings are read only to word a refusal.
    let instrument = || refs.instrument(instrument_idx);
    if !t.price.is_positive() {
        return Err(("price", t.price.to_text(), "must be > 0".to_string()));
    }
    if t.price.scale > rules.price_scale {
        return Err((
            "price",
            t.price.to_text(),
            format!(
                "has {} decimals, instrument {} allows {}",
                t.price.scale,
                instrument().instrument,
                rules.price_scale
            ),
        ));
    }
    if t.quantity <= 0 {
        return Err((
            "quantity",
            t.quantity.to_string(),
            "must be > 0".to_string(),
        ));
    }
    if !rules.lot.divides(t.quantity.unsigned_abs()) {
        return Err((
            "quantity",
            t.quantity.to_string(),
            format!(
                "is not a multiple of the lot size {} of {}",
                instrument().lot_size,
                instrument().instrument
            ),
        ));
    }
    let amount_minor = trade_amount_minor(
        t.price.mantissa,
        t.price.scale,
        t.quantity,
        rules.minor_digits,
    )
    .ok_or_else(|| {
        (
            "quantity",
            t.quantity.to_string(),
            format!(
                "price × quantity overflows the amount range of {}",
                instrument().currency
            ),
        )
    })?;
    Ok(ValidTrade {
        buyer,
        seller,
        instrument: instrument_idx,
        amount_minor,
        quantity: t.quantity,
    })
}

/// `round(price × quantity)` in minor units, half away from zero; `None` if it overflows i64.
#[inline]
pub fn trade_amount_minor(
    price_mantissa: i64,
    price_scale: u32,
    quantity: i64,
    minor_digits: u32,
) -> Option<i64> {
    // Nearly every trade fits 64 bits, inlined into the row's checks; the 128-bit path gives
    // the same result and is the one taken whenever a 64-bit step would overflow.
    match trade_amount_minor_i64(price_mantissa, price_scale, quantity, minor_digits) {
        Some(amount) => Some(amount),
        None => trade_amount_minor_i128(price_mantissa, price_scale, quantity, minor_digits),
    }
}

/// [`trade_amount_minor`] in 128-bit arithmetic.
#[cold]
#[inline(never)]
fn trade_amount_minor_i128(
    price_mantissa: i64,
    price_scale: u32,
    quantity: i64,
    minor_digits: u32,
) -> Option<i64> {
    let product = i128::from(price_mantissa).checked_mul(i128::from(quantity))?;
    let amount = if minor_digits >= price_scale {
        product.checked_mul(10i128.checked_pow(minor_digits - price_scale)?)?
    } else {
        clearhouse_formats::money::div_round_half_away(
            product,
            10i128.pow(price_scale - minor_digits),
        )
    };
    i64::try_from(amount).ok()
}

/// [`trade_amount_minor`] in 64-bit arithmetic; `None` when any step overflows.
#[inline]
fn trade_amount_minor_i64(
    price_mantissa: i64,
    price_scale: u32,
    quantity: i64,
    minor_digits: u32,
) -> Option<i64> {
    let product = price_mantissa.checked_mul(quantity)?;
    if minor_digits >= price_scale {
        product.checked_mul(10i64.checked_pow(minor_digits - price_scale)?)
    } else {
        crate::netting::div_round_half_away_pow10(product, price_scale - minor_digits)
    }
}

impl TradeSink for TradeValidator<'_> {
    fn trade(&mut self, line: u64, t: &TradeFields<'_>) {
        self.counts.rows += 1;
        match self.check(line, t) {
            Ok(valid) => match self.ids.check_and_insert(t.trade_id, content_hash(t)) {
                Seen::New => {
                    self.counts.netted += 1;
                    self.netting.push(self.refs, &valid);
                }
                Seen::Duplicate => self.counts.duplicates += 1,
                Seen::Conflict => self.reject(
                    line,
                    t.trade_id,
                    "trade_id",
                    t.trade_id,
                    "was already used by a trade with different content".to_string(),
                ),
            },
            Err((column, value, reason)) => self.reject(line, t.trade_id, column, &value, reason),
        }
    }

    fn bad_row(&mut self, error: RowError) {
        // Whole-file errors (a bad header) arrive here too and count as one bad row.
        self.counts.rows += 1;
        self.counts.rejected += 1;
        self.rejects.push(error);
    }
}

/// Output of the validation stage.
pub struct ValidatedTrades {
    pub day: Option<DayDate>,
    pub netting: NettingAccumulator,
    pub rejects: Vec<RowError>,
    pub counts: TradeCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_half_away_from_zero() {
        // SPEC §3 worked example: 10.005 × 1 = 10.01 (a tie), 12.340 × 700 = 8638.00.
        assert_eq!(trade_amount_minor(10005, 3, 1, 2), Some(1001));
        assert_eq!(trade_amount_minor(1234, 2, 700, 2), Some(863800));
        assert_eq!(trade_amount_minor(10004, 3, 1, 2), Some(1000));
        // JPY has no minor digits.
        assert_eq!(trade_amount_minor(15, 1, 3, 0), Some(5)); // 4.5 → 5
        assert_eq!(trade_amount_minor(5, 0, 3, 2), Some(1500));
        assert_eq!(trade_amount_minor(i64::MAX, 0, i64::MAX, 2), None);
    }

    proptest::proptest! {
        #[test]
        fn the_64_bit_path_gives_the_128_bit_amount(
            mantissa in proptest::prelude::any::<i64>(),
            scale in 0u32..=18,
            quantity in proptest::prop_oneof![1i64..1_000_000, proptest::prelude::any::<i64>()],
            digits in 0u32..=4,
        ) {
            proptest::prop_assert_eq!(
                trade_amount_minor(mantissa, scale, quantity, digits),
                trade_amount_minor_i128(mantissa, scale, quantity, digits)
            );
        }
    }

    use proptest::prelude::Strategy as _;

    fn day1_refs() -> RefData {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/day1");
        crate::reference::load_dir(&dir)
            .expect("readable")
            .expect("valid reference data")
    }

    proptest::proptest! {
        /// The yes/no fast path accepts exactly what the explaining checks accept, with the same
        /// result, whether the ids come as keys or as text.
        #[test]
        fn the_fast_check_agrees_with_the_explained_one(
            instrument in proptest::sample::select(vec!["600519", "510300", "FUNDX", "AAPL", "TSLA", "NOPE"]),
            buyer in proptest::sample::select(vec!["ALPHA", "BETA", "ZETA", "NOBODY"]),
            seller in proptest::sample::select(vec!["ALPHA", "GAMMA", "ZETA", "NOBODY"]),
            mantissa in proptest::prop_oneof![-5i64..100_000, proptest::prelude::any::<i64>()],
            scale in 0u32..6,
            quantity in proptest::prop_oneof![-3i64..1_000, (1i64..50).prop_map(|k| k * 100), proptest::prelude::any::<i64>()],
            with_keys in proptest::prelude::any::<[bool; 3]>(),
        ) {
            let refs = day1_refs();
            let t = TradeFields {
                trade_id: "T1",
                business_date: "2026-11-25",
                instrument,
                buyer,
                seller,
                price: clearhouse_formats::money::Decimal { mantissa, scale },
                quantity,
                executed_at: None,
            };
            let key = |on: bool, column: KeyColumn, id: &str| if on { key_of(&refs, column, id) } else { None };
            let keys = TradeKeys {
                instrument: key(with_keys[0], KeyColumn::Instrument, instrument),
                buyer: key(with_keys[1], KeyColumn::Member, buyer),
                seller: key(with_keys[2], KeyColumn::Member, seller),
            };
            let explained = explain_refusal(&refs, &t, keys);
            proptest::prop_assert_eq!(valid_trade(&refs, &t, keys), explained.clone().ok());
            proptest::prop_assert_eq!(check_with_keys(&refs, &t, keys), explained);
        }
    }
}
