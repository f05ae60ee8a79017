use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Decimal128Builder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use proptest::prelude::*;

use super::*;
use crate::money::Decimal;

/// A trade as owned data, to compare what readers produced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    line: u64,
    trade_id: String,
    business_date: String,
    instrument: String,
    buyer: String,
    seller: String,
    price: Decimal,
    quantity: i64,
    executed_at: Option<String>,
}

#[derive(Default)]
struct Collect {
    trades: Vec<Owned>,
    errors: Vec<RowError>,
}

impl TradeSink for Collect {
    fn trade(&mut self, line: u64, f: &TradeFields<'_>) {
        self.trades.push(Owned {
            line,
            trade_id: f.trade_id.into(),
            business_date: f.business_date.into(),
            instrument: f.instrument.into(),
            buyer: f.buyer.into(),
            seller: f.seller.into(),
            price: f.price,
            quantity: f.quantity,
            executed_at: f.executed_at.map(Into::into),
        });
    }

    fn bad_row(&mut self, error: RowError) {
        self.errors.push(error);
    }
}

impl Collect {
    /// Errors as `line: description`, the way an operator reads them.
    fn shown(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|e| format!("{}: {}", e.location.line, e.describe()))
            .collect()
    }
}

fn write_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    (dir, path)
}

fn read(name: &str, bytes: &[u8]) -> (Collect, ReadStats) {
    let (_dir, path) = write_file(name, bytes);
    read_path(&path)
}

fn read_path(path: &Path) -> (Collect, ReadStats) {
    let mut sink = Collect::default();
    let format = TradeFormat::of_path(path).unwrap();
    let stats = read_trades(path, format, &mut sink).unwrap();
    (sink, stats)
}

fn dec(text: &str) -> Decimal {
    Decimal::parse(text).unwrap()
}

const HEADER: &str = "trade_id,business_date,instrument,buyer,seller,price,quantity,executed_at";

#[test]
fn reads_csv_with_bom_crlf_quotes_and_any_column_order() {
    let text = "\u{FEFF}price,quantity,\"trade_id\",business_date,instrument,buyer,seller\r\n\
                10.005,1,T1,2026-11-25,X,A,B\r\n\
                \"12.340\",\"700\",\"T2\",2026-11-25,X,B,A\r\n";
    let (sink, stats) = read("trades.csv", text.as_bytes());
    assert_eq!(sink.shown(), Vec::<String>::new());
    assert_eq!(stats.rows, 2);
    assert_eq!(stats.bytes, text.len() as u64);
    assert_eq!(sink.trades.len(), 2);
    let t1 = &sink.trades[0];
    assert_eq!((t1.line, t1.trade_id.as_str()), (2, "T1"));
    assert_eq!(t1.price, dec("10.005"));
    assert_eq!(t1.executed_at, None);
    let t2 = &sink.trades[1];
    assert_eq!((t2.line, t2.price, t2.quantity), (3, dec("12.34"), 700));
    assert_eq!((t2.buyer.as_str(), t2.seller.as_str()), ("B", "A"));
}

#[test]
fn csv_bad_rows_are_all_reported_and_good_rows_kept() {
    let mut text = format!(
        "{HEADER}\n\
         T1,2026-11-25,X,A,B,10.005,1,2026-11-25T09:30:00+08:00\n\
         T2,2026-11-25,X,A,B,abc,1,\n\
         T3,2026-11-25,X,A,B,1.5,9223372036854775808,\n\
         T4,2026-11-25,X,A,B,1.5,1.5,\n\
         T5,2026-02-30,X,A,B,1.5,1,\n\
         T6,2026-11-25,X,A,B,1.5,1,yesterday\n\
         \"T,7\",2026-11-25,X,A,B,1.5,1,\n\
         T8,2026-11-25,X,A,B,1.5\n\
         T9,2026-11-25,X,A,,1.5,1,\n\
         T10,2026-11-25,X,A,B,1234567890123456789,1,\n\
         T11,2026-11-25,X,A,B,1.5,1,\"unclosed\n"
    )
    .into_bytes();
    // Line 12 holds a byte that is not UTF-8, in the buyer column.
    let bad = b"T12,2026-11-25,X,\xC3\x28,B,1.5,1,\n";
    // The unclosed quote above swallows the rest of the file, so put the bad bytes before it.
    let cut = text.windows(3).position(|w| w == b"T11").unwrap();
    text.splice(cut..cut, bad.iter().copied());
    let (sink, stats) = read("trades.csv", &text);
    assert_eq!(sink.trades.len(), 1);
    assert_eq!(
        sink.trades[0].executed_at.as_deref(),
        Some("2026-11-25T09:30:00+08:00")
    );
    assert_eq!(stats.rows, 12);
    let shown = sink.shown();
    let expect = [
        "3: column price: value \"abc\": is not a decimal number",
        "4: column quantity: value \"9223372036854775808\": is out of range (quantity overflow",
        "5: column quantity: value \"1.5\": is not an integer",
        "6: column business_date: value \"2026-02-30\": is not a calendar date",
        "7: column executed_at: value \"yesterday\": is not an RFC 3339 timestamp",
        "8: column trade_id: value \"T,7\": is not a valid id",
        "9: row has 6 fields, the header (line 1) has 8",
        "10: column seller: is empty",
        "11: column price: value \"1234567890123456789\": has too many digits",
        "12: column buyer: value \"\u{FFFD}(\": is not valid UTF-8",
        "13: a quoted field is not closed before the end of the file",
    ];
    assert_eq!(shown.len(), expect.len(), "{shown:#?}");
    for (got, want) in shown.iter().zip(expect) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    assert_eq!(sink.errors[0].id, "T2");
    assert_eq!(
        sink.errors[5].id, "",
        "an invalid trade id is not quoted as the id"
    );
    assert_eq!(sink.errors[9].id, "T12");
}

#[test]
fn csv_header_problems_reject_the_file_at_line_one() {
    let cases: &[(&[u8], &[&str])] = &[
        (b"", &["1: file is empty"]),
        (b"\n\n", &["1: file is empty"]),
        (
            b"trade_id,business_date,instrument,buyer,seller,price\nT1,2026-11-25,X,A,B,1\n",
            &["1: column quantity: is missing from the header"],
        ),
        (
            b"trade_id,business_date,instrument,buyer,seller,price,quantity,colour\nT1,2026-11-25,X,A,B,1,1,red\n",
            &["1: column colour: is not a known column (expected trade_id,"],
        ),
        (
            b"trade_id,business_date,instrument,buyer,seller,price,quantity,price\n",
            &["1: column price: appears twice in the header (header fields 6 and 8)"],
        ),
        (
            b"Trade_ID,business_date,instrument,buyer,seller,price,quantity\n",
            &[
                "1: column Trade_ID: is not a known column",
                "1: column trade_id: is missing from the header",
            ],
        ),
        (
            b"trade_id,business_date,instrument,buyer,seller,price,quantity,\xFF\n",
            &["1: column header field 8: value \"\u{FFFD}\": is not valid UTF-8"],
        ),
    ];
    for (bytes, want) in cases {
        let (sink, _) = read("trades.csv", bytes);
        assert!(sink.trades.is_empty());
        let shown = sink.shown();
        assert_eq!(shown.len(), want.len(), "{shown:#?}");
        for (got, want) in shown.iter().zip(want.iter()) {
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
        }
    }
}

#[test]
fn csv_without_final_newline_and_with_empty_executed_at() {
    let text = format!("{HEADER}\nT1,2026-11-25,X,A,B,1,5,");
    let (sink, _) = read("trades.csv", text.as_bytes());
    assert_eq!(sink.shown(), Vec::<String>::new());
    assert_eq!(sink.trades[0].executed_at, None);
    assert_eq!(sink.trades[0].quantity, 5);
}

#[test]
fn missing_trade_file_is_an_io_error() {
    for format in [TradeFormat::Csv, TradeFormat::Jsonl, TradeFormat::Parquet] {
        let mut sink = Collect::default();
        let result = read_trades(Path::new("/nonexistent/trades.x"), format, &mut sink);
        assert!(matches!(result, Err(FormatError::Io { .. })), "{format:?}");
    }
}

#[test]
fn json_numbers_are_read_from_their_text() {
    let text = concat!(
        "{\"trade_id\":\"T1\",\"business_date\":\"2026-11-25\",\"instrument\":\"X\",\"buyer\":\"A\",\"seller\":\"B\",\"price\":10.005,\"quantity\":1}\n",
        "\n",
        "{\"trade_id\":\"T2\",\"business_date\":\"2026-11-25\",\"instrument\":\"X\",\"buyer\":\"B\",\"seller\":\"A\",\"price\":\"12.340\",\"quantity\":\"700\",\"executed_at\":null}\r\n",
        "{\"trade_id\":\"T\\u0033\",\"business_date\":\"2026-11-25\",\"instrument\":\"X\",\"buyer\":\"B\",\"seller\":\"A\",\"price\":0.1e1,\"quantity\":3,\"executed_at\":\"2026-11-25T09:30:00Z\"}\n",
        "  {\"price\": 123456789.12345678, \"quantity\": 9, \"trade_id\": 42, \"business_date\": \"2026-11-25\", \"instrument\": \"X\", \"buyer\": \"B\", \"seller\": \"A\"}  ",
    );
    let (sink, stats) = read("trades.jsonl", text.as_bytes());
    assert_eq!(sink.shown(), Vec::<String>::new());
    assert_eq!(stats.rows, 4);
    let got: Vec<_> = sink
        .trades
        .iter()
        .map(|t| {
            (
                t.line,
                t.trade_id.as_str(),
                t.price,
                t.quantity,
                t.executed_at.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "T1", dec("10.005"), 1, None),
            (3, "T2", dec("12.34"), 700, None),
            (4, "T3", dec("1"), 3, Some("2026-11-25T09:30:00Z")),
            (5, "42", dec("123456789.12345678"), 9, None),
        ]
    );
}

#[test]
fn jsonl_bad_rows_name_the_key() {
    let good =
        r#""trade_id":"T1","business_date":"2026-11-25","instrument":"X","buyer":"A","seller":"B""#;
    let lines = [
        format!("{{{good},\"price\":\"1\",\"quantity\":1,\"colour\":\"red\"}}"),
        format!("{{{good},\"price\":\"1\",\"quantity\":1,\"price\":\"2\"}}"),
        format!("{{{good},\"quantity\":1}}"),
        format!("{{{good},\"price\":true,\"quantity\":1}}"),
        format!("{{{good},\"price\":1,\"quantity\":1.5}}"),
        format!("{{{good},\"price\":1,\"quantity\":99999999999999999999}}"),
        format!("{{{good},\"price\":1e999,\"quantity\":1}}"),
        format!("{{{good},\"price\":\"1\",\"quantity\":1,\"executed_at\":5}}"),
        format!("{{{good},\"price\":\"1\",\"quantity\":1"),
        "[1,2]".to_owned(),
        format!("{{{good},\"price\":\"1\",\"quantity\":null}}"),
        format!(
            "{{{},\"price\":\"1\",\"quantity\":1}}",
            good.replace("\"B\"", "\"B B\"")
        ),
    ];
    let mut bytes = lines.join("\n").into_bytes();
    bytes.extend_from_slice(b"\n{\"trade_id\":\"\xFF\"}\n");
    let (sink, stats) = read("trades.jsonl", &bytes);
    assert!(sink.trades.is_empty());
    assert_eq!(stats.rows, 13);
    let shown = sink.shown();
    let expect = [
        "1: column colour: is not a known key (expected trade_id,",
        "2: column price: appears twice in the object",
        "3: column price: is missing",
        "4: column price: value \"true\": is a boolean; it must be a string or a number",
        "5: column quantity: value \"1.5\": is not an integer",
        "6: column quantity: value \"99999999999999999999\": is out of range (quantity overflow",
        "7: column price: value \"1e999\": has too many digits",
        "8: column executed_at: value \"5\": is a number; it must be a string or null",
        "9: is not a valid JSON object: EOF while parsing an object (at character",
        "10: is not a valid JSON object: invalid type: sequence, expected a JSON object",
        "11: column quantity: value \"null\": is null",
        "12: column seller: value \"B B\": is not a valid id",
        "13: line is not valid UTF-8",
    ];
    assert_eq!(shown.len(), expect.len(), "{shown:#?}");
    for (got, want) in shown.iter().zip(expect) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    assert_eq!(sink.errors[0].id, "T1");
    assert_eq!(sink.errors[4].id, "T1");
}

#[test]
fn empty_jsonl_is_refused() {
    for bytes in [&b""[..], b"\n\n", b"\xEF\xBB\xBF"] {
        let (sink, _) = read("trades.jsonl", bytes);
        assert_eq!(sink.errors.len(), 1);
        assert!(sink.shown()[0].starts_with("1: file holds no JSON object"));
    }
}

fn sample_trades() -> Vec<Owned> {
    let prices = ["10.005", "12.34", "0.00000001", "99999999.99", "-1.5", "7"];
    (0..2500u64)
        .map(|i| Owned {
            line: 0,
            trade_id: format!("T{i:06}"),
            business_date: "2026-11-25".into(),
            instrument: ["X", "Y", "INSTR_3"][i as usize % 3].into(),
            buyer: format!("M{}", i % 7),
            seller: format!("M{}", (i + 1) % 7),
            price: dec(prices[i as usize % prices.len()]),
            quantity: if i == 5 {
                i64::MAX
            } else {
                (i as i64 + 1) * 100
            },
            executed_at: (i % 4 != 0).then(|| format!("2026-11-25T09:{:02}:00.5+08:00", i % 60)),
        })
        .collect()
}

#[test]
fn writer_output_round_trips_through_every_reader() {
    let trades = sample_trades();
    let dir = tempfile::tempdir().unwrap();
    for format in [TradeFormat::Csv, TradeFormat::Jsonl, TradeFormat::Parquet] {
        let path = dir.path().join(format!("trades.{}", format.extension()));
        let mut writer = TradeFileWriter::create(&path, format, 8).unwrap();
        for t in &trades {
            writer
                .write(&TradeFields {
                    trade_id: &t.trade_id,
                    business_date: &t.business_date,
                    instrument: &t.instrument,
                    buyer: &t.buyer,
                    seller: &t.seller,
                    price: t.price,
                    quantity: t.quantity,
                    executed_at: t.executed_at.as_deref(),
                })
                .unwrap();
        }
        writer.finish().unwrap();
        let (sink, stats) = read_path(&path);
        assert_eq!(sink.shown(), Vec::<String>::new(), "{format:?}");
        assert_eq!(stats.rows, trades.len() as u64);
        let offset = u64::from(format == TradeFormat::Csv);
        for (i, t) in sink.trades.iter().enumerate() {
            assert_eq!(t.line, i as u64 + 1 + offset, "{format:?}");
        }
        let without_lines: Vec<Owned> = sink
            .trades
            .into_iter()
            .map(|t| Owned { line: 0, ..t })
            .collect();
        assert_eq!(without_lines, trades, "{format:?}");
    }
}

#[test]
fn parquet_writer_refuses_prices_beyond_its_scale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trades.parquet");
    let mut writer = TradeFileWriter::create(&path, TradeFormat::Parquet, 2).unwrap();
    let mut t = TradeFields {
        trade_id: "T1",
        business_date: "2026-11-25",
        instrument: "X",
        buyer: "A",
        seller: "B",
        price: dec("10.005"),
        quantity: 1,
        executed_at: None,
    };
    let error = writer.write(&t).unwrap_err().to_string();
    assert!(
        error.contains("trade T1: price 10.005 has more decimals"),
        "{error}"
    );
    t.price = dec("99999999999999999");
    assert!(writer.write(&t).is_err());
    assert!(TradeFileWriter::create(&path, TradeFormat::Parquet, 19).is_err());
}

/// Writes a Parquet file with the given columns, as another tool would.
fn parquet_file(columns: Vec<(&str, ArrayRef)>) -> (tempfile::TempDir, PathBuf) {
    parquet_file_with(columns, None)
}

/// [`parquet_file`] with writer properties (encodings, page sizes).
fn parquet_file_with(
    columns: Vec<(&str, ArrayRef)>,
    properties: Option<parquet::file::properties::WriterProperties>,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trades.parquet");
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        properties,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    (dir, path)
}

fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn decimals(values: &[i128], precision: u8, scale: i8) -> ArrayRef {
    let mut b = Decimal128Builder::new()
        .with_precision_and_scale(precision, scale)
        .unwrap();
    values.iter().for_each(|v| b.append_value(*v));
    Arc::new(b.finish())
}

fn base_columns(price: ArrayRef) -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("trade_id", strings(&["T1", "T2"])),
        ("business_date", strings(&["2026-11-25", "2026-11-25"])),
        ("instrument", strings(&["X", "X"])),
        ("buyer", strings(&["A", "B"])),
        ("seller", strings(&["B", "A"])),
        ("price", price),
        ("quantity", Arc::new(Int64Array::from(vec![1, 700]))),
    ]
}

#[test]
fn parquet_decimal_prices_on_every_physical_type() {
    // Precision 9 is stored on INT32, 18 on INT64, 30 on FIXED_LEN_BYTE_ARRAY.
    for precision in [9, 18, 30] {
        let (_dir, path) = parquet_file(base_columns(decimals(&[10005, 12340], precision, 3)));
        let (sink, stats) = read_path(&path);
        assert_eq!(sink.shown(), Vec::<String>::new());
        assert_eq!(stats.rows, 2);
        let prices: Vec<_> = sink.trades.iter().map(|t| (t.line, t.price)).collect();
        assert_eq!(
            prices,
            vec![(1, dec("10.005")), (2, dec("12.34"))],
            "precision {precision}"
        );
    }
    let (_dir, path) = parquet_file(base_columns(strings(&["10.005", "1e3"])));
    let (sink, _) = read_path(&path);
    assert_eq!(sink.trades[0].price, dec("10.005"));
    assert_eq!(sink.shown(), vec!["2: column price: value \"1e3\": is not a decimal number (digits, an optional '.', no exponent or separators)"]);
}

#[test]
fn parquet_accepts_integer_ids_dates_timestamps_and_dictionaries() {
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    dict.append_value("X");
    dict.append_value("X");
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "executed_at",
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_764_063_000_123),
                None,
            ])),
        ),
        ("trade_id", Arc::new(Int64Array::from(vec![1001, 1002]))),
        (
            "business_date",
            Arc::new(Date32Array::from(vec![20_417, 20_417])),
        ),
        ("instrument", Arc::new(dict.finish())),
        ("buyer", Arc::new(Int32Array::from(vec![7, 8]))),
        ("seller", strings(&["B", "A"])),
        ("price", decimals(&[10005, 12340], 18, 3)),
        ("quantity", Arc::new(Int32Array::from(vec![1, 700]))),
    ];
    let (_dir, path) = parquet_file(columns);
    let (sink, _) = read_path(&path);
    assert_eq!(sink.shown(), Vec::<String>::new());
    let t = &sink.trades[0];
    assert_eq!(
        (
            t.trade_id.as_str(),
            t.business_date.as_str(),
            t.instrument.as_str(),
            t.buyer.as_str()
        ),
        ("1001", "2025-11-25", "X", "7")
    );
    assert_eq!(t.executed_at.as_deref(), Some("2025-11-25T09:30:00.123Z"));
    assert_eq!(sink.trades[1].executed_at, None);
    assert_eq!(sink.trades[1].quantity, 700);
}

#[test]
fn parquet_schema_problems_are_reported_at_row_one() {
    let mut columns = base_columns(Arc::new(Float64Array::from(vec![10.005, 12.34])));
    columns.push(("colour", strings(&["red", "blue"])));
    columns.retain(|(name, _)| *name != "seller");
    let (_dir, path) = parquet_file(columns);
    let (sink, _) = read_path(&path);
    assert!(sink.trades.is_empty());
    let shown = sink.shown();
    assert_eq!(shown.len(), 3, "{shown:#?}");
    assert!(shown[0].starts_with(
        "1: column price: value \"Float64\": has an unsupported type; it must be DECIMAL"
    ));
    assert!(shown[1].starts_with("1: column colour: is not a known column"));
    assert!(shown[2].starts_with("1: column seller: is missing"));
}

#[test]
fn parquet_nulls_and_overflow_are_row_errors() {
    let mut columns = base_columns(decimals(&[10005, 12340], 18, 3));
    columns[3] = ("buyer", Arc::new(StringArray::from(vec![None, Some("B")])));
    columns[6] = ("quantity", Arc::new(UInt64Array::from(vec![1, u64::MAX])));
    let (_dir, path) = parquet_file(columns);
    let (sink, _) = read_path(&path);
    assert!(sink.trades.is_empty());
    assert_eq!(
        sink.shown(),
        vec![
            "1: column buyer: is null".to_owned(),
            "2: column quantity: value \"18446744073709551615\": is out of range (quantity overflow: a 64-bit integer holds at most 9223372036854775807)".to_owned(),
        ]
    );
    assert_eq!(sink.errors[1].id, "T2");
}

#[test]
fn a_file_that_is_not_parquet_is_a_bad_file() {
    for bytes in [&b""[..], b"trade_id,price\n", b"PAR1garbagePAR1"] {
        let (sink, stats) = read("trades.parquet", bytes);
        assert_eq!(stats.rows, 0);
        let shown = sink.shown();
        assert_eq!(shown.len(), 1);
        assert!(
            shown[0].starts_with("1: is not a readable Parquet file"),
            "{shown:?}"
        );
    }
}

#[test]
fn field_types_in_schema_use_the_trade_names() {
    // Keeps the writer's schema and the reader's names from drifting apart.
    let names: Vec<_> = TRADE_COLUMNS.iter().map(|c| c.name).collect();
    assert_eq!(names, TRADE_COLUMN_NAMES);
    let _ = Schema::new(vec![Field::new(
        "executed_at",
        DataType::Timestamp(TimeUnit::Second, None),
        true,
    )]);
}

fn never_panics(name: &str, bytes: &[u8]) {
    let (_dir, path) = write_file(name, bytes);
    let mut sink = Collect::default();
    let format = TradeFormat::of_path(&path).unwrap();
    let stats = read_trades(&path, format, &mut sink).unwrap();
    assert_eq!(stats.bytes, bytes.len() as u64);
    for t in &sink.trades {
        assert!(crate::model::is_valid_id(&t.trade_id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn csv_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        never_panics("trades.csv", &bytes);
    }

    #[test]
    fn csv_reader_never_panics_on_csv_like_input(
        body in "[a-zT0-9,\"\r\n.é-]{0,300}",
    ) {
        never_panics("trades.csv", format!("{HEADER}\n{body}").as_bytes());
    }

    #[test]
    fn jsonl_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        never_panics("trades.jsonl", &bytes);
    }

    #[test]
    fn jsonl_reader_never_panics_on_json_like_input(
        body in r#"[{}\[\]":,0-9eE.\-a-z\\ \n]{0,300}"#,
    ) {
        never_panics("trades.jsonl", body.as_bytes());
    }
}

/// A small valid Parquet trade file, to damage.
fn parquet_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trades.parquet");
    let mut writer = TradeFileWriter::create(&path, TradeFormat::Parquet, 3).unwrap();
    for t in sample_trades()
        .iter()
        .filter(|t| t.price.scale <= 3)
        .take(300)
    {
        writer
            .write(&TradeFields {
                trade_id: &t.trade_id,
                business_date: &t.business_date,
                instrument: &t.instrument,
                buyer: &t.buyer,
                seller: &t.seller,
                price: t.price,
                quantity: t.quantity,
                executed_at: t.executed_at.as_deref(),
            })
            .unwrap();
    }
    writer.finish().unwrap();
    std::fs::read(&path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn damaged_parquet_never_panics(
        // Cut the file short (no footer), or flip bytes anywhere, pages included.
        cut in prop_oneof![Just(0usize), 1usize..4000],
        flips in proptest::collection::vec((0usize..20000, any::<u8>()), 0..4),
    ) {
        let mut bytes = parquet_bytes();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        let len = bytes.len();
        bytes.truncate(len - cut % len);
        let (_dir, path) = write_file("trades.parquet", &bytes);
        let mut sink = Collect::default();
        read_trades(&path, TradeFormat::Parquet, &mut sink).unwrap();
    }
}

/// Reads every part in order into one collector; `None` when the parts do not join up (the
/// caller then reads the file whole).
fn read_parts(path: &Path, format: TradeFormat, parts: &[FilePart]) -> Option<Collect> {
    let mut sink = Collect::default();
    let mut reads = Vec::new();
    for part in parts {
        reads.push(read_trades_part(path, format, part, &mut sink).unwrap());
    }
    for (k, pair) in parts.windows(2).enumerate() {
        if !reads[k].complete {
            return None;
        }
        if let FilePart::CsvRecords { bytes, first_line } = &pair[1] {
            if reads[k].ends_at != Some((bytes.start, *first_line)) {
                return None;
            }
        }
    }
    Some(sink)
}

#[test]
fn csv_parts_read_like_the_whole_file_with_exact_lines() {
    let mut text = String::from("trade_id,business_date,instrument,buyer,seller,price,quantity\n");
    for i in 0..200 {
        match i % 17 {
            // A quoted id with a line end in it: an invalid id, reported at its first line.
            3 => text.push_str(&format!("\"T{i}\nx\",2026-11-25,I1,M1,M2,1.5,10\n")),
            5 => text.push('\n'),
            7 => text.push_str(&format!("T{i},2026-11-25,I1,M1,M2,oops,10\n")),
            _ => text.push_str(&format!("T{i},2026-11-25,I1,M1,M2,1.5,{i}\n")),
        }
    }
    let (_dir, path) = write_file("t.csv", text.as_bytes());
    let whole = read_path(&path).0;
    let mut split_somewhere = false;
    let mut joined_somewhere = false;
    for parts in 2..9 {
        let plan = split_trade_file_with(&path, TradeFormat::Csv, parts, 1).unwrap();
        split_somewhere |= plan.len() > 1;
        if let Some(split) = read_parts(&path, TradeFormat::Csv, &plan) {
            joined_somewhere |= plan.len() > 1;
            assert_eq!(split.trades, whole.trades, "{plan:?}");
            assert_eq!(split.shown(), whole.shown(), "{plan:?}");
        }
    }
    assert!(split_somewhere && joined_somewhere);
    assert!(whole.errors.len() >= 10);
}

/// Counts what a reader asks for: each dictionary entry once per row group, not per row.
#[derive(Default)]
struct KeyedCollect {
    inner: Collect,
    asked: usize,
    keyed_rows: usize,
}

impl TradeSink for KeyedCollect {
    fn trade(&mut self, line: u64, f: &TradeFields<'_>) {
        self.inner.trade(line, f);
    }

    fn bad_row(&mut self, error: RowError) {
        self.inner.bad_row(error);
    }

    fn key_of(&mut self, column: KeyColumn, id: &str) -> Option<u32> {
        self.asked += 1;
        let number = id.get(1..)?.parse().ok()?;
        (column == KeyColumn::Instrument || id.starts_with('M')).then_some(number)
    }

    fn trade_keyed(&mut self, line: u64, f: &TradeFields<'_>, keys: TradeKeys) {
        self.keyed_rows += 1;
        let key = |s: &str| s.get(1..).and_then(|n| n.parse().ok());
        assert_eq!(keys.instrument, key(f.instrument));
        assert_eq!(keys.buyer, key(f.buyer));
        assert_eq!(keys.seller, key(f.seller));
        self.inner.trade(line, f);
    }
}

#[test]
fn parquet_row_group_parts_read_like_the_whole_file_and_ask_keys_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let mut w =
        TradeFileWriter::create_with_row_groups(&path, TradeFormat::Parquet, 2, 10).unwrap();
    let ids: Vec<String> = (0..95).map(|i| format!("T{i}")).collect();
    let members = ["M1", "M2", "X3", "M4"];
    for (i, id) in ids.iter().enumerate() {
        let instrument = format!("I{}", i % 3);
        w.write(&TradeFields {
            trade_id: id,
            business_date: "2026-11-25",
            instrument: &instrument,
            buyer: members[i % 4],
            seller: members[(i + 1) % 4],
            price: Decimal::from_unscaled(150 + i as i128, 2).unwrap(),
            quantity: 1 + i as i64,
            executed_at: None,
        })
        .unwrap();
    }
    w.finish().unwrap();
    let whole = read_path(&path).0;
    assert_eq!(whole.trades.len(), 95);
    for parts in 1..5 {
        let plan = split_trade_file(&path, TradeFormat::Parquet, parts).unwrap();
        assert_eq!(plan.len(), parts, "{plan:?}");
        let mut sink = KeyedCollect::default();
        for part in &plan {
            let read = read_trades_part(&path, TradeFormat::Parquet, part, &mut sink).unwrap();
            assert!(read.complete);
        }
        assert_eq!(sink.inner.trades, whole.trades);
        assert_eq!(sink.inner.shown(), whole.shown());
        // Rows with "X3" as buyer or seller get no key and take the per-row path.
        assert_eq!(
            sink.keyed_rows,
            (0..95).filter(|i| i % 4 == 0 || i % 4 == 3).count()
        );
        // 10 row groups, each asking at most 3 instruments and 4 members (twice).
        assert!(sink.asked <= 10 * (3 + 4 + 4), "{}", sink.asked);
    }
}

/// trade_id, business_date, instrument, buyer, seller, unscaled price, quantity, executed_at.
type RowValues = (
    String,
    String,
    String,
    String,
    String,
    i128,
    i64,
    Option<String>,
);

/// One random row for the fast/per-row comparison: mostly good values, some of each kind of
/// bad one.
fn fast_path_row() -> impl Strategy<Value = RowValues> {
    let id = prop_oneof![
        8 => (0u32..500).prop_map(|n| format!("T{n:06}")),
        1 => Just(String::new()),
        1 => Just("T 1".to_string()),
    ];
    let date = prop_oneof![
        8 => Just("2026-11-25".to_string()),
        1 => Just("2026-02-30".to_string()),
        1 => Just("2026-11-26".to_string()),
    ];
    let instrument = prop_oneof![
        8 => (1u32..4).prop_map(|n| format!("I{n}")),
        1 => Just("bad id".to_string()),
    ];
    // "X.." ids are ids the sink does not know: no key, the per-row path.
    let member = prop_oneof![
        8 => (1u32..5).prop_map(|n| format!("M{n}")),
        1 => Just("X9".to_string()),
        1 => Just(String::new()),
    ];
    let executed = prop_oneof![
        4 => Just(Some("2026-11-25T09:30:00.125Z".to_string())),
        2 => Just(None),
        1 => Just(Some(String::new())),
        1 => Just(Some("2026-11-25T25:00:00Z".to_string())),
        1 => Just(Some("2026-13-25T09:30:00Z".to_string())),
    ];
    (
        id,
        date,
        instrument,
        member.clone(),
        member,
        prop_oneof![8 => 1i128..1_000_000, 1 => Just(0i128), 1 => Just(-5i128)],
        prop_oneof![8 => 1i64..10_000, 1 => Just(0i64), 1 => Just(-7i64)],
        executed,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The fast path for clean batches takes exactly the rows the per-row path accepts and
    /// decodes them to the same fields and keys; the rows it leaves get the same errors.
    /// (An INT32 quantity column, read to the same values, is never taken by the fast path.)
    #[test]
    fn parquet_fast_path_reads_like_the_per_row_path(
        rows in proptest::collection::vec(fast_path_row(), 1..60),
    ) {
        let column = |f: &dyn Fn(&RowValues) -> String| {
            rows.iter().map(f).collect::<Vec<String>>()
        };
        let ids = column(&|r| r.0.clone());
        let rest = |narrow: bool| -> Vec<(&'static str, ArrayRef)> {
            let text = |v: &[String]| -> ArrayRef { Arc::new(StringArray::from_iter_values(v)) };
            let quantities = rows.iter().map(|r| r.6);
            let quantity: ArrayRef = if narrow {
                let narrowed = quantities.map(|q| i32::try_from(q).unwrap());
                Arc::new(arrow_array::Int32Array::from_iter_values(narrowed))
            } else {
                Arc::new(Int64Array::from_iter_values(quantities))
            };
            vec![
                ("trade_id", text(&ids)),
                ("business_date", text(&column(&|r| r.1.clone()))),
                ("instrument", text(&column(&|r| r.2.clone()))),
                ("buyer", text(&column(&|r| r.3.clone()))),
                ("seller", text(&column(&|r| r.4.clone()))),
                ("price", decimals(&rows.iter().map(|r| r.5).collect::<Vec<_>>(), 18, 3)),
                ("quantity", quantity),
                (
                    "executed_at",
                    Arc::new(StringArray::from(rows.iter().map(|r| r.7.clone()).collect::<Vec<_>>())),
                ),
            ]
        };
        // `executed_at` dictionary-encoded (the writer's default: checked once per entry) or
        // plain (checked per row).
        let read_keyed = |narrow: bool, plain_stamps: bool| {
            let properties = plain_stamps.then(|| {
                parquet::file::properties::WriterProperties::builder()
                    .set_column_dictionary_enabled("executed_at".into(), false)
                    .build()
            });
            let (_dir, path) = parquet_file_with(rest(narrow), properties);
            let dictionary = super::parquet_trades::reads_executed_at_as_dictionary(&path);
            assert_eq!(dictionary, !plain_stamps);
            let mut sink = KeyedCollect::default();
            read_trades(&path, TradeFormat::Parquet, &mut sink).unwrap();
            sink
        };
        let fast = read_keyed(false, false);
        for (narrow, plain_stamps) in [(true, false), (false, true), (true, true)] {
            let other = read_keyed(narrow, plain_stamps);
            prop_assert_eq!(&fast.inner.trades, &other.inner.trades);
            prop_assert_eq!(fast.inner.shown(), other.inner.shown());
            prop_assert_eq!(fast.keyed_rows, other.keyed_rows);
        }
    }
}

/// How one row is laid out in the CSV comparison below.
#[derive(Debug, Clone, Copy)]
enum CsvLayout {
    Plain,
    QuotedId,
    CrLf,
    BlankLineBefore,
    ExtraField,
    NotUtf8,
}

fn csv_layout() -> impl Strategy<Value = CsvLayout> {
    prop_oneof![
        12 => Just(CsvLayout::Plain),
        1 => Just(CsvLayout::QuotedId),
        1 => Just(CsvLayout::CrLf),
        1 => Just(CsvLayout::BlankLineBefore),
        1 => Just(CsvLayout::ExtraField),
        1 => Just(CsvLayout::NotUtf8),
    ]
}

/// The rows as a CSV file whose columns are `order` (indexes into the header's names; a
/// column left out is left out of every line).
fn csv_bytes(rows: &[(RowValues, CsvLayout)], order: &[usize]) -> Vec<u8> {
    let names: Vec<&str> = HEADER.split(',').collect();
    let header: Vec<&str> = order.iter().map(|&k| names[k]).collect();
    let mut out = format!("{}\n", header.join(",")).into_bytes();
    for ((id, date, instrument, buyer, seller, price, quantity, executed), layout) in rows {
        let price = Decimal::from_unscaled(*price, 3).unwrap();
        let executed = executed.as_deref().unwrap_or("");
        let id = match layout {
            CsvLayout::QuotedId => format!("\"{id}\""),
            _ => id.clone(),
        };
        if let CsvLayout::BlankLineBefore = layout {
            out.extend_from_slice(b"\n");
        }
        let fields = [
            id,
            date.to_string(),
            instrument.to_string(),
            buyer.to_string(),
            seller.to_string(),
            price.to_string(),
            quantity.to_string(),
            executed.to_string(),
        ];
        let in_order: Vec<&str> = order.iter().map(|&k| fields[k].as_str()).collect();
        let mut line = in_order.join(",").into_bytes();
        match layout {
            CsvLayout::CrLf => line.push(b'\r'),
            CsvLayout::ExtraField => line.extend_from_slice(b",x"),
            CsvLayout::NotUtf8 => line.insert(line.len() / 2, 0xFF),
            _ => {}
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Plain CSV lines read in blocks, their ids through the key cache, give exactly the trades
    /// and errors of reading every line as a record, and the keys they bring are the sink's.
    #[test]
    fn csv_plain_lines_read_like_records(
        rows in proptest::collection::vec((fast_path_row(), csv_layout()), 1..60),
        order in prop_oneof![
            4 => Just((0..8).collect::<Vec<usize>>()),
            1 => Just((0..8).collect::<Vec<usize>>()).prop_shuffle(),
            1 => Just((0..7).collect::<Vec<usize>>()),
        ],
    ) {
        let (_dir, path) = write_file("t.csv", &csv_bytes(&rows, &order));
        let read = |lines| {
            let mut sink = KeyedCollect::default();
            csv_trades::read_range_with(&path, 0..u64::MAX, 1, &mut sink, lines).unwrap();
            sink
        };
        let plain = read(csv_trades::Lines::Plain);
        let records = read(csv_trades::Lines::RecordByRecord);
        prop_assert_eq!(&plain.inner.trades, &records.inner.trades);
        prop_assert_eq!(plain.inner.shown(), records.inner.shown());
        prop_assert_eq!(records.keyed_rows, 0);
        let plain_good = rows.iter().filter(|r| matches!(r.1, CsvLayout::Plain | CsvLayout::CrLf | CsvLayout::BlankLineBefore)).count();
        prop_assert!(plain.keyed_rows <= plain_good);
    }
}
