//! Synthetic day directories for tests and benchmarks: `clearhouse gen`.
//!
//! Deterministic by seed: the same options give byte-identical files. Prices have three
//! decimals and lot sizes are odd, so that rounding ties and lot checks are exercised; members
//! hold enough cash that no generated day runs into a shortfall.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use clearhouse_formats::model::{BusinessDate, TradeFields};
use clearhouse_formats::money::{Currency, Decimal};
use clearhouse_formats::trades::{TradeFileWriter, TradeFormat};

use crate::EngineError;

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub out_dir: PathBuf,
    pub trades: u64,
    pub members: u32,
    pub instruments: u32,
    pub banks: u32,
    pub currencies: Vec<Currency>,
    pub seed: u64,
    pub format: TradeFormat,
    pub business_date: BusinessDate,
    /// Split the trades over this many files (`trades-0001.csv`, ...), for parallel reading.
    pub files: u32,
}

/// Prices carry at most this many decimals.
const PRICE_SCALE: u32 = 3;
/// Odd lot sizes, so quantities are not all round hundreds.
const LOT_SIZES: [i64; 4] = [1, 3, 7, 100];
/// Opening cash of every member in every currency, in major units: far above what any
/// generated day can cost a member.
const OPENING_MAJOR: i64 = 1_000_000_000_000;
/// The most opening cash all members together may hold in one currency, in major units: a
/// quarter of the 64-bit range at three minor digits, so that the custody account's opening
/// counter-leg and the day's movements fit an amount however many members there are.
const OPENING_TOTAL_MAJOR: i64 = i64::MAX / 1_000 / 4;

/// [`OPENING_MAJOR`], less where the members are so many that their total would pass
/// [`OPENING_TOTAL_MAJOR`] (beyond about 2,300 members).
fn opening_major(members: u32) -> i64 {
    OPENING_MAJOR.min(OPENING_TOTAL_MAJOR / i64::from(members.max(1)))
}

/// Writes platform.toml, members.csv, instruments.csv, opening_balances.csv and the trades.
pub fn generate(opts: &GenOptions, mut progress: impl FnMut(u64)) -> Result<(), EngineError> {
    if opts.members < 2 || opts.instruments < 1 || opts.banks < 1 || opts.currencies.is_empty() {
        return Err(EngineError::Output(
            "gen needs at least 2 members, 1 instrument, 1 bank and 1 currency".to_string(),
        ));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| EngineError::io(&opts.out_dir, e))?;
    write_text(&opts.out_dir.join("platform.toml"), &platform_toml(opts))?;
    write_text(&opts.out_dir.join("members.csv"), &members_csv(opts))?;
    write_text(
        &opts.out_dir.join("instruments.csv"),
        &instruments_csv(opts),
    )?;
    write_text(
        &opts.out_dir.join("opening_balances.csv"),
        &balances_csv(opts),
    )?;
    write_trades(opts, &mut progress)
}

fn write_text(path: &Path, text: &str) -> Result<(), EngineError> {
    std::fs::write(path, text).map_err(|e| EngineError::io(path, e))
}

fn bank_id(i: u32) -> String {
    format!("B{:02}", i + 1)
}

fn member_id(i: u32) -> String {
    format!("M{:05}", i + 1)
}

fn instrument_id(i: u32) -> String {
    format!("I{:05}", i + 1)
}

fn platform_toml(opts: &GenOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "name = \"Generated Exchange (seed {})\"", opts.seed);
    s.push_str(
        "delivery_bank = \"B01\"\ndelivery_account = \"DLV-001\"\nfee_account = \"FEE\"\n\
         guarantee_account = \"GUARANTEE\"\nsuspense_account = \"SUSPENSE\"\n\
         shortfall_policy = \"abort\"\n\
         # Generated members start with cash only: a cash-only market.\nsecurities_check = false\n",
    );
    for b in 0..opts.banks {
        let id = bank_id(b);
        let _ = writeln!(s, "\n[banks.{id}]\ncustody_account = \"CUS-{id}\"");
    }
    s
}

fn members_csv(opts: &GenOptions) -> String {
    let mut s = String::from(
        "member_id,name,settlement_bank,bound_bank,bound_account,bound_account_name,status,fee_rate,min_fee\n",
    );
    for m in 0..opts.members {
        let id = member_id(m);
        // Two fee schedules: one with a minimum fee, one without.
        let (rate, min_fee) = if m % 2 == 0 {
            ("0.0003", "5")
        } else {
            ("0.00025", "0")
        };
        let _ = writeln!(
            s,
            "{id},Member {id},{},EXT{:02},6222{:012},Member {id},active,{rate},{min_fee}",
            bank_id(m % opts.banks),
            m % 7,
            m
        );
    }
    s
}

fn instruments_csv(opts: &GenOptions) -> String {
    let mut s = String::from("instrument,name,currency,price_scale,lot_size\n");
    for i in 0..opts.instruments {
        let currency = opts.currencies[i as usize % opts.currencies.len()];
        let _ = writeln!(
            s,
            "{},Instrument {},{},{PRICE_SCALE},{}",
            instrument_id(i),
            i + 1,
            currency.code(),
            LOT_SIZES[(i as usize / opts.currencies.len()) % LOT_SIZES.len()]
        );
    }
    s
}

fn balances_csv(opts: &GenOptions) -> String {
    let mut s = String::from("account,currency,balance\n");
    let opening = opening_major(opts.members);
    for m in 0..opts.members {
        for c in &opts.currencies {
            let _ = writeln!(s, "{},{},{opening}", member_id(m), c.code());
        }
    }
    s
}

fn write_trades(opts: &GenOptions, progress: &mut impl FnMut(u64)) -> Result<(), EngineError> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let members: Vec<String> = (0..opts.members).map(member_id).collect();
    let instruments: Vec<String> = (0..opts.instruments).map(instrument_id).collect();
    let lots: Vec<i64> = (0..opts.instruments)
        .map(|i| LOT_SIZES[(i as usize / opts.currencies.len()) % LOT_SIZES.len()])
        .collect();
    let date = opts.business_date.to_string();
    let files = opts.files.max(1);
    let per_file = opts.trades.div_ceil(u64::from(files));
    let ext = match opts.format {
        TradeFormat::Csv => "csv",
        TradeFormat::Jsonl => "jsonl",
        TradeFormat::Parquet => "parquet",
    };
    let mut written = 0u64;
    for f in 0..files {
        let name = if files == 1 {
            format!("trades.{ext}")
        } else {
            format!("trades-{:04}.{ext}", f + 1)
        };
        let path = opts.out_dir.join(name);
        let mut writer = TradeFileWriter::create(&path, opts.format, PRICE_SCALE)?;
        let end = (written + per_file).min(opts.trades);
        let mut trade_id = String::with_capacity(16);
        let mut executed_at = String::with_capacity(32);
        while written < end {
            // Squaring a uniform draw skews popularity towards the first instruments.
            let u = u64::from(rng.next_u32());
            let i = ((((u * u) >> 32) * u64::from(opts.instruments)) >> 32) as usize;
            let buyer = (rng.next_u32() % opts.members) as usize;
            let mut seller = (rng.next_u32() % (opts.members - 1)) as usize;
            if seller >= buyer {
                seller += 1;
            }
            // 1.000 .. 500.999, three decimals.
            let price = Decimal::from_unscaled(i128::from(1000 + rng.next_u64() % 500_000), 3)
                .expect("a small price fits");
            let quantity = lots[i] * (1 + (rng.next_u32() % 20) as i64);
            let second = written % 19_800;
            trade_id.clear();
            let _ = write!(trade_id, "T{:011}", written + 1);
            executed_at.clear();
            let _ = write!(
                executed_at,
                "{date}T{:02}:{:02}:{:02}+08:00",
                9 + second / 3600,
                second / 60 % 60,
                second % 60
            );
            writer.write(&TradeFields {
                trade_id: &trade_id,
                business_date: &date,
                instrument: &instruments[i],
                buyer: &members[buyer],
                seller: &members[seller],
                price,
                quantity,
                executed_at: Some(&executed_at),
            })?;
            written += 1;
            if written.is_multiple_of(1_000_000) {
                progress(written);
            }
        }
        writer.finish()?;
    }
    progress(written);
    Ok(())
}
