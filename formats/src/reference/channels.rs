//! platform.toml's payment channels: `channel_policy`, `[[channels]]` and the optional `bic`
//! of a bank. Every problem is reported with the line of the key at fault.
//!
//! ```toml
//! channel_policy = "split"          # or "route" (the default when channels are declared)
//! [[channels]]
//! name = "bulk"
//! max_amount = "50000.00"           # per item, in every currency's own units
//! cost = 1                          # lower is cheaper; default 0
//! [[channels]]
//! name = "large-value"              # no max_amount: no maximum
//! cost = 5
//! ```
//!
//! `max_amount` may also be a table per currency (`{ CNY = "50000.00", JPY = "5000000" }`);
//! a currency not listed there has no maximum on that channel.

use std::collections::{BTreeMap, BTreeSet};

use toml::de::DeValue;
use toml::Spanned;

use super::TomlCheck;
use crate::fields::decimal_reason;
use crate::model::{is_bic, Channel, ChannelMax, ChannelPolicy, Channels, DEFAULT_CHANNEL};
use crate::money::{Currency, Decimal};

/// The most channels a platform may declare: routing looks at each for every instruction.
const CHANNELS_MAX: usize = 64;

const CHANNEL_KEYS: &str = "name, max_amount, cost";

/// `channel_policy = "route" | "split"`, with the offset of the key for later messages.
pub(super) fn read_policy(
    check: &mut TomlCheck<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Option<ChannelPolicy> {
    match check.string("channel_policy", value).as_deref() {
        Some("route") => Some(ChannelPolicy::Route),
        Some("split") => Some(ChannelPolicy::Split),
        Some(other) => {
            check.error(
                value.span().start,
                "channel_policy",
                other,
                "must be \"route\" or \"split\"",
            );
            None
        }
        None => None,
    }
}

/// `[[channels]]`: an array of tables, each with a unique name.
pub(super) fn read_channels(
    check: &mut TomlCheck<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Option<Vec<Channel>> {
    let DeValue::Array(items) = value.get_ref() else {
        check.error(
            value.span().start,
            "channels",
            "",
            "must be an array of [[channels]] tables",
        );
        return None;
    };
    if items.is_empty() {
        check.error(
            value.span().start,
            "channels",
            "",
            "must declare at least one channel",
        );
        return None;
    }
    if items.len() > CHANNELS_MAX {
        check.error(
            value.span().start,
            "channels",
            "",
            format!("declares {} channels, at most {CHANNELS_MAX}", items.len()),
        );
        return None;
    }
    let mut channels = Vec::with_capacity(items.len());
    let mut names = BTreeSet::new();
    let mut ok = true;
    for item in items.iter() {
        match read_channel(check, item) {
            Some(channel) => {
                if !names.insert(channel.name.clone()) {
                    check.error(
                        item.span().start,
                        "channels.name",
                        &channel.name,
                        "is declared twice",
                    );
                    ok = false;
                }
                channels.push(channel);
            }
            None => ok = false,
        }
    }
    ok.then_some(channels)
}

fn read_channel(check: &mut TomlCheck<'_>, item: &Spanned<DeValue<'_>>) -> Option<Channel> {
    let DeValue::Table(fields) = item.get_ref() else {
        check.error(
            item.span().start,
            "channels",
            "",
            "must be a [[channels]] table",
        );
        return None;
    };
    let mut name = None;
    let mut cost = Some(0);
    let mut max_amount = Some(ChannelMax::Unlimited);
    let mut ok = true;
    for (field, value) in fields.iter() {
        let key = format!("channels.{}", field.get_ref());
        match field.get_ref().as_ref() {
            "name" => {
                name = check.id(&key, value);
                if name.as_deref() == Some(DEFAULT_CHANNEL) {
                    check.error(
                        value.span().start,
                        &key,
                        DEFAULT_CHANNEL,
                        "is reserved for instructions of a platform without channels",
                    );
                    name = None;
                }
            }
            "cost" => cost = read_cost(check, &key, value),
            "max_amount" => max_amount = read_max(check, &key, value),
            _ => {
                check.error(
                    field.span().start,
                    &key,
                    "",
                    format!("is not a known key (expected one of {CHANNEL_KEYS})"),
                );
                ok = false;
            }
        }
    }
    if fields.get("name").is_none() {
        check.error(item.span().start, "channels.name", "", "is missing");
    }
    match (name, cost, max_amount, ok) {
        (Some(name), Some(cost), Some(max_amount), true) => Some(Channel {
            name,
            cost,
            max_amount,
        }),
        _ => None,
    }
}

fn read_cost(check: &mut TomlCheck<'_>, key: &str, value: &Spanned<DeValue<'_>>) -> Option<u32> {
    let DeValue::Integer(int) = value.get_ref() else {
        check.error(
            value.span().start,
            key,
            "",
            format!(
                "must be an integer ≥ 0, found {}",
                value.get_ref().type_str()
            ),
        );
        return None;
    };
    match i64::from_str_radix(int.as_str(), int.radix())
        .ok()
        .and_then(|v| u32::try_from(v).ok())
    {
        Some(cost) => Some(cost),
        None => {
            check.error(
                value.span().start,
                key,
                int.as_str(),
                format!("must be an integer from 0 to {}", u32::MAX),
            );
            None
        }
    }
}

/// Decimal text of an amount: a string, or an integer. A TOML float is refused: it is binary.
fn amount_text(
    check: &mut TomlCheck<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<String> {
    match value.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) if i.radix() == 10 => Some(i.as_str().to_string()),
        other => {
            check.error(
                value.span().start,
                key,
                "",
                format!(
                    "must be a decimal string such as \"50000.00\", found {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

fn read_max(
    check: &mut TomlCheck<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<ChannelMax> {
    if let DeValue::Table(table) = value.get_ref() {
        return read_max_table(check, key, table, value.span().start);
    }
    let text = amount_text(check, key, value)?;
    match Decimal::parse(&text) {
        Err(e) => {
            check.error(value.span().start, key, &text, decimal_reason(&e));
            None
        }
        // At least one whole unit, so that truncating to a currency without minor digits
        // never leaves a maximum of zero.
        Ok(d) if d.mantissa < 10i64.saturating_pow(d.scale) => {
            check.error(
                value.span().start,
                key,
                &text,
                "must be at least 1 (one whole unit of each currency)",
            );
            None
        }
        Ok(d) => Some(ChannelMax::Every(d)),
    }
}

fn read_max_table(
    check: &mut TomlCheck<'_>,
    key: &str,
    table: &toml::de::DeTable<'_>,
    at: usize,
) -> Option<ChannelMax> {
    let mut maxima = BTreeMap::new();
    let mut ok = true;
    for (code, value) in table.iter() {
        let full = format!("{key}.{}", code.get_ref());
        let Some(currency) = Currency::from_code(code.get_ref()) else {
            check.error(
                code.span().start,
                &full,
                code.get_ref(),
                "is not a known ISO 4217 currency code",
            );
            ok = false;
            continue;
        };
        let Some(text) = amount_text(check, &full, value) else {
            ok = false;
            continue;
        };
        match currency.parse_amount(&text) {
            Ok(amount) if amount.0 > 0 => {
                maxima.insert(currency, amount);
            }
            Ok(_) => {
                check.error(value.span().start, &full, &text, "must be > 0");
                ok = false;
            }
            Err(e) => {
                check.error(value.span().start, &full, &text, decimal_reason(&e));
                ok = false;
            }
        }
    }
    if maxima.is_empty() && ok {
        check.error(
            at,
            key,
            "",
            "is an empty table: leave max_amount out for no maximum",
        );
        ok = false;
    }
    ok.then_some(ChannelMax::PerCurrency(maxima))
}

/// Puts policy and channels together: a policy needs channels (declared channels default to
/// `route`), and under `route` every currency needs a channel without a maximum, so that
/// every amount can be routed whole. Channels come out sorted cheapest first, ties by name.
///
/// `channels_present`: the key was in the file (so a refused `[[channels]]`, already reported,
/// is not reported again as missing).
pub(super) fn combine(
    check: &mut TomlCheck<'_>,
    policy: Option<(ChannelPolicy, usize)>,
    channels: Option<(Vec<Channel>, usize)>,
    channels_present: bool,
) -> Option<Channels> {
    let (mut channels, at) = match (channels, policy) {
        (Some(c), _) => c,
        (None, _) if channels_present => return None,
        (None, Some((_, at))) => {
            check.error(
                at,
                "channel_policy",
                "",
                "is set but platform.toml declares no [[channels]]",
            );
            return None;
        }
        (None, None) => return None,
    };
    let policy = policy.map_or(ChannelPolicy::Route, |(p, _)| p);
    channels.sort_by(|a, b| (a.cost, &a.name).cmp(&(b.cost, &b.name)));
    if policy == ChannelPolicy::Route {
        if let Some(currency) = unroutable_currency(&channels) {
            check.error(
                at,
                "channels",
                "",
                format!(
                    "channel_policy \"route\" needs a channel without a maximum for every \
                     currency, so that any amount fits one channel; none has in {currency}"
                ),
            );
            return None;
        }
    }
    Some(Channels { policy, channels })
}

/// A currency for which every channel has a maximum, if any (`"any currency"` when every
/// channel has a maximum in every currency).
fn unroutable_currency(channels: &[Channel]) -> Option<String> {
    let unlimited_elsewhere = channels
        .iter()
        .any(|c| !matches!(c.max_amount, ChannelMax::Every(_)));
    if !unlimited_elsewhere {
        return Some("any currency".to_string());
    }
    let listed: BTreeSet<Currency> = channels
        .iter()
        .filter_map(|c| match &c.max_amount {
            ChannelMax::PerCurrency(t) => Some(t.keys().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    listed
        .into_iter()
        .find(|currency| channels.iter().all(|c| c.max_minor(*currency).is_some()))
        .map(|c| c.code().to_string())
}

/// `[banks.<id>] bic = "BANKCNBJXXX"`: ISO 9362, 8 or 11 characters.
pub(super) fn read_bic(
    check: &mut TomlCheck<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<String> {
    let text = check.string(key, value)?;
    if is_bic(&text) {
        Some(text)
    } else {
        check.error(
            value.span().start,
            key,
            &text,
            "is not a BIC: 4 letters or digits, a 2-letter country code, 2 letters or digits, \
             optionally 3 more (e.g. BANKCNBJ or BANKCNBJXXX)",
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::AmountMinor;

    fn minor(channel: &Channel, code: &str) -> Option<i64> {
        channel.max_minor(Currency::from_code(code).expect("a known code"))
    }

    #[test]
    fn a_unit_maximum_truncates_to_each_currency() {
        let channel = Channel {
            name: "bulk".into(),
            cost: 1,
            max_amount: ChannelMax::Every(Decimal::parse("50000.5").unwrap()),
        };
        assert_eq!(minor(&channel, "CNY"), Some(5_000_050));
        assert_eq!(minor(&channel, "JPY"), Some(50_000));
        assert_eq!(minor(&channel, "BHD"), Some(50_000_500));
        let table = Channel {
            name: "t".into(),
            cost: 0,
            max_amount: ChannelMax::PerCurrency(
                [(Currency::from_code("JPY").unwrap(), AmountMinor(7))].into(),
            ),
        };
        assert_eq!(minor(&table, "JPY"), Some(7));
        assert_eq!(minor(&table, "CNY"), None);
    }
}

#[cfg(test)]
mod platform_tests {
    use std::path::Path;

    use super::super::parse_platform;
    use crate::model::{ChannelMax, ChannelPolicy, Platform, RowError};
    use crate::money::{AmountMinor, Currency};

    fn platform(top: &str, tail: &str) -> Result<Platform, Vec<RowError>> {
        let text = format!(
            "name = \"X\"\ndelivery_bank = \"B01\"\ndelivery_account = \"DLV\"\n\
             fee_account = \"FEE\"\nguarantee_account = \"G\"\nsuspense_account = \"S\"\n{top}\n\
             [banks.B01]\ncustody_account = \"CUS-B01\"\n{tail}\n"
        );
        parse_platform(Path::new("platform.toml"), text.as_bytes())
    }

    fn messages(errors: Vec<RowError>) -> String {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    const TWO: &str = "[[channels]]\nname = \"large-value\"\ncost = 5\n\
                       [[channels]]\nname = \"bulk\"\nmax_amount = \"50000.00\"\ncost = 1\n";

    #[test]
    fn no_channels_is_none_and_channels_default_to_route_sorted_by_cost() {
        assert_eq!(platform("", "").unwrap().channels, None);
        let p = platform("", TWO).unwrap();
        let c = p.channels.unwrap();
        assert_eq!(c.policy, ChannelPolicy::Route);
        let names: Vec<_> = c.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["bulk", "large-value"]);
        assert_eq!(c.channels[1].max_amount, ChannelMax::Unlimited);
        let split = platform("channel_policy = \"split\"", TWO).unwrap();
        assert_eq!(split.channels.unwrap().policy, ChannelPolicy::Split);
    }

    #[test]
    fn per_currency_maxima_and_bics() {
        let p = platform(
            "channel_policy = \"split\"",
            "bic = \"BANKCNBJXXX\"\n[[channels]]\nname = \"bulk\"\n\
             max_amount = { CNY = \"50000.00\", JPY = 5000000 }\n",
        )
        .unwrap();
        assert_eq!(p.banks["B01"].bic.as_deref(), Some("BANKCNBJXXX"));
        let c = &p.channels.unwrap().channels[0];
        let cny = Currency::from_code("CNY").unwrap();
        let usd = Currency::from_code("USD").unwrap();
        assert_eq!(c.max_minor(cny), Some(5_000_000));
        assert_eq!(c.max_minor(usd), None);
        assert!(
            matches!(&c.max_amount, ChannelMax::PerCurrency(t) if t[&cny] == AmountMinor(5_000_000))
        );
    }

    #[test]
    fn bad_channel_tables_name_key_and_line() {
        let cases = [
            (
                "channel_policy = \"split\"",
                "",
                "channel_policy: is set but platform.toml declares no [[channels]]",
            ),
            (
                "channel_policy = \"fast\"",
                TWO,
                "must be \"route\" or \"split\"",
            ),
            ("", "[[channels]]\nname = \"default\"\n", "is reserved"),
            ("", "[[channels]]\nname = \"a b\"\n", "is not a valid id"),
            ("", "[[channels]]\ncost = 1\n", "channels.name: is missing"),
            (
                "",
                "[[channels]]\nname = \"a\"\n[[channels]]\nname = \"a\"\n",
                "is declared twice",
            ),
            (
                "",
                "[[channels]]\nname = \"a\"\ncost = -1\n",
                "must be an integer from 0",
            ),
            (
                "",
                "[[channels]]\nname = \"a\"\nlimit = 1\n",
                "channels.limit: is not a known key",
            ),
            (
                "",
                "[[channels]]\nname = \"a\"\nmax_amount = 50000.0\n",
                "must be a decimal string",
            ),
            (
                "",
                "[[channels]]\nname = \"a\"\nmax_amount = \"0.50\"\n",
                "must be at least 1",
            ),
            (
                "channel_policy = \"split\"",
                "[[channels]]\nname = \"a\"\nmax_amount = { XXX = \"1\" }\n",
                "not a known ISO 4217",
            ),
            (
                "channel_policy = \"split\"",
                "[[channels]]\nname = \"a\"\nmax_amount = { JPY = \"1.5\" }\n",
                "decimals",
            ),
            (
                "channel_policy = \"split\"",
                "[[channels]]\nname = \"a\"\nmax_amount = { JPY = \"0\" }\n",
                "must be > 0",
            ),
            (
                "",
                "[[channels]]\nname = \"a\"\nmax_amount = \"100\"\n",
                "needs a channel without a maximum for every currency",
            ),
            (
                "",
                "[[channels]]\nname = \"a\"\nmax_amount = { JPY = \"100\" }\n",
                "none has in JPY",
            ),
            (
                "",
                "bic = \"bank\"\n",
                "banks.B01.bic: value \"bank\": is not a BIC",
            ),
            (
                "channels = 3",
                "",
                "must be an array of [[channels]] tables",
            ),
        ];
        for (top, tail, needle) in cases {
            let text = messages(platform(top, tail).unwrap_err());
            assert!(text.contains(needle), "{top:?} {tail:?}: {text}");
            assert!(text.contains("platform.toml:"), "{text}");
        }
        // A split platform with only limited channels is fine: everything is split.
        assert!(platform(
            "channel_policy = \"split\"",
            "[[channels]]\nname = \"a\"\nmax_amount = \"100\"\n"
        )
        .is_ok());
    }
}
