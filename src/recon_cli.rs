//! `clearhouse reconcile` and `clearhouse suspense assign`: flags to engine calls, the
//! summary on stdout, the outcome to an exit code.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;

use clearhouse_engine::recon::{run_reconcile, ReconOptions, ReconReport, ReconStatus};
use clearhouse_engine::suspense::{assign, AssignStatus};
use clearhouse_formats::model::BusinessDate;

#[derive(Subcommand)]
pub enum SuspenseAction {
    /// Move an unallocated deposit from the suspense account to its owner, as a posted,
    /// audited entry (suspense_assign).
    Assign {
        /// The deposit's bank reference (deposits.csv bank_ref).
        bank_ref: String,
        /// The member who owns it.
        member: String,
        #[arg(long, default_value = "./clearhouse-data")]
        data_dir: PathBuf,
    },
}

/// Breaks and bank-file problems shown on stderr; all of them are in recon.csv.
const SHOWN_MAX: usize = 20;

pub fn reconcile(
    date: &str,
    files: Vec<PathBuf>,
    data_dir: PathBuf,
    out: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let Some(date) = BusinessDate::parse(date) else {
        bail!("{date:?} is not a date YYYY-MM-DD");
    };
    let opts = ReconOptions {
        date,
        files,
        data_dir,
        out_dir: out,
    };
    let report = run_reconcile(&opts).with_context(|| format!("reconciling {date}"))?;
    print_recon(&report);
    Ok(report.status.exit_code() as u8)
}

fn print_recon(report: &ReconReport) {
    let date = report.date;
    let verdict = match &report.status {
        ReconStatus::Clean => "clean".to_string(),
        ReconStatus::Breaks { count } => format!("{count} break(s) (exit 5)"),
        ReconStatus::Rejected { reason } => format!("rejected: {reason} (exit 2)"),
    };
    println!("clearhouse: reconcile {date}: {verdict}");
    for e in report.errors.iter().take(SHOWN_MAX) {
        eprintln!("  {e}");
    }
    if report.errors.len() > SHOWN_MAX {
        eprintln!("  ... and {} more", report.errors.len() - SHOWN_MAX);
    }
    if matches!(report.status, ReconStatus::Rejected { .. }) {
        return;
    }
    for (path, kind) in &report.files {
        println!("  read {} ({kind})", path.display());
    }
    let c = &report.counts;
    println!(
        "  instructions: {} settled, {} failed, {} pending",
        c.settled, c.failed, c.pending
    );
    println!(
        "  bank entries: {} read, {} duplicate, {} matched to instructions, {} deposits, {} unmatched",
        c.entries, c.duplicates, c.matched, c.deposits, c.unmatched
    );
    println!(
        "  statement closing balances checked: {}",
        c.balances_checked
    );
    for id in &report.posted {
        println!("  posted {id}");
    }
    let breaks: Vec<_> = report.breaks().collect();
    for b in breaks.iter().take(SHOWN_MAX) {
        let kind = b.break_kind.map_or("", |k| k.as_str());
        let action = if b.action.is_empty() {
            String::new()
        } else {
            format!(" [{}]", b.action)
        };
        eprintln!(
            "  {kind}: {} {}{action}: {}",
            b.record.as_str(),
            b.id,
            b.detail
        );
    }
    if breaks.len() > SHOWN_MAX {
        eprintln!("  ... and {} more breaks", breaks.len() - SHOWN_MAX);
    }
    if let Some(path) = &report.recon_csv {
        println!("  recon.csv: {}", path.display());
    }
}

pub fn suspense(action: SuspenseAction) -> anyhow::Result<u8> {
    match action {
        SuspenseAction::Assign {
            bank_ref,
            member,
            data_dir,
        } => {
            let report = assign(&data_dir, &bank_ref, &member)
                .with_context(|| format!("assigning deposit {bank_ref} to {member}"))?;
            let amount = report.amount.as_deref().unwrap_or("");
            match &report.status {
                AssignStatus::Assigned => {
                    println!(
                        "clearhouse: deposit {bank_ref} ({amount}) assigned to {member}: entry SUS-{bank_ref} posted under {}",
                        report.business_date.as_deref().unwrap_or("?")
                    );
                    if let (Some(from), Some(to)) = (&report.from_bank, &report.to_bank) {
                        if from != to {
                            println!(
                                "  {member} is held at {to}, the suspense account at {from}: the next batch's bank nets move the money"
                            );
                        }
                    }
                }
                AssignStatus::AlreadyAssigned => println!(
                    "clearhouse: deposit {bank_ref} ({amount}) is already assigned to {member}: nothing changed"
                ),
                AssignStatus::Rejected { reason } => {
                    println!("clearhouse: refused (exit 2): {reason}")
                }
                AssignStatus::Conflict { reason } => {
                    println!("clearhouse: refused (exit 4): {reason}")
                }
            }
            Ok(report.status.exit_code() as u8)
        }
    }
}
