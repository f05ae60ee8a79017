//! The parallel intake gives exactly the result of the sequential one: on random days split
//! over several files of mixed formats, with re-sent trades, conflicting ids, invalid rows,
//! rows of another date and undecodable rows, with 1, 2 and 3 threads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use clearhouse_engine::gen::{generate, GenOptions};
use clearhouse_engine::intake::{
    validate_files, validate_files_split, validate_trade_files_sequential,
};
use clearhouse_engine::reference::{load_dir, RefData};
use clearhouse_engine::validate::ValidatedTrades;
use clearhouse_formats::model::{BusinessDate, TradeFields};
use clearhouse_formats::money::{Currency, Decimal};
use clearhouse_formats::trades::{TradeFileWriter, TradeFormat};

const MEMBERS: u32 = 6;
const INSTRUMENTS: u32 = 5;

/// A day directory with reference data only (gen's, with its trade file removed).
fn reference_day(dir: &Path) -> RefData {
    generate(
        &GenOptions {
            out_dir: dir.to_path_buf(),
            trades: 0,
            members: MEMBERS,
            instruments: INSTRUMENTS,
            banks: 2,
            currencies: vec![
                Currency::from_code("CNY").unwrap(),
                Currency::from_code("JPY").unwrap(),
            ],
            seed: 1,
            format: TradeFormat::Csv,
            business_date: BusinessDate::parse("2026-11-25").unwrap(),
            files: 1,
        },
        |_| {},
    )
    .unwrap();
    std::fs::remove_file(dir.join("trades.csv")).unwrap();
    load_dir(dir).unwrap().unwrap()
}

/// One generated row: indexes into small pools, so that ids repeat, some with the same
/// content and some with other content.
#[derive(Debug, Clone)]
struct Row {
    id: usize,
    instrument: u32,
    buyer: u32,
    seller: u32,
    price_milli: i64,
    lots: i64,
    /// 0: the day's date; 1: another date; 2: a row the reader cannot decode (CSV only);
    /// 3: (CSV only) a quoted trade id with a line end in it, so that physical lines and
    /// records differ and a split may fall inside a record.
    kind: u8,
}

fn row() -> impl Strategy<Value = Row> {
    (
        0usize..40,
        0..INSTRUMENTS + 1,
        0..MEMBERS,
        0..MEMBERS,
        prop_oneof![Just(1000i64), 1i64..50_000],
        prop_oneof![Just(1i64), 1i64..4],
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
    )
        .prop_map(
            |(id, instrument, buyer, seller, price_milli, lots, kind)| Row {
                id,
                instrument,
                buyer,
                seller,
                price_milli,
                lots,
                kind,
            },
        )
}

/// Ids: numbered (`T…`, some with a different digit count for the same number) and not.
fn trade_id(i: usize) -> String {
    match i % 4 {
        0 | 1 => format!("T{:06}", i / 2),
        2 => format!("T{}", i / 2),
        _ => format!("X-{}", i * 7919 % 101),
    }
}

fn write_file(path: &Path, format: TradeFormat, rows: &[Row]) {
    let instrument = |i: u32| format!("I{:05}", i + 1);
    let member = |m: u32| format!("M{:05}", m + 1);
    if format == TradeFormat::Csv {
        let mut text = String::from(
            "trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at\n",
        );
        for r in rows {
            let date = if r.kind == 1 {
                "2026-11-26"
            } else {
                "2026-11-25"
            };
            let price = Decimal::from_unscaled(i128::from(r.price_milli), 3).unwrap();
            let quantity = if r.kind == 2 {
                "many".to_string()
            } else {
                r.lots.to_string()
            };
            let id = if r.kind == 3 {
                format!("\"{}\n\"\"x\"", trade_id(r.id))
            } else {
                trade_id(r.id)
            };
            let _ = writeln!(
                text,
                "{},{date},{},{},{},{},{quantity},",
                id,
                instrument(r.instrument),
                member(r.buyer),
                member(r.seller),
                price.to_text()
            );
        }
        std::fs::write(path, text).unwrap();
        return;
    }
    // Small row groups, so that Parquet files split.
    let mut w = TradeFileWriter::create_with_row_groups(path, format, 3, 7).unwrap();
    for r in rows {
        let id = trade_id(r.id);
        let (i, b, s) = (instrument(r.instrument), member(r.buyer), member(r.seller));
        let date = if r.kind == 1 {
            "2026-11-26"
        } else {
            "2026-11-25"
        };
        w.write(&TradeFields {
            trade_id: &id,
            business_date: date,
            instrument: &i,
            buyer: &b,
            seller: &s,
            price: Decimal::from_unscaled(i128::from(r.price_milli), 3).unwrap(),
            quantity: r.lots,
            executed_at: None,
        })
        .unwrap();
    }
    w.finish().unwrap();
}

/// The day split into files at `cuts`, each file's format picked by `formats`.
fn write_day(
    dir: &Path,
    rows: &[Row],
    cuts: &[usize],
    formats: &[u8],
) -> Vec<(PathBuf, TradeFormat)> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
    bounds.push(0);
    bounds.push(rows.len());
    bounds.sort_unstable();
    let mut files = Vec::new();
    for (n, w) in bounds.windows(2).enumerate() {
        let format = match formats.get(n).copied().unwrap_or(0) % 3 {
            0 => TradeFormat::Csv,
            1 => TradeFormat::Parquet,
            _ => TradeFormat::Jsonl,
        };
        let path = dir.join(format!("trades-{n:02}.{}", format.extension()));
        write_file(&path, format, &rows[w[0]..w[1]]);
        files.push((path, format));
    }
    files
}

fn assert_same(
    refs: &RefData,
    a: ValidatedTrades,
    b: ValidatedTrades,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.day, &b.day);
    prop_assert_eq!(a.counts, b.counts);
    prop_assert_eq!(&a.rejects, &b.rejects);
    let (na, nb) = (a.netting.finish(refs), b.netting.finish(refs));
    prop_assert_eq!(format!("{na:?}"), format!("{nb:?}"));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn parallel_intake_equals_sequential(
        rows in prop::collection::vec(row(), 0..120),
        cuts in prop::collection::vec(0usize..200, 0..4),
        formats in prop::collection::vec(0u8..3, 5),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let refs = reference_day(tmp.path());
        let files = write_day(tmp.path(), &rows, &cuts, &formats);
        for threads in [1, 2, 3] {
            let sequential = validate_trade_files_sequential(&refs, &files).unwrap();
            let parallel = validate_files(&refs, &files, threads, None).unwrap();
            assert_same(&refs, sequential, parallel)?;
        }
    }

    /// The same with every file split within itself: Parquet by row groups (of 7 rows),
    /// CSV by byte ranges at any line start (a split inside a quoted field makes the file be
    /// read whole), JSON Lines whole. Rejects keep their file, line and column; the first
    /// occurrence of an id in file order stays the trade.
    #[test]
    fn intake_split_within_files_equals_sequential(
        rows in prop::collection::vec(row(), 0..160),
        cuts in prop::collection::vec(0usize..200, 0..3),
        formats in prop::collection::vec(0u8..3, 4),
        parts in 2usize..6,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let refs = reference_day(tmp.path());
        let files = write_day(tmp.path(), &rows, &cuts, &formats);
        for threads in [1, 2, 3] {
            let sequential = validate_trade_files_sequential(&refs, &files).unwrap();
            let split = validate_files_split(&refs, &files, threads, parts, None).unwrap();
            assert_same(&refs, sequential, split)?;
        }
    }
}

#[test]
fn repeats_across_files_keep_the_first_in_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let refs = reference_day(tmp.path());
    let base = Row {
        id: 0,
        instrument: 0,
        buyer: 0,
        seller: 1,
        price_milli: 10_005,
        lots: 1,
        kind: 0,
    };
    let other = Row {
        lots: 2,
        ..base.clone()
    };
    // File 1: T000000 (lots 1); file 2: the same trade again, then T000000 with lots 2.
    let files = write_day(tmp.path(), &[base.clone(), base, other], &[1], &[1, 0]);
    let parallel = validate_files(&refs, &files, 2, None).unwrap();
    assert_eq!(parallel.counts.netted, 1);
    assert_eq!(parallel.counts.duplicates, 1);
    assert_eq!(parallel.counts.rejected, 1);
    assert_eq!(
        parallel.rejects[0].location.line, 3,
        "{:?}",
        parallel.rejects
    );
    assert!(parallel.rejects[0].location.file.ends_with("trades-01.csv"));
    let sequential = validate_trade_files_sequential(&refs, &files).unwrap();
    assert_same(&refs, sequential, parallel).unwrap();
}

#[test]
fn quantities_beyond_64_bits_net_exactly_and_come_back_out() {
    use clearhouse_engine::netting::{NettingAccumulator, ValidTrade};
    use clearhouse_engine::reference::{InstrumentIdx, MemberIdx};
    let tmp = tempfile::tempdir().unwrap();
    let refs = reference_day(tmp.path());
    let big = ValidTrade {
        buyer: MemberIdx(0),
        seller: MemberIdx(1),
        instrument: InstrumentIdx(0),
        amount_minor: 1,
        quantity: i64::MAX - 5,
    };
    let mut a = NettingAccumulator::new(&refs);
    a.push(&refs, &big);
    let mut b = NettingAccumulator::new(&refs);
    b.push_all(&[big, big]);
    // The merged cell holds three times i64::MAX − 5: beyond i64, kept exactly.
    a.merge(b);
    a.remove(&big);
    a.remove(&big);
    let nets = a.finish(&refs).unwrap();
    let mut one = NettingAccumulator::new(&refs);
    one.push(&refs, &big);
    assert_eq!(nets, one.finish(&refs).unwrap());
    assert_eq!(nets.qty[0].bought, i64::MAX - 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `push_all` compiles the fee rounding for the members' shared rate scale (the generated
    /// members have 0.0003 and 0.00025: scale 5); `push` takes each rate's own. Same nets,
    /// minimum fees and ties included.
    #[test]
    fn bulk_pushes_net_as_single_pushes(
        trades in proptest::collection::vec(
            (0..MEMBERS, 1..MEMBERS, 0..INSTRUMENTS, -5i64..50_000_000, 1i64..1_000),
            1..200,
        ),
    ) {
        use clearhouse_engine::netting::{NettingAccumulator, ValidTrade};
        use clearhouse_engine::reference::{InstrumentIdx, MemberIdx};
        let tmp = tempfile::tempdir().unwrap();
        let refs = reference_day(tmp.path());
        let trades: Vec<ValidTrade> = trades
            .into_iter()
            .map(|(buyer, step, instrument, amount, quantity)| ValidTrade {
                buyer: MemberIdx(buyer),
                seller: MemberIdx((buyer + step) % MEMBERS),
                instrument: InstrumentIdx(instrument),
                // Amounts that end in 5 at the rounding digit: ties.
                amount_minor: amount * 2,
                quantity,
            })
            .collect();
        let mut bulk = NettingAccumulator::new(&refs);
        bulk.push_all(&trades);
        let mut single = NettingAccumulator::new(&refs);
        for trade in &trades {
            single.push(&refs, trade);
        }
        prop_assert_eq!(bulk.finish(&refs).unwrap(), single.finish(&refs).unwrap());
    }
}
