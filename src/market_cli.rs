//! Market-hours subcommands: `init`, `open`, `ingest`, `close`, `journal verify`, `serve`.
//! Flags in, engine calls, a short report and an exit code out; the work is in the engine.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use clearhouse_engine::close::close_session;
use clearhouse_engine::datadir::DataDir;
use clearhouse_engine::init::{init, OpeningOutcome};
use clearhouse_engine::server::{serve, Limits, ServeOptions};
use clearhouse_engine::session::{ingest::ingest, open_checked, verify, SessionOptions};
use clearhouse_formats::model::BusinessDate;

/// Exit code of `ingest` when trades were refused, as `run` for bad input.
const REFUSED: u8 = 2;
/// Exit code of `journal verify` when a journal is damaged (as `audit` for differences).
const DAMAGED: u8 = 6;

#[derive(Args)]
pub struct InitArgs {
    /// A day directory without trades: platform.toml, members.csv, instruments.csv and, for a
    /// new ledger, opening_balances.csv / opening_positions.csv.
    ref_dir: PathBuf,
    #[arg(long, default_value = "./clearhouse-data")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct OpenArgs {
    /// The business date, YYYY-MM-DD.
    date: String,
    #[arg(long, default_value = "./clearhouse-data")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct IngestArgs {
    /// Trade files (.csv, .jsonl, .parquet), SPEC §2.4.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, default_value = "./clearhouse-data")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct CloseArgs {
    /// The business date, YYYY-MM-DD.
    date: String,
    #[arg(long, default_value = "./clearhouse-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
pub enum JournalAction {
    /// Check every CRC, the hash chain, every record and each session header; exit 6 if a
    /// journal is damaged (the message names the segment file and the byte offset). Strict: a
    /// torn tail left by a crash counts as damage until the session is recovered (the next
    /// `serve`, `open`, `ingest` or `close` truncates it).
    Verify {
        #[arg(long, default_value = "./clearhouse-data")]
        data_dir: PathBuf,
        /// Only these business dates [default: every journal of the data directory].
        dates: Vec<String>,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "./clearhouse-data")]
    data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Largest request body accepted (413 above).
    #[arg(long, default_value_t = Limits::default().body_bytes_max)]
    max_body_bytes: usize,
    /// Most trades in one POST /v1/trades (413 above).
    #[arg(long, default_value_t = Limits::default().trades_per_request_max)]
    max_trades_per_request: usize,
    /// Most open connections (429 above).
    #[arg(long, default_value_t = Limits::default().connections_max)]
    max_connections: usize,
    /// Event-loop threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn date(text: &str) -> anyhow::Result<BusinessDate> {
    match BusinessDate::parse(text) {
        Some(d) => Ok(d),
        None => bail!("{text:?} is not a date YYYY-MM-DD"),
    }
}

pub fn run_init(args: InitArgs) -> anyhow::Result<u8> {
    let data = DataDir::new(&args.data_dir);
    let report = init(&args.ref_dir, &data)
        .with_context(|| format!("init from {}", args.ref_dir.display()))?;
    if !report.is_ok() {
        println!("clearhouse init: reference data rejected, nothing changed (exit 2)");
        for r in &report.rejects {
            eprintln!("  {r}");
        }
        return Ok(REFUSED);
    }
    println!(
        "clearhouse init: {} members, {} instruments, {} tokens in {}",
        report.members,
        report.instruments,
        report.tokens,
        data.root().display()
    );
    match report.opening {
        OpeningOutcome::NoneGiven => {}
        OpeningOutcome::Posted {
            balances,
            positions,
        } => println!(
            "  opening posted to the new ledger: {balances} balances, {positions} positions"
        ),
        OpeningOutcome::IgnoredLedgerInUse => println!(
            "  opening files ignored: the ledger already holds balances (init never changes them)"
        ),
    }
    Ok(0)
}

pub fn run_open(args: OpenArgs) -> anyhow::Result<u8> {
    let date = date(&args.date)?;
    let data = DataDir::new(&args.data_dir);
    let _lock = data.lock()?;
    let (session, report) = open_checked(&data, date, SessionOptions::default())
        .with_context(|| format!("opening the session of {date}"))?;
    let trades = session.trade_count();
    session.shutdown()?;
    let verb = if report.created {
        "opened"
    } else {
        "already open"
    };
    println!("clearhouse: session {date} {verb} ({trades} trades)");
    Ok(0)
}

pub fn run_ingest(args: IngestArgs) -> anyhow::Result<u8> {
    let data = DataDir::new(&args.data_dir);
    let report = ingest(&data, &args.files, SessionOptions::default()).context("ingest")?;
    let date = report.date.map_or_else(String::new, |d| d.to_string());
    println!(
        "clearhouse ingest: session {date}: {} trades read, {} created, {} already existed, {} batches",
        report.trades_read, report.created, report.already_existed, report.batches
    );
    if report.is_ok() {
        return Ok(0);
    }
    println!(
        "  {} trades refused: nothing of a refused batch was appended",
        report.refused_count
    );
    for line in &report.refused {
        eprintln!("  {line}");
    }
    Ok(REFUSED)
}

pub fn run_close(
    args: CloseArgs,
    observer: &mut dyn clearhouse_engine::day::Observer,
) -> anyhow::Result<clearhouse_engine::day::RunReport> {
    let date = date(&args.date)?;
    let data = DataDir::new(&args.data_dir);
    let _lock = data.lock()?;
    close_session(&data, date, None, observer).with_context(|| format!("closing {date}"))
}

pub fn run_journal(action: JournalAction) -> anyhow::Result<u8> {
    let JournalAction::Verify { data_dir, dates } = action;
    let data = DataDir::new(&data_dir);
    let dates = if dates.is_empty() {
        data.session_dates()?
    } else {
        dates
            .iter()
            .map(|d| date(d))
            .collect::<anyhow::Result<_>>()?
    };
    if dates.is_empty() {
        println!(
            "clearhouse journal verify: no journal in {}",
            data_dir.display()
        );
        return Ok(0);
    }
    let mut damaged = 0;
    for d in dates {
        match verify(&data, d) {
            Ok(v) => {
                let chain: String = v.chain.iter().map(|b| format!("{b:02x}")).collect();
                println!(
                    "journal {d}: ok, {} records, {} segments, {}, chain {chain}",
                    v.records,
                    v.segments,
                    if v.sealed { "sealed" } else { "open" }
                );
            }
            Err(e) => {
                damaged += 1;
                println!("journal {d}: DAMAGED: {e}");
            }
        }
    }
    Ok(if damaged == 0 { 0 } else { DAMAGED })
}

pub fn run_serve(args: ServeArgs) -> anyhow::Result<u8> {
    let options = ServeOptions {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        limits: Limits {
            body_bytes_max: args.max_body_bytes,
            trades_per_request_max: args.max_trades_per_request,
            connections_max: args.max_connections.max(1),
        },
        session: SessionOptions {
            batch_trades_max: args.max_trades_per_request,
            ..SessionOptions::default()
        },
        worker_threads: args.workers,
    };
    // Whoever started the server may have stopped reading its output: a closed pipe must not
    // turn a clean shutdown into a panic.
    serve(options, |addr| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "clearhouse: listening on http://{addr}");
        let _ = out.flush();
    })
    .with_context(|| format!("serving {}", args.data_dir.display()))?;
    let _ = writeln!(std::io::stdout(), "clearhouse: stopped");
    Ok(0)
}
