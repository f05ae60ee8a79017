//! `clearhouse serve`: the market-hours intake server (tokio + axum, HTTP/1.1).
//!
//! | route | role | what |
//! |---|---|---|
//! | `POST /v1/sessions/{date}/open` | operator | open the session of a business date |
//! | `POST /v1/sessions/{date}/close` | operator | seal its journal, run the batch, return its summary |
//! | `GET /v1/sessions/{date}` | submit | state of a session (open, sealed, posted) |
//! | `POST /v1/trades` | submit | a JSON array or NDJSON body of trades; all accepted or all refused; `?results=compact` answers an accepted batch without a result per trade |
//! | `GET /v1/accounts/{id}` | submit | balances and positions of an account in the ledger |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /healthz` | none | `ok` |
//!
//! Every `/v1` request needs `Authorization: Bearer <token>`, checked before its body is read
//! ([`auth`]): 401 without a configured token, 403 when its role is not enough. Limits: body
//! size (413), trades per request (413), open connections (429 at accept). Work that blocks
//! (validation, the journal's fsync, the batch) runs on tokio's blocking pool, never on the
//! event loop. SIGTERM or SIGINT stops accepting connections, lets in-flight requests finish
//! (an accepted batch is answered only once durable, so nothing half-written is
//! acknowledged), then closes the journal cleanly.
//!
//! The server holds the data directory's lock for its lifetime: `ingest`, `close` and `init`
//! cannot write behind its back.
//!
//! Module boundary: [`trades`] is the intake path and reaches only the session's append side;
//! [`sessions`] (operator) is the one place that reaches the batch, through
//! [`crate::close::close_session`].

pub mod auth;
mod listener;
pub mod metrics;
mod sessions;
mod trades;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use clearhouse_formats::tokens::{read_tokens, Role};

use crate::datadir::DataDir;
use crate::session::{Session, SessionOptions};
use crate::EngineError;

use auth::Tokens;
use metrics::Metrics;

/// Bounds of the server; over one is a clear 4xx, never a crash.
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes_max: usize,
    pub trades_per_request_max: usize,
    pub connections_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 50,000 trades of ~190 bytes fit; 256 connections can then hold at most 4 GiB.
            body_bytes_max: 16 << 20,
            trades_per_request_max: 50_000,
            connections_max: 256,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub limits: Limits,
    pub session: SessionOptions,
    /// Tokio worker threads (the blocking pool is separate).
    pub worker_threads: usize,
}

/// Shared by every handler.
pub(crate) struct AppState {
    data: DataDir,
    tokens: Tokens,
    limits: Limits,
    session_options: SessionOptions,
    /// The open session, if any: at most one at a time.
    open: RwLock<Option<Arc<Session>>>,
    /// Serialises open and close, which take their time; intake goes on meanwhile.
    admin: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl AppState {
    fn open_session(&self) -> Option<Arc<Session>> {
        self.open.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_open(&self, session: Option<Arc<Session>>) -> Option<Arc<Session>> {
        let mut slot = self.open.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *slot, session)
    }
}

/// Runs the server until SIGTERM or SIGINT. `ready` is told the bound address (port 0 picks
/// a free one) once connections are accepted.
pub fn serve(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), EngineError> {
    let data = DataDir::new(&options.data_dir);
    let lock = data.lock()?;
    let state = prepare(&data, &options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.worker_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| EngineError::io(&options.data_dir, e))?;
    let state = Arc::new(state);
    runtime.block_on(run(Arc::clone(&state), options.listen, ready))?;
    // Every request has finished: the session (if one is open) is closed cleanly, unsealed.
    if let Some(session) = state.set_open(None) {
        match Arc::try_unwrap(session) {
            Ok(session) => session.shutdown()?,
            Err(still_shared) => drop(still_shared),
        }
    }
    drop(lock);
    Ok(())
}

/// Reads the tokens and recovers the open session, if any.
fn prepare(data: &DataDir, options: &ServeOptions) -> Result<AppState, EngineError> {
    if !data.has_reference() {
        return Err(EngineError::Session(format!(
            "no reference data in {}: run `clearhouse init REF_DIR --data-dir {}` first",
            data.root().display(),
            data.root().display()
        )));
    }
    let platform = data.reference_file("platform.toml");
    let tokens = match read_tokens(&platform)? {
        Ok(tokens) => tokens,
        Err(errors) => {
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(EngineError::Session(shown.join("; ")));
        }
    };
    let state = AppState {
        data: data.clone(),
        tokens: Tokens::new(tokens),
        limits: options.limits.clone(),
        session_options: options.session.clone(),
        open: RwLock::new(None),
        admin: tokio::sync::Mutex::new(()),
        metrics: Arc::new(Metrics::default()),
    };
    if let Some(session) = sessions::recover_open(&state)? {
        state.set_open(Some(Arc::new(session)));
    }
    Ok(state)
}

async fn run(
    state: Arc<AppState>,
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), EngineError> {
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| EngineError::Session(format!("cannot listen on {listen}: {e}")))?;
    let local = tcp
        .local_addr()
        .map_err(|e| EngineError::Session(format!("cannot listen on {listen}: {e}")))?;
    let listener = listener::LimitedListener::new(
        tcp,
        state.limits.connections_max,
        Arc::clone(&state.metrics),
    );
    let app = router(Arc::clone(&state));
    // Handlers are installed before anyone is told the address: a SIGTERM sent right after
    // start must stop the server gracefully, not kill it.
    let stop = shutdown_signal()?;
    ready(local);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| EngineError::Session(format!("server on {local}: {e}")))
}

fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/trades", post(trades::post_trades))
        .route("/v1/sessions/{date}", get(sessions::get_session))
        .route("/v1/sessions/{date}/open", post(sessions::open))
        .route("/v1/sessions/{date}/close", post(sessions::close))
        .route("/v1/accounts/{id}", get(sessions::get_account))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authorize,
        ));
    Router::new()
        .merge(v1)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(state.limits.body_bytes_max))
        .with_state(state)
}

/// Checks the bearer token before the handler (and before the body is read).
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let operator =
        request.method() == Method::POST && (path.ends_with("/open") || path.ends_with("/close"));
    let needed = if operator {
        Role::Operator
    } else {
        Role::Submit
    };
    match state.tokens.authorize(request.headers(), needed) {
        Ok(_) => next.run(request).await,
        Err(denied) => {
            let counter = match denied {
                auth::Denied::Unauthenticated(_) => &state.metrics.unauthorized,
                auth::Denied::Forbidden { .. } => &state.metrics.forbidden,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut response = error(denied.status(), &denied.message());
            if denied.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let open = state.open_session();
    let fsyncs = open.as_ref().map_or(0, |s| s.journal_syncs());
    let date = open.as_ref().map(|s| s.date().to_string());
    let text = state.metrics.render(fsyncs, date.as_deref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Resolves on SIGTERM or SIGINT; both handlers are installed when this returns.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, EngineError> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind| {
        signal(kind).map_err(|e| EngineError::Session(format!("cannot handle signals: {e}")))
    };
    let mut term = install(SignalKind::terminate())?;
    let mut int = install(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// A JSON response of the given status.
pub(crate) fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        serde_json::json!({ "error": message }).to_string() + "\n",
    )
}

/// The response for an engine error: a session state problem is a 409, anything else a 500
/// (the message says what and where).
pub(crate) fn engine_error(e: &EngineError) -> Response {
    match e {
        EngineError::Session(message) => error(StatusCode::CONFLICT, message),
        EngineError::Journal(crate::journal::JournalError::RecordTooLarge { .. }) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{e}: send fewer trades per request"),
        ),
        other => {
            // The client sees the message too; the operator needs it in the log.
            eprintln!("clearhouse: error: {other}");
            error(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string())
        }
    }
}
