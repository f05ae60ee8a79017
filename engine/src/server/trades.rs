//! `POST /v1/trades`: the HTTP intake path. A body of trades (JSON array or NDJSON) is read
//! into one session batch and committed; the answer comes once the batch is durable.
//!
//! This module reaches the reference data, the session's append side and the journal, and
//! nothing of the batch: no netting, posting or instructions (ARCHITECTURE.md).

use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use clearhouse_formats::trades::{read_json_body, BodyError};

use super::{engine_error, error, json, AppState};
use crate::session::{BatchOutcome, TradeStatus};
use crate::EngineError;

/// What a body is called in the reasons of its refused trades.
const SOURCE: &str = "request";

enum Failure {
    Body(BodyError),
    Engine(EngineError),
}

/// How the per-trade results of an accepted batch are listed (`?results=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Results {
    /// One object per trade (the default).
    Full,
    /// Counts and the rows that already existed; every other row was created. A refused
    /// batch is always answered in full: its reasons are per trade.
    Compact,
}

fn results_form(query: Option<&str>) -> Result<Results, String> {
    let mut form = Results::Full;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        form = match pair {
            "results=full" => Results::Full,
            "results=compact" => Results::Compact,
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}: only results=full or results=compact"
                ))
            }
        };
    }
    Ok(form)
}

pub(super) async fn post_trades(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let metrics = Arc::clone(&state.metrics);
    let form = match results_form(query.as_deref()) {
        Ok(form) => form,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            metrics.over_limit.fetch_add(1, Relaxed);
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "body larger than {} bytes: split the batch",
                    state.limits.body_bytes_max
                )
            } else {
                rejection.body_text()
            };
            return error(status, &message);
        }
    };
    let Some(session) = state.open_session() else {
        return error(
            StatusCode::CONFLICT,
            "no session is open: POST /v1/sessions/{date}/open first",
        );
    };
    let trades_max = state.limits.trades_per_request_max;
    let work = tokio::task::spawn_blocking(move || {
        let mut batch = session.start_batch_sized(Path::new(SOURCE), body.len());
        read_json_body(&body, Path::new(SOURCE), trades_max, &mut batch).map_err(Failure::Body)?;
        session.commit(batch).map_err(Failure::Engine)
    });
    let outcome = match work.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(Failure::Body(e @ BodyError::TooManyTrades { .. }))) => {
            metrics.over_limit.fetch_add(1, Relaxed);
            return error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string());
        }
        Ok(Err(Failure::Body(e))) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(Err(Failure::Engine(e))) => return engine_error(&e),
        Err(join) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("batch task failed: {join}"),
            )
        }
    };
    record(&state, &outcome);
    metrics.observe_batch(started.elapsed());
    if !outcome.accepted {
        return json(StatusCode::UNPROCESSABLE_ENTITY, render(&outcome));
    }
    let text = match form {
        Results::Full => render(&outcome),
        Results::Compact => render_compact(&outcome),
    };
    json(StatusCode::OK, text)
}

fn record(state: &AppState, outcome: &BatchOutcome) {
    let m = &state.metrics;
    if outcome.accepted {
        m.batches_accepted.fetch_add(1, Relaxed);
    } else {
        m.batches_refused.fetch_add(1, Relaxed);
    }
    m.trades_created.fetch_add(outcome.created, Relaxed);
    m.trades_already_existed
        .fetch_add(outcome.already_existed, Relaxed);
    m.trades_refused.fetch_add(outcome.refused, Relaxed);
    if outcome.bytes_appended > 0 {
        m.appends.fetch_add(1, Relaxed);
        m.append_bytes.fetch_add(outcome.bytes_appended, Relaxed);
    }
}

/// `{"accepted":…, "created":…, "already_existed":…, "refused":…, "results":[…]}`, one
/// result per trade in batch order. Written by hand: a batch has up to tens of thousands.
fn render(outcome: &BatchOutcome) -> String {
    let mut out = String::with_capacity(96 + outcome.results.len() * 48);
    let _ = write!(
        out,
        "{{\"accepted\":{},\"created\":{},\"already_existed\":{},\"refused\":{},\"results\":[",
        outcome.accepted, outcome.created, outcome.already_existed, outcome.refused
    );
    for (i, r) in outcome.results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Ids are `[A-Za-z0-9_-]` or empty (an unreadable id), so they need no escaping.
        let _ = write!(
            out,
            "{{\"row\":{},\"trade_id\":\"{}\",\"status\":\"{}\"",
            r.row,
            r.trade_id,
            r.status.as_str()
        );
        if let TradeStatus::Refused(reason) = &r.status {
            let _ = write!(
                out,
                ",\"reason\":{}",
                serde_json::Value::String(reason.clone())
            );
        }
        out.push('}');
    }
    out.push_str("]}\n");
    out
}

/// The compact answer of an accepted batch: `{"accepted":true,"created":…,
/// "already_existed":…,"refused":0,"rows":…,"already_existed_rows":[…]}`; every row of the batch
/// not listed was created. A few bytes per batch instead of ~50 per trade.
fn render_compact(outcome: &BatchOutcome) -> String {
    assert!(outcome.accepted, "a refused batch is answered in full");
    let mut out = String::with_capacity(128 + outcome.already_existed as usize * 8);
    let _ = write!(
        out,
        "{{\"accepted\":true,\"created\":{},\"already_existed\":{},\"refused\":0,\"rows\":{},\"already_existed_rows\":[",
        outcome.created,
        outcome.already_existed,
        outcome.results.len()
    );
    let existed = outcome
        .results
        .iter()
        .filter(|r| r.status == TradeStatus::AlreadyExisted);
    for (i, r) in existed.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", r.row);
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::TradeResult;

    #[test]
    fn renders_valid_json() {
        let outcome = BatchOutcome {
            accepted: false,
            created: 0,
            already_existed: 0,
            refused: 1,
            results: vec![
                TradeResult {
                    row: 1,
                    trade_id: "T1".into(),
                    status: TradeStatus::NotApplied,
                },
                TradeResult {
                    row: 2,
                    trade_id: String::new(),
                    status: TradeStatus::Refused("column price: value \"1\\\"\": bad".into()),
                },
            ],
            bytes_appended: 0,
        };
        let value: serde_json::Value = serde_json::from_str(&render(&outcome)).unwrap();
        assert_eq!(value["results"][1]["status"], "refused");
        assert_eq!(
            value["results"][1]["reason"],
            "column price: value \"1\\\"\": bad"
        );
        assert_eq!(value["accepted"], false);
    }

    #[test]
    fn compact_lists_only_rows_that_existed() {
        let result = |row, status| TradeResult {
            row,
            trade_id: format!("T{row}"),
            status,
        };
        let outcome = BatchOutcome {
            accepted: true,
            created: 2,
            already_existed: 1,
            refused: 0,
            results: vec![
                result(1, TradeStatus::Created),
                result(3, TradeStatus::AlreadyExisted),
                result(4, TradeStatus::Created),
            ],
            bytes_appended: 100,
        };
        let value: serde_json::Value = serde_json::from_str(&render_compact(&outcome)).unwrap();
        assert_eq!(value["created"], 2);
        assert_eq!(value["rows"], 3);
        assert_eq!(value["already_existed_rows"], serde_json::json!([3]));
        assert!(value.get("results").is_none());
    }

    #[test]
    fn results_form_is_full_unless_asked() {
        assert_eq!(results_form(None), Ok(Results::Full));
        assert_eq!(results_form(Some("results=compact")), Ok(Results::Compact));
        assert_eq!(results_form(Some("results=full")), Ok(Results::Full));
        assert!(results_form(Some("results=short")).is_err());
        assert!(results_form(Some("x=1")).is_err());
    }
}
