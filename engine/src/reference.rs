//! Reference data checked across files, and the dense indexes the hot path works with.
//!
//! Input: the platform, members and instruments as the readers parsed them. Output: a
//! [`RefData`] where members, instruments and currencies are sorted by id and numbered
//! `0..n`, so that netting aggregates into plain arrays and output order is the id order.

use rustc_hash::FxHashMap;

use clearhouse_formats::model::{Instrument, Location, Member, MemberStatus, Platform, RowError};
use clearhouse_formats::money::{AmountMinor, Currency, DecimalError};
use clearhouse_formats::{reference, FormatError};

/// Reads `dir/platform.toml`, `dir/members.csv` and `dir/instruments.csv` with the readers of a
/// day directory and checks them together ([`RefData::build`]). `Ok(Err(_))` lists every
/// problem; `Err` is a failure to read a file.
pub fn load_dir(dir: &std::path::Path) -> Result<Result<RefData, Vec<RowError>>, FormatError> {
    let mut errors = Vec::new();
    let platform = match reference::read_platform(&dir.join("platform.toml"))? {
        Ok(p) => Some(p),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let members_file = dir.join("members.csv");
    let members = reference::read_members(&members_file)?;
    let instruments = reference::read_instruments(&dir.join("instruments.csv"))?;
    errors.extend(members.errors);
    errors.extend(instruments.errors);
    match platform {
        Some(platform) if errors.is_empty() => Ok(RefData::build(
            platform,
            members.rows,
            instruments.rows,
            &members_file,
        )),
        _ => Ok(Err(errors)),
    }
}

/// Index of a member in [`RefData::members`] (sorted by member id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberIdx(pub u32);

/// Index of an instrument in [`RefData::instruments`] (sorted by instrument id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstrumentIdx(pub u32);

/// Index of a currency in [`RefData::currencies`] (sorted by code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CurrencyIdx(pub u32);

#[derive(Debug, Clone)]
pub struct RefData {
    pub platform: Platform,
    pub members: Vec<Member>,
    pub instruments: Vec<Instrument>,
    /// Distinct currencies of the instruments, sorted by code.
    pub currencies: Vec<Currency>,
    /// Per instrument, the index of its currency.
    pub instrument_currency: Vec<CurrencyIdx>,
    /// `min_fee` of each member in each currency's minor units: `[member * currencies + cur]`.
    min_fee_minor: Vec<AmountMinor>,
    member_index: FxHashMap<String, MemberIdx>,
    instrument_index: FxHashMap<String, InstrumentIdx>,
}

impl RefData {
    /// Checks what no single file can: settlement banks exist in platform.toml, member ids do
    /// not collide with the platform's own accounts, and each `min_fee` fits the minor unit of
    /// every currency the member may trade in. Every problem is reported.
    pub fn build(
        platform: Platform,
        mut members: Vec<Member>,
        mut instruments: Vec<Instrument>,
        members_file: &std::path::Path,
    ) -> Result<RefData, Vec<RowError>> {
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        instruments.sort_by(|a, b| a.instrument.cmp(&b.instrument));
        let mut currencies: Vec<Currency> = instruments.iter().map(|i| i.currency).collect();
        currencies.sort();
        currencies.dedup();

        let mut errors = Vec::new();
        let platform_accounts = platform.platform_accounts();
        let mut min_fee_minor = Vec::with_capacity(members.len() * currencies.len());
        for member in &members {
            let at = Location::new(members_file, member.line);
            if !platform.banks.contains_key(&member.settlement_bank) {
                errors.push(RowError::new(
                    at.clone(),
                    &member.member_id,
                    "settlement_bank",
                    &member.settlement_bank,
                    "is not a bank of platform.toml [banks]",
                ));
            }
            if platform_accounts.contains(&member.member_id.as_str()) {
                errors.push(RowError::new(
                    at.clone(),
                    &member.member_id,
                    "member_id",
                    &member.member_id,
                    "is one of the platform's own accounts in platform.toml",
                ));
            }
            for currency in &currencies {
                match member.min_fee.to_minor(currency.minor_digits()) {
                    Ok(minor) => min_fee_minor.push(minor),
                    Err(err) => {
                        let reason = match err {
                            DecimalError::TooManyDecimals { .. } => format!(
                                "has more decimals than {} allows ({})",
                                currency,
                                currency.minor_digits()
                            ),
                            other => other.to_string(),
                        };
                        errors.push(RowError::new(
                            at.clone(),
                            &member.member_id,
                            "min_fee",
                            &member.min_fee.to_text(),
                            reason,
                        ));
                        min_fee_minor.push(AmountMinor::ZERO);
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let instrument_currency = instruments
            .iter()
            .map(|i| {
                let pos = currencies.binary_search(&i.currency).unwrap_or(0);
                CurrencyIdx(pos as u32)
            })
            .collect();
        let member_index = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.member_id.clone(), MemberIdx(i as u32)))
            .collect();
        let instrument_index = instruments
            .iter()
            .enumerate()
            .map(|(i, x)| (x.instrument.clone(), InstrumentIdx(i as u32)))
            .collect();
        Ok(RefData {
            platform,
            members,
            instruments,
            currencies,
            instrument_currency,
            min_fee_minor,
            member_index,
            instrument_index,
        })
    }

    pub fn member_idx(&self, id: &str) -> Option<MemberIdx> {
        self.member_index.get(id).copied()
    }

    pub fn instrument_idx(&self, id: &str) -> Option<InstrumentIdx> {
        self.instrument_index.get(id).copied()
    }

    pub fn member(&self, idx: MemberIdx) -> &Member {
        &self.members[idx.0 as usize]
    }

    pub fn instrument(&self, idx: InstrumentIdx) -> &Instrument {
        &self.instruments[idx.0 as usize]
    }

    pub fn currency(&self, idx: CurrencyIdx) -> Currency {
        self.currencies[idx.0 as usize]
    }

    pub fn currency_idx(&self, currency: Currency) -> Option<CurrencyIdx> {
        self.currencies
            .binary_search(&currency)
            .ok()
            .map(|i| CurrencyIdx(i as u32))
    }

    pub fn min_fee(&self, member: MemberIdx, currency: CurrencyIdx) -> AmountMinor {
        self.min_fee_minor[member.0 as usize * self.currencies.len() + currency.0 as usize]
    }

    pub fn is_active(&self, member: MemberIdx) -> bool {
        self.member(member).status == MemberStatus::Active
    }

    /// The bank whose custody account holds `account`: a member's settlement bank, or the
    /// delivery bank for the platform's own accounts. `None` for an unknown account.
    pub fn bank_of(&self, account: &str) -> Option<&str> {
        if let Some(idx) = self.member_idx(account) {
            return Some(&self.member(idx).settlement_bank);
        }
        self.platform
            .platform_accounts()
            .contains(&account)
            .then_some(self.platform.delivery_bank.as_str())
    }
}
