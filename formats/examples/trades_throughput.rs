//! Measures trade reader throughput: `trades_throughput DIR ROWS` writes ROWS synthetic trades
//! in each format under DIR (unless the files exist) and times `read_trades` on each.
//! A third argument such as `csv,parquet` limits the formats.

use std::path::Path;
use std::time::Instant;

use clearhouse_formats::model::{RowError, TradeFields};
use clearhouse_formats::money::Decimal;
use clearhouse_formats::trades::{read_trades, TradeFileWriter, TradeFormat, TradeSink};

#[derive(Default)]
struct Count {
    trades: u64,
    bad: u64,
    quantity: i64,
}

impl TradeSink for Count {
    fn trade(&mut self, _line: u64, fields: &TradeFields<'_>) {
        self.trades += 1;
        self.quantity = self.quantity.wrapping_add(fields.quantity);
    }

    fn bad_row(&mut self, _error: RowError) {
        self.bad += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .map_or("/tmp/clearhouse-throughput", String::as_str),
    );
    let rows: u64 = args.get(2).map_or(Ok(10_000_000), |n| n.parse())?;
    let only = args.get(3).map_or("csv,jsonl,parquet", String::as_str);
    std::fs::create_dir_all(dir)?;
    for format in [TradeFormat::Csv, TradeFormat::Jsonl, TradeFormat::Parquet] {
        if !only.split(',').any(|f| f == format.extension()) {
            continue;
        }
        let path = dir.join(format!("trades-{rows}.{}", format.extension()));
        if !path.exists() {
            let started = Instant::now();
            let mut writer = TradeFileWriter::create(&path, format, 3)?;
            for i in 0..rows {
                let id = format!("T{i:010}");
                let buyer = format!("M{:04}", i % 1000);
                let seller = format!("M{:04}", (i + 1) % 1000);
                let instrument = format!("I{:03}", i % 200);
                writer.write(&TradeFields {
                    trade_id: &id,
                    business_date: "2026-11-25",
                    instrument: &instrument,
                    buyer: &buyer,
                    seller: &seller,
                    price: Decimal::from_unscaled(i128::from(10_000 + i % 5_000), 3)?,
                    quantity: 100 * (1 + (i % 10) as i64),
                    executed_at: Some("2026-11-25T09:30:00.123+08:00"),
                })?;
            }
            writer.finish()?;
            eprintln!("wrote {} in {:.2?}", path.display(), started.elapsed());
        }
        let started = Instant::now();
        let mut sink = Count::default();
        let stats = read_trades(&path, format, &mut sink)?;
        let elapsed = started.elapsed();
        println!(
            "{format:?}: {} rows ({} bad), {:.0} MB in {elapsed:.2?}: {:.0} MB/s, {:.1} M rows/s",
            sink.trades,
            sink.bad,
            stats.bytes as f64 / 1e6,
            stats.bytes as f64 / 1e6 / elapsed.as_secs_f64(),
            sink.trades as f64 / 1e6 / elapsed.as_secs_f64(),
        );
    }
    Ok(())
}
