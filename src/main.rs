//! `clearhouse`: the thin command-line front of the engine. It parses flags, calls the
//! engine and maps the outcome to the exit codes of SPEC §5.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use clearhouse_engine::day::{run_day, Observer, RunOptions, RunReport, RunStatus};
use clearhouse_engine::gen::{generate, GenOptions};
use clearhouse_formats::model::BusinessDate;
use clearhouse_formats::money::Currency;
use clearhouse_formats::trades::TradeFormat;

mod market_cli;
mod recon_cli;

#[derive(Parser)]
#[command(
    name = "clearhouse",
    version,
    about = "Exchange-style batch clearing and settlement"
)]
struct Cli {
    /// The ledger, as a postgres:// URL: overrides `ledger` in the data directory's
    /// platform.toml. Without either, the ledger is the SQLite file ledger.sqlite in the data
    /// directory.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "CLEARHOUSE_LEDGER",
        hide_env_values = true
    )]
    ledger: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole business day: validate, net, check funding, post, instruct, write outputs.
    Run {
        /// The day directory (platform.toml, members.csv, instruments.csv, trades*).
        day_dir: PathBuf,
        /// Holds the ledger; the next day's run starts from its balances.
        #[arg(long, default_value = "./clearhouse-data")]
        data_dir: PathBuf,
        /// Where to write the outputs [default: <data-dir>/out/<business_date>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Post the valid rows of a day with invalid ones (still listed in rejects.csv).
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Write again the bank files (ISO 20022) of one phase of a posted batch, byte for byte as
    /// the batch wrote them: pacs009-P<N>-<bank>.xml, pain001-P3-<bank>.xml.
    Instructions {
        /// The business date of the batch, YYYY-MM-DD.
        date: String,
        /// 1 pay-ins, 2 pay-outs, 3 withdrawals.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
        phase: u8,
        #[arg(long, default_value = "./clearhouse-data")]
        data_dir: PathBuf,
        /// Where to write the files [default: <data-dir>/out/<date>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Recompute every balance from the posted entries, check the custody invariant and
    /// verify the journals; exit 6 naming each difference.
    Audit {
        #[arg(long, default_value = "./clearhouse-data")]
        data_dir: PathBuf,
    },
    /// Match the banks' camt.053/054 and confirmation CSV files to a posted date's
    /// instructions; write recon.csv; exit 5 when there are breaks.
    Reconcile {
        /// The business date of the batch, YYYY-MM-DD.
        date: String,
        /// camt.052/053/054 XML (001.02 to 001.08) or `instruction_id,status,bank_ref,amount,currency,reason` CSV.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "./clearhouse-data")]
        data_dir: PathBuf,
        /// Where to write recon.csv [default: <data-dir>/out/<date>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Unallocated deposits booked to the suspense account.
    Suspense {
        #[command(subcommand)]
        action: recon_cli::SuspenseAction,
    },
    /// Load platform.toml, members.csv, instruments.csv (and, for a new ledger, the opening
    /// balances and positions) into the data directory; run again to update the reference
    /// data (never balances).
    Init(market_cli::InitArgs),
    /// Open the market-hours session of a business date.
    Open(market_cli::OpenArgs),
    /// Append trade files to the open session's journal (exit 2 if trades are refused).
    Ingest(market_cli::IngestArgs),
    /// Seal the session's journal and run the end-of-day batch on it (exit codes of `run`).
    Close(market_cli::CloseArgs),
    /// Session journals.
    Journal {
        #[command(subcommand)]
        action: market_cli::JournalAction,
    },
    /// Serve the intake HTTP API until SIGTERM.
    Serve(market_cli::ServeArgs),
    /// Write a synthetic day directory, deterministic by seed (the input of the benchmarks).
    Gen {
        /// The day directory to create.
        out_dir: PathBuf,
        #[arg(long, default_value_t = 1_000)]
        trades: u64,
        #[arg(long, default_value_t = 100)]
        members: u32,
        #[arg(long, default_value_t = 50)]
        instruments: u32,
        #[arg(long, default_value_t = 3)]
        banks: u32,
        /// Comma-separated ISO 4217 codes.
        #[arg(long, default_value = "CNY,USD", value_delimiter = ',')]
        currencies: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        /// The business date of the trades.
        #[arg(long, default_value = "2026-11-25")]
        date: String,
        /// Split the trades over this many files.
        #[arg(long, default_value_t = 1)]
        files: u32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
    Parquet,
}

/// Exit code of an audit that found differences.
const AUDIT_DIFFERENCES: u8 = 6;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("clearhouse: error: {}", error_text(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text its parent already
/// quotes (library errors that print their source, as SQLite's do, would otherwise say it twice).
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    if let Some(url) = &cli.ledger {
        clearhouse_engine::ledger::set_url(url)?;
    }
    match cli.command {
        Command::Run {
            day_dir,
            data_dir,
            out,
            skip_invalid,
        } => {
            let opts = RunOptions {
                day_dir,
                data_dir,
                out_dir: out,
                skip_invalid,
            };
            let mut progress = Progress::new();
            let report = run_day(&opts, &mut progress)
                .with_context(|| format!("running {}", opts.day_dir.display()))?;
            progress.finish();
            print_report(&report);
            Ok(report.status.exit_code() as u8)
        }
        Command::Instructions {
            date,
            phase,
            data_dir,
            out,
        } => {
            let Some(date) = BusinessDate::parse(&date) else {
                bail!("{date:?} is not a date YYYY-MM-DD");
            };
            let done =
                clearhouse_engine::payment_files::reemit(&data_dir, date, phase, out.as_deref())
                    .with_context(|| format!("re-emitting phase {phase} of {date}"))?;
            if done.posted_without_bank_files {
                bail!(
                    "business date {date} was posted before bank files were written; \
                     its instructions are in instructions.csv only"
                );
            } else if done.files.is_empty() {
                println!("clearhouse: business date {date} phase {phase}: no instructions");
            } else {
                println!(
                    "clearhouse: business date {date} phase {phase}: {} file(s) in {}",
                    done.files.len(),
                    done.out_dir.display()
                );
                for name in &done.files {
                    println!("  {name}");
                }
            }
            Ok(0)
        }
        Command::Audit { data_dir } => {
            let report = clearhouse_engine::audit::audit(&data_dir)
                .with_context(|| format!("auditing {}", data_dir.display()))?;
            println!(
                "clearhouse audit: {} batches, {} entries, {} balances, {} positions, {} bank/currency custody checks, {} journals ({} records)",
                report.batches,
                report.entries,
                report.balances_checked,
                report.positions_checked,
                report.banks_checked,
                report.journals_verified,
                report.journal_records
            );
            for d in &report.differences {
                println!("  DIFFERENCE: {d}");
            }
            if report.is_clean() {
                println!("  clean");
                Ok(0)
            } else {
                Ok(AUDIT_DIFFERENCES)
            }
        }
        Command::Reconcile {
            date,
            files,
            data_dir,
            out,
        } => recon_cli::reconcile(&date, files, data_dir, out),
        Command::Suspense { action } => recon_cli::suspense(action),
        Command::Init(args) => market_cli::run_init(args),
        Command::Open(args) => market_cli::run_open(args),
        Command::Ingest(args) => market_cli::run_ingest(args),
        Command::Close(args) => {
            let mut progress = Progress::new();
            let report = market_cli::run_close(args, &mut progress)?;
            progress.finish();
            print_report(&report);
            Ok(report.status.exit_code() as u8)
        }
        Command::Journal { action } => market_cli::run_journal(action),
        Command::Serve(args) => market_cli::run_serve(args),
        Command::Gen {
            out_dir,
            trades,
            members,
            instruments,
            banks,
            currencies,
            seed,
            format,
            date,
            files,
        } => {
            let currencies = currencies
                .iter()
                .map(|c| Currency::from_code(c).with_context(|| format!("unknown currency {c}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let Some(business_date) = BusinessDate::parse(&date) else {
                bail!("--date {date:?} is not a date YYYY-MM-DD");
            };
            let opts = GenOptions {
                out_dir,
                trades,
                members,
                instruments,
                banks,
                currencies,
                seed,
                format: match format {
                    Format::Csv => TradeFormat::Csv,
                    Format::Jsonl => TradeFormat::Jsonl,
                    Format::Parquet => TradeFormat::Parquet,
                },
                business_date,
                files,
            };
            let bar = Progress::counter(trades);
            generate(&opts, |done| {
                if let Some(bar) = &bar {
                    bar.set_position(done);
                }
            })?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            println!("wrote {} trades to {}", trades, opts.out_dir.display());
            Ok(0)
        }
    }
}

/// A spinner naming the current stage, shown only when stderr is a terminal.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress { bar }
    }

    fn counter(total: u64) -> Option<ProgressBar> {
        std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} trades ({per_sec}, {eta})")
            {
                bar.set_style(style);
            }
            bar
        })
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn stage(&mut self, name: &'static str) {
        if let Some(bar) = &self.bar {
            bar.set_message(name);
        }
    }
}

/// Rejected rows shown on stderr; all of them are in rejects.csv.
const REJECTS_SHOWN_MAX: usize = 20;

fn print_report(report: &RunReport) {
    let date = report
        .business_date
        .map_or_else(|| "unknown".to_string(), |d| d.to_string());
    let verdict = match &report.status {
        RunStatus::Posted => "posted".to_string(),
        RunStatus::AlreadyPosted => {
            "already posted with this input: nothing changed, outputs written again".to_string()
        }
        RunStatus::Rejected => "rejected: input invalid, nothing posted (exit 2)".to_string(),
        RunStatus::Shortfall { reason } => format!("not posted: {reason} (exit 3)"),
        RunStatus::Conflict { reason } => format!("conflict: {reason} (exit 4)"),
    };
    println!("clearhouse: business date {date}: {verdict}");
    for r in report.rejects.iter().take(REJECTS_SHOWN_MAX) {
        eprintln!("  {r}");
    }
    if report.rejects.len() > REJECTS_SHOWN_MAX {
        eprintln!(
            "  ... and {} more invalid rows",
            report.rejects.len() - REJECTS_SHOWN_MAX
        );
    }
    if let Some(s) = &report.summary {
        let t = &s.trades;
        println!(
            "  trades: {} rows, {} netted, {} duplicates, {} rejected",
            t.rows, t.netted, t.duplicates, t.rejected
        );
        println!(
            "  members netted: {}, instruments: {} (quantities conserve: {})",
            s.members_netted, s.instruments_netted, s.quantity_conservation
        );
        for (code, c) in &s.currencies {
            println!(
                "  {code}: traded {}, fees {}, Σ nets + fees = 0: {}, pay-in {} = pay-out {}",
                c.traded_amount, c.fees_total, c.conservation, c.pay_in_total, c.pay_out_total
            );
        }
        println!(
            "  instructions: {}, shortfalls covered: {}",
            s.instructions, s.defaults
        );
    }
    if let Some(dir) = &report.out_dir {
        println!("  outputs: {}", dir.display());
    }
    let total: Duration = report.timings.iter().map(|(_, d)| *d).sum();
    let stages: Vec<String> = report
        .timings
        .iter()
        .map(|(name, d)| format!("{name} {:.3}s", d.as_secs_f64()))
        .collect();
    println!(
        "  elapsed {:.3}s: {}",
        total.as_secs_f64(),
        stages.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use std::fmt;

    /// An error that prints its source in its own message, as rusqlite's do.
    #[derive(Debug)]
    struct Quoting(std::io::Error);

    impl fmt::Display for Quoting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "ledger x.sqlite: {}", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_its_parent_quotes_is_said_once() {
        let io = std::io::Error::other("disk I/O error");
        let err = anyhow::Error::new(Quoting(io)).context("running day1");
        assert_eq!(
            error_text(&err),
            "running day1: ledger x.sqlite: disk I/O error"
        );
        let plain = anyhow::anyhow!("no such file").context("reading members.csv");
        assert_eq!(error_text(&plain), "reading members.csv: no such file");
    }
}
