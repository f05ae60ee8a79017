//! Session routes (open, close, state) and account reads. Closing is the one route that
//! reaches the end-of-day batch, through [`crate::close::close_session`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use clearhouse_formats::model::BusinessDate;
use clearhouse_formats::money::{AmountMinor, Currency};

use super::{engine_error, error, json, AppState};
use crate::day::{Quiet, RunReport, RunStatus};
use crate::journal;
use crate::ledger::Ledger;
use crate::session::Session;
use crate::EngineError;

fn parse_date(text: &str) -> Result<BusinessDate, Box<Response>> {
    BusinessDate::parse(text).ok_or_else(|| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("{text:?} is not a business date YYYY-MM-DD"),
        ))
    })
}

/// The session left open by an earlier process (stopped or crashed), recovered from its
/// journal: the server goes on where it stopped.
pub(super) fn recover_open(state: &AppState) -> Result<Option<Session>, EngineError> {
    let ledger = Ledger::open(state.data.root())?;
    let mut found: Option<Session> = None;
    for date in state.data.session_dates()? {
        if ledger.posted_digest(date)?.is_some() {
            continue;
        }
        let dir = state.data.journal_dir(date);
        if journal::verify(&dir).is_ok_and(|v| v.sealed) {
            continue;
        }
        let (session, report) = Session::open(&state.data, date, state.session_options.clone())?;
        let torn = report
            .recovery
            .truncated
            .as_ref()
            .map_or(String::new(), |t| {
                format!(
                    "; a torn tail of {} bytes ({} unacknowledged records) was truncated in {}",
                    t.bytes_discarded,
                    t.records_discarded,
                    t.file.display()
                )
            });
        eprintln!(
            "clearhouse: recovered the open session of {date}: {} trades{torn}",
            report.trades_recovered
        );
        if let Some(other) = &found {
            return Err(EngineError::Session(format!(
                "two sessions are open ({} and {date}): close one with `clearhouse close`",
                other.date()
            )));
        }
        found = Some(session);
    }
    Ok(found)
}

pub(super) async fn open(State(state): State<Arc<AppState>>, Path(date): Path<String>) -> Response {
    let date = match parse_date(&date) {
        Ok(date) => date,
        Err(response) => return *response,
    };
    let _admin = state.admin.lock().await;
    if let Some(open) = state.open_session() {
        if open.date() == date {
            return json(
                StatusCode::OK,
                session_json(date, "open", Some(&open), false),
            );
        }
        return error(
            StatusCode::CONFLICT,
            &format!("the session of {} is open: close it first", open.date()),
        );
    }
    let worker = Arc::clone(&state);
    let opened = tokio::task::spawn_blocking(move || open_blocking(&worker, date)).await;
    match opened {
        Ok(Ok(session)) => {
            let session = Arc::new(session);
            let body = session_json(date, "open", Some(&session), true);
            state.set_open(Some(session));
            eprintln!("clearhouse: session {date} opened");
            json(StatusCode::CREATED, body)
        }
        Ok(Err(e)) => engine_error(&e),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, &join.to_string()),
    }
}

fn open_blocking(state: &AppState, date: BusinessDate) -> Result<Session, EngineError> {
    Ok(crate::session::open_checked(&state.data, date, state.session_options.clone())?.0)
}

pub(super) async fn close(
    State(state): State<Arc<AppState>>,
    Path(date): Path<String>,
) -> Response {
    let date = match parse_date(&date) {
        Ok(date) => date,
        Err(response) => return *response,
    };
    let _admin = state.admin.lock().await;
    // From here on no new batch finds the session; batches already in it finish before the
    // seal (their records are written first) or are refused after it.
    let session = match state.open_session() {
        Some(open) if open.date() == date => state.set_open(None),
        _ => None,
    };
    let worker = Arc::clone(&state);
    let closed = tokio::task::spawn_blocking(move || {
        let result =
            crate::close::close_session(&worker.data, date, session.as_deref(), &mut Quiet);
        if let Some(s) = &session {
            let syncs = s.journal_syncs();
            worker
                .metrics
                .fsyncs_closed_sessions
                .fetch_add(syncs, Relaxed);
        }
        result
    })
    .await;
    match closed {
        Ok(Ok(report)) => {
            state.metrics.sessions_closed.fetch_add(1, Relaxed);
            eprintln!(
                "clearhouse: session {date} closed: batch {:?} (exit code {})",
                report.status,
                report.status.exit_code()
            );
            close_response(date, &report)
        }
        Ok(Err(e)) => engine_error(&e),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, &join.to_string()),
    }
}

fn close_response(date: BusinessDate, report: &RunReport) -> Response {
    let (status, code, reason) = match &report.status {
        RunStatus::Posted => ("posted", StatusCode::OK, None),
        RunStatus::AlreadyPosted => ("already_posted", StatusCode::OK, None),
        RunStatus::Rejected => ("rejected", StatusCode::UNPROCESSABLE_ENTITY, None),
        RunStatus::Shortfall { reason } => (
            "shortfall",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(reason.clone()),
        ),
        RunStatus::Conflict { reason } => ("conflict", StatusCode::CONFLICT, Some(reason.clone())),
    };
    let summary = report
        .out_dir
        .as_ref()
        .and_then(|dir| std::fs::read(dir.join("summary.json")).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let body = json!({
        "date": date.to_string(),
        "status": status,
        "exit_code": report.status.exit_code(),
        "reason": reason,
        "rejects": report.rejects.len(),
        "out_dir": report.out_dir.as_ref().map(|d| d.display().to_string()),
        "summary": summary,
    });
    json(code, body.to_string() + "\n")
}

fn session_json(
    date: BusinessDate,
    state: &str,
    session: Option<&Session>,
    created: bool,
) -> String {
    json!({
        "date": date.to_string(),
        "state": state,
        "created": created,
        "trades": session.map(Session::trade_count),
    })
    .to_string()
        + "\n"
}

pub(super) async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(date): Path<String>,
) -> Response {
    let date = match parse_date(&date) {
        Ok(date) => date,
        Err(response) => return *response,
    };
    if let Some(open) = state.open_session().filter(|s| s.date() == date) {
        return json(
            StatusCode::OK,
            session_json(date, "open", Some(&open), false),
        );
    }
    let worker = Arc::clone(&state);
    let found = tokio::task::spawn_blocking(move || -> Result<Response, EngineError> {
        let ledger = Ledger::open(worker.data.root())?;
        if ledger.posted_digest(date)?.is_some() {
            let summary = ledger
                .outputs(date)?
                .into_iter()
                .find(|(name, _)| name == "summary.json")
                .and_then(|(_, bytes)| serde_json::from_slice::<Value>(&bytes).ok());
            let body = json!({ "date": date.to_string(), "state": "posted", "summary": summary });
            return Ok(json(StatusCode::OK, body.to_string() + "\n"));
        }
        let dir = worker.data.journal_dir(date);
        if !dir.is_dir() {
            return Ok(error(
                StatusCode::NOT_FOUND,
                &format!("no session for {date}"),
            ));
        }
        let body = match journal::verify(&dir) {
            Ok(v) => json!({
                "date": date.to_string(),
                "state": if v.sealed { "sealed" } else { "open" },
                "records": v.records,
            }),
            Err(e) => {
                json!({ "date": date.to_string(), "state": "damaged", "error": e.to_string() })
            }
        };
        Ok(json(StatusCode::OK, body.to_string() + "\n"))
    })
    .await;
    match found {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => engine_error(&e),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, &join.to_string()),
    }
}

/// `GET /v1/accounts/{id}`: balances (with frozen and available) and positions as the ledger
/// holds them after the last posted batch.
pub(super) async fn get_account(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
) -> Response {
    if !clearhouse_formats::model::is_valid_id(&account) {
        return error(StatusCode::BAD_REQUEST, "not an account id");
    }
    let worker = Arc::clone(&state);
    let found = tokio::task::spawn_blocking(move || account_json(&worker, &account)).await;
    match found {
        Ok(Ok(Some(body))) => json(StatusCode::OK, body),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no such account in the ledger"),
        Ok(Err(e)) => engine_error(&e),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, &join.to_string()),
    }
}

fn account_json(state: &AppState, account: &str) -> Result<Option<String>, EngineError> {
    let ledger = Ledger::open(state.data.root())?;
    let Some(conn) = ledger.connection() else {
        return Ok(None);
    };
    let sql = |e| EngineError::Ledger(ledger.error(e));
    let bank: Option<String> = conn
        .query_opt("SELECT bank FROM accounts WHERE account = ?1", &[&account])
        .and_then(|row| row.map(|r| r.get(0)).transpose())
        .map_err(sql)?;
    let mut balances = Vec::new();
    let rows = conn
        .query(
            "SELECT currency, balance_minor, frozen_minor FROM balances
             WHERE account = ?1 ORDER BY currency",
            &[&account],
        )
        .map_err(sql)?;
    for row in &rows {
        let code: String = row.get(0).map_err(sql)?;
        let (balance, frozen): (i64, i64) = (row.get(1).map_err(sql)?, row.get(2).map_err(sql)?);
        let text = |minor: i64| match Currency::from_code(&code) {
            Some(c) => c.format(AmountMinor(minor)),
            None => minor.to_string(),
        };
        balances.push(json!({
            "currency": code,
            "balance": text(balance),
            "frozen": text(frozen),
            "available": text(balance - frozen),
            "balance_minor": balance,
        }));
    }
    let mut positions = Vec::new();
    let rows = conn
        .query(
            "SELECT instrument, quantity FROM positions WHERE account = ?1 ORDER BY instrument",
            &[&account],
        )
        .map_err(sql)?;
    for row in &rows {
        let instrument: String = row.get(0).map_err(sql)?;
        let quantity: i64 = row.get(1).map_err(sql)?;
        positions.push(json!({ "instrument": instrument, "quantity": quantity }));
    }
    if bank.is_none() && balances.is_empty() && positions.is_empty() {
        return Ok(None);
    }
    let body = json!({
        "account": account,
        "bank": bank,
        "balances": balances,
        "positions": positions,
    });
    Ok(Some(body.to_string() + "\n"))
}
