//! Trades from CSV: the scanner splits records in place, fields are checked as borrowed text,
//! and nothing is allocated for a good row.

use std::fs::File;
use std::path::Path;

use super::{
    check_text, optional_text, price_from_text, quantity_from_text, Bad, DateMemo, ReadStats,
    TradeSink, BUSINESS_DATE, BUYER, EXECUTED_AT, INSTRUMENT, PRICE, QUANTITY, SELLER,
    TRADE_COLUMNS, TRADE_ID,
};
use crate::csvscan::{read_header, width_error, CsvScanner, Scan};
use crate::fields::UTF8_REASON;
use crate::model::{Location, RowError, TradeFields};
use crate::FormatError;

pub(super) fn read<S: TradeSink>(path: &Path, sink: &mut S) -> Result<ReadStats, FormatError> {
    let io_error = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    // The scanner reads in large blocks itself; a BufReader would only add a copy.
    let file = File::open(path).map_err(io_error)?;
    let mut scanner = CsvScanner::new(file);
    let mut stats = ReadStats::default();
    let layout = match read_header(&mut scanner, path, TRADE_COLUMNS).map_err(io_error)? {
        Ok(layout) => layout,
        Err(errors) => {
            errors.into_iter().for_each(|e| sink.bad_row(e));
            stats.bytes = scanner.bytes_read();
            return Ok(stats);
        }
    };
    // Required columns are present once the header matched; `usize::MAX` marks the absent
    // optional column and reads as an empty field.
    let column = |k: usize| layout.index[k].unwrap_or(usize::MAX);
    let index = [
        column(TRADE_ID),
        column(BUSINESS_DATE),
        column(INSTRUMENT),
        column(BUYER),
        column(SELLER),
        column(PRICE),
        column(QUANTITY),
        column(EXECUTED_AT),
    ];
    let mut dates = DateMemo::default();
    loop {
        let line = match scanner.next_record().map_err(io_error)? {
            Scan::End => break,
            Scan::Malformed { line, reason } => {
                stats.rows += 1;
                sink.bad_row(RowError::new(Location::new(path, line), "", "", "", reason));
                continue;
            }
            Scan::Record(line) => line,
        };
        stats.rows += 1;
        if scanner.len() != layout.width {
            sink.bad_row(width_error(
                Location::new(path, line),
                scanner.len(),
                &layout,
            ));
            continue;
        }
        match decode(&scanner, &index, &mut dates, line, sink) {
            Ok(()) => {}
            Err((bad, trade_id)) => sink.bad_row(bad.into_row_error(path, line, &trade_id)),
        }
    }
    stats.bytes = scanner.bytes_read();
    Ok(stats)
}

/// Decodes the current record and hands it to the sink; on failure returns the problem and the
/// trade id text (for the message).
fn decode<R: std::io::Read, S: TradeSink>(
    scanner: &CsvScanner<R>,
    index: &[usize; 8],
    dates: &mut DateMemo,
    line: u64,
    sink: &mut S,
) -> Result<(), (Bad, String)> {
    let record = match scanner.record() {
        Ok(record) => record,
        Err(field) => {
            let k = index.iter().position(|&i| i == field).unwrap_or(TRADE_ID);
            let shown = scanner.field_str(field).err().unwrap_or_default();
            let trade_id = scanner.field_str(index[TRADE_ID]).unwrap_or("");
            return Err((Bad::new(k, &shown, UTF8_REASON), trade_id.to_owned()));
        }
    };
    let text = index.map(|i| record.get(i));
    let [trade_id, business_date, instrument, buyer, seller, price, quantity, executed_at] = text;
    let executed_at = optional_text(executed_at);
    let fields = check_text(
        dates,
        trade_id,
        business_date,
        instrument,
        buyer,
        seller,
        executed_at,
    )
    .and_then(|()| {
        Ok(TradeFields {
            trade_id,
            business_date,
            instrument,
            buyer,
            seller,
            price: price_from_text(price)?,
            quantity: quantity_from_text(quantity)?,
            executed_at,
        })
    })
    .map_err(|bad| (bad, trade_id.to_owned()))?;
    sink.trade(line, &fields);
    Ok(())
}
