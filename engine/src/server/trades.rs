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
use axum::extract::State;
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

pub(super) async fn post_trades(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let metrics = Arc::clone(&state.metrics);
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
    let status = if outcome.accepted {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    json(status, render(&outcome))
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
}
