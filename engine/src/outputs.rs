//! Rendering the batch's outputs (SPEC §4) into file contents, and writing them so that a
//! reader never sees half a file.
//!
//! Input: the results of every stage. Output: `(file name, bytes)` pairs, sorted by name.
//! Rendering is pure: the same results give byte-identical files.

use std::path::{Path, PathBuf};

use clearhouse_formats::model::RowError;
use clearhouse_formats::money::{AmountMinor, Currency};
use clearhouse_formats::table::{
    push_amount_text, push_int_text, Cell, ColumnKind, CsvTableWriter, ParquetTableWriter,
    TableError, TableSpec,
};

use crate::banks::BankNet;
use crate::book::{kind, Book, PostedLeg, Postings};
use crate::funding::{Shortfall, ShortfallAsset, ShortfallKind};
use crate::instructions::Instruction;
use crate::netting::Nets;
use crate::posting::Default;
use crate::reference::RefData;
use crate::EngineError;

use ColumnKind::{Amount, Int, Text};

pub const MEMBER_POSITIONS: TableSpec = TableSpec {
    name: "member_positions",
    columns: &[
        ("member_id", Text),
        ("currency", Text),
        ("bought_amount", Amount),
        ("sold_amount", Amount),
        ("fees", Amount),
        ("net_amount", Amount),
    ],
};

pub const SECURITY_POSITIONS: TableSpec = TableSpec {
    name: "security_positions",
    columns: &[
        ("member_id", Text),
        ("instrument", Text),
        ("bought_quantity", Int),
        ("sold_quantity", Int),
        ("net_quantity", Int),
    ],
};

pub const BANK_POSITIONS: TableSpec = TableSpec {
    name: "bank_positions",
    columns: &[("bank", Text), ("currency", Text), ("net_amount", Amount)],
};

pub const INSTRUCTIONS: TableSpec = TableSpec {
    name: "instructions",
    columns: &[
        ("instruction_id", Text),
        ("phase", Int),
        ("kind", Text),
        ("currency", Text),
        ("amount", Amount),
        ("debit_bank", Text),
        ("debit_account", Text),
        ("credit_bank", Text),
        ("credit_account", Text),
        // Not in SPEC §4: added last so that readers by position keep working (README).
        ("channel", Text),
    ],
};

pub const BALANCES: TableSpec = TableSpec {
    name: "balances",
    columns: &[
        ("account", Text),
        ("currency", Text),
        ("balance", Amount),
        ("frozen", Amount),
        ("withdrawable", Amount),
    ],
};

/// Amounts here are money or quantities depending on the entry kind, so they are text.
pub const POSTINGS: TableSpec = TableSpec {
    name: "postings",
    columns: &[
        ("entry_id", Text),
        ("kind", Text),
        ("account", Text),
        ("asset", Text),
        ("amount", Text),
    ],
};

pub const REJECTS: TableSpec = TableSpec {
    name: "rejects",
    columns: &[
        ("source", Text),
        ("line", Int),
        ("id", Text),
        ("reason", Text),
    ],
};

pub const SHORTFALLS: TableSpec = TableSpec {
    name: "shortfalls",
    columns: &[
        ("member_id", Text),
        ("kind", Text),
        ("asset", Text),
        ("required", Text),
        ("available", Text),
        ("shortfall", Text),
    ],
};

pub const DEFAULTS: TableSpec = TableSpec {
    name: "defaults",
    columns: &[
        ("member_id", Text),
        ("kind", Text),
        ("asset", Text),
        ("shortfall", Text),
        ("covered_by", Text),
        ("withheld_quantity", Int),
    ],
};

/// Rows of a large table rendered before its buffer is sized by their average length.
const SAMPLE_ROWS: usize = 1024;

/// Rendered output files: `(file name, content)`.
pub type Files = Vec<(String, Vec<u8>)>;

/// Which files of a table to render: a large table's CSV and Parquet files can be rendered
/// on two threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFiles {
    Csv,
    Parquet,
}

/// A table rendered as CSV, as Parquet, or as both.
struct Table {
    spec: TableSpec,
    csv: Option<CsvTableWriter>,
    parquet: Option<ParquetTableWriter>,
}

impl Table {
    /// The CSV file, and the Parquet file too when `parquet` is set.
    fn new(spec: TableSpec, parquet: bool) -> Result<Table, EngineError> {
        Table::with(spec, true, parquet)
    }

    /// Only the file `which`.
    fn only(spec: TableSpec, which: TableFiles) -> Result<Table, EngineError> {
        Table::with(spec, which == TableFiles::Csv, which == TableFiles::Parquet)
    }

    fn with(spec: TableSpec, csv: bool, parquet: bool) -> Result<Table, EngineError> {
        Ok(Table {
            spec,
            csv: csv.then(|| CsvTableWriter::new(spec)),
            parquet: if parquet {
                Some(ParquetTableWriter::new(spec).map_err(table_error)?)
            } else {
                None
            },
        })
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), EngineError> {
        if let Some(c) = &mut self.csv {
            c.row(cells).map_err(table_error)?;
        }
        if let Some(p) = &mut self.parquet {
            p.row(cells).map_err(table_error)?;
        }
        Ok(())
    }

    /// See [`CsvTableWriter::reserve_rows`].
    fn reserve_rows(&mut self, more: usize) {
        if let Some(c) = &mut self.csv {
            c.reserve_rows(more);
        }
    }

    fn finish(self, files: &mut Files) -> Result<(), EngineError> {
        if let Some(c) = self.csv {
            files.push((format!("{}.csv", self.spec.name), c.finish()));
        }
        if let Some(p) = self.parquet {
            files.push((
                format!("{}.parquet", self.spec.name),
                p.finish().map_err(table_error)?,
            ));
        }
        Ok(())
    }
}

fn table_error(e: TableError) -> EngineError {
    EngineError::Output(e.to_string())
}

fn currency_of(code: &str) -> Result<Currency, EngineError> {
    Currency::from_code(code)
        .ok_or_else(|| EngineError::Invariant(format!("ledger holds unknown currency {code}")))
}

pub fn render_member_positions(
    refs: &RefData,
    nets: &Nets,
    files: &mut Files,
) -> Result<(), EngineError> {
    let mut t = Table::new(MEMBER_POSITIONS, true)?;
    for n in &nets.cash {
        let c = refs.currency(n.currency);
        t.row(&[
            Cell::Text(&refs.member(n.member).member_id),
            Cell::Text(c.code()),
            Cell::Amount(AmountMinor(n.bought_minor), c),
            Cell::Amount(AmountMinor(n.sold_minor), c),
            Cell::Amount(AmountMinor(n.fees_minor), c),
            Cell::Amount(AmountMinor(n.net_minor), c),
        ])?;
    }
    t.finish(files)
}

/// `security_positions` (2M rows on a large day), its CSV or its Parquet file: the two are
/// rendered on two threads.
pub fn render_security_positions(
    refs: &RefData,
    nets: &Nets,
    which: TableFiles,
    files: &mut Files,
) -> Result<(), EngineError> {
    let mut t = Table::only(SECURITY_POSITIONS, which)?;
    for (i, n) in nets.qty.iter().enumerate() {
        if i == SAMPLE_ROWS {
            t.reserve_rows(nets.qty.len() - i);
        }
        t.row(&[
            Cell::Text(&refs.member(n.member).member_id),
            Cell::Text(&refs.instrument(n.instrument).instrument),
            Cell::Int(n.bought),
            Cell::Int(n.sold),
            Cell::Int(n.net),
        ])?;
    }
    t.finish(files)
}

pub fn render_bank_positions(nets: &[BankNet], files: &mut Files) -> Result<(), EngineError> {
    let mut t = Table::new(BANK_POSITIONS, true)?;
    for n in nets {
        let c = currency_of(&n.currency)?;
        t.row(&[
            Cell::Text(&n.bank),
            Cell::Text(c.code()),
            Cell::Amount(AmountMinor(n.net_minor), c),
        ])?;
    }
    t.finish(files)
}

pub fn render_instructions(
    instructions: &[Instruction],
    files: &mut Files,
) -> Result<(), EngineError> {
    let mut t = Table::new(INSTRUCTIONS, true)?;
    for i in instructions {
        let c = currency_of(&i.currency)?;
        t.row(&[
            Cell::Text(&i.instruction_id),
            Cell::Int(i64::from(i.phase)),
            Cell::Text(i.kind.as_str()),
            Cell::Text(c.code()),
            Cell::Amount(AmountMinor(i.amount_minor), c),
            Cell::Text(&i.debit_bank),
            Cell::Text(&i.debit_account),
            Cell::Text(&i.credit_bank),
            Cell::Text(&i.credit_account),
            Cell::Text(&i.channel),
        ])?;
    }
    t.finish(files)
}

/// Closing balances of every virtual account. `withdrawable_minor` gives what may leave
/// today (SPEC §3: balance − frozen − today's online deposits, at least 0).
pub fn render_balances(
    book: &Book,
    withdrawable_minor: impl Fn(&str, &str, i64) -> i64,
    files: &mut Files,
) -> Result<(), EngineError> {
    let mut t = Table::new(BALANCES, true)?;
    for ((account, code), b) in &book.balances() {
        let c = currency_of(code)?;
        t.row(&[
            Cell::Text(account),
            Cell::Text(c.code()),
            Cell::Amount(AmountMinor(b.balance_minor), c),
            Cell::Amount(AmountMinor(b.frozen_minor), c),
            Cell::Amount(
                AmountMinor(withdrawable_minor(
                    account,
                    code,
                    b.balance_minor - b.frozen_minor,
                )),
                c,
            ),
        ])?;
    }
    t.finish(files)
}

/// The name of the file [`render_postings_part`] renders parts of.
pub const POSTINGS_FILE: &str = "postings.csv";

/// The batch's legs, sorted by entry id, account and asset: the rows of postings.csv for
/// `legs` (a slice of [`Postings::sorted`]), with the header row
/// when `header` is set: the parts of consecutive slices, the first with the header,
/// concatenate to the whole file, so that threads can render them side by side.
pub fn render_postings_part(
    postings: &Postings,
    legs: &[&PostedLeg],
    header: bool,
) -> Result<Vec<u8>, EngineError> {
    let mut t = if header {
        CsvTableWriter::new(POSTINGS)
    } else {
        CsvTableWriter::continuation(POSTINGS)
    };
    // Each money asset's currency looked up once, not once per leg.
    let mut currencies: Vec<Option<Option<Currency>>> = vec![None; postings.assets.len()];
    let mut amount = Vec::new();
    for (i, &posted) in legs.iter().enumerate() {
        if i == SAMPLE_ROWS {
            t.reserve_rows(legs.len() - i);
        }
        let leg = postings.leg(posted);
        amount.clear();
        if kind::is_quantity(leg.kind) {
            push_int_text(&mut amount, leg.amount);
        } else {
            let currency = *currencies[posted.asset.index()]
                .get_or_insert_with(|| Currency::from_code(leg.asset));
            let c = match currency {
                Some(c) => c,
                None => currency_of(leg.asset)?,
            };
            push_amount_text(&mut amount, AmountMinor(leg.amount), c);
        }
        t.row(&[
            Cell::Text(leg.entry_id),
            Cell::Text(leg.kind),
            Cell::Text(leg.account),
            Cell::Text(leg.asset),
            Cell::Text(std::str::from_utf8(&amount).expect("numbers print as ASCII")),
        ])
        .map_err(table_error)?;
    }
    Ok(t.finish())
}

/// Every invalid row, sorted by file and line so the file reads like the input.
pub fn render_rejects(rejects: &[RowError], files: &mut Files) -> Result<(), EngineError> {
    let mut sorted: Vec<&RowError> = rejects.iter().collect();
    sorted.sort_by(|a, b| {
        (a.location.source(), a.location.line, &a.column).cmp(&(
            b.location.source(),
            b.location.line,
            &b.column,
        ))
    });
    let mut t = Table::new(REJECTS, false)?;
    for r in sorted {
        let line = i64::try_from(r.location.line).unwrap_or(i64::MAX);
        t.row(&[
            Cell::Text(&r.location.source()),
            Cell::Int(line),
            Cell::Text(&r.id),
            Cell::Text(&r.describe()),
        ])?;
    }
    t.finish(files)
}

/// `(asset, required, available, shortfall)` as printed: money with its currency's digits,
/// quantities as integers.
fn shortfall_texts(refs: &RefData, s: &Shortfall) -> (String, String, String, String) {
    match s.asset {
        ShortfallAsset::Currency(c) => {
            let c = refs.currency(c);
            (
                c.code().to_string(),
                c.format(AmountMinor(s.required)),
                c.format(AmountMinor(s.available)),
                c.format(AmountMinor(s.shortfall)),
            )
        }
        ShortfallAsset::Instrument(i) => (
            refs.instrument(i).instrument.clone(),
            s.required.to_string(),
            s.available.to_string(),
            s.shortfall.to_string(),
        ),
    }
}

pub fn render_shortfalls(
    refs: &RefData,
    shortfalls: &[Shortfall],
    files: &mut Files,
) -> Result<(), EngineError> {
    let mut t = Table::new(SHORTFALLS, false)?;
    for s in shortfalls {
        let (asset, required, available, shortfall) = shortfall_texts(refs, s);
        t.row(&[
            Cell::Text(&refs.member(s.member).member_id),
            Cell::Text(s.kind.as_str()),
            Cell::Text(&asset),
            Cell::Text(&required),
            Cell::Text(&available),
            Cell::Text(&shortfall),
        ])?;
    }
    t.finish(files)
}

pub fn render_defaults(
    refs: &RefData,
    defaults: &[Default],
    files: &mut Files,
) -> Result<(), EngineError> {
    let mut t = Table::new(DEFAULTS, false)?;
    for d in defaults {
        let (asset, _, _, shortfall) = shortfall_texts(refs, &d.shortfall);
        let withheld = match d.shortfall.kind {
            ShortfallKind::Cash => 0,
            ShortfallKind::Securities => d.withheld_quantity,
        };
        t.row(&[
            Cell::Text(&refs.member(d.shortfall.member).member_id),
            Cell::Text(d.shortfall.kind.as_str()),
            Cell::Text(&asset),
            Cell::Text(&shortfall),
            Cell::Text(&refs.platform.guarantee_account),
            Cell::Int(withheld),
        ])?;
    }
    t.finish(files)
}

/// Writes each file under a temporary name, syncs it, then renames it into place, so a
/// reader (or a crash) never sees half a file.
pub fn write_files(dir: &Path, files: &Files) -> Result<(), EngineError> {
    stage_files(dir, files)?.publish()
}

/// Output files written and synced under temporary names: complete and durable, but not
/// visible until [`Staged::publish`] renames them into place. The end-of-day batch stages its
/// outputs while the ledger commits, and publishes them once the commit has succeeded.
#[must_use = "staged files are invisible until published, and left behind unless discarded"]
pub struct Staged<'a> {
    dir: PathBuf,
    files: &'a Files,
}

/// The temporary name of an output while it is written: hidden, and naming the process, so
/// that two runs writing one directory never write into each other's files.
fn temporary_name(name: &str, pid: u32) -> String {
    format!(".{name}.{pid}.tmp")
}

/// The writing process of a temporary file, if the name is one (`None` for the names before
/// they carried the process id, which are always stale).
fn temporary_pid(name: &str) -> Option<Option<u32>> {
    let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    Some(
        stem.rsplit_once('.')
            .and_then(|(_, pid)| pid.parse::<u32>().ok()),
    )
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Writes and syncs each file under its temporary name. The files are written on two
/// threads, so that one file's sync waits on the disk while the other thread copies.
pub fn stage_files<'a>(dir: &Path, files: &'a Files) -> Result<Staged<'a>, EngineError> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    // A run that died mid-write may have left temporary files: they are never outputs. A live
    // process's files are its own business.
    let me = std::process::id();
    for entry in std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))? {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match temporary_pid(&name) {
            Some(Some(pid)) if pid != me && process_alive(pid) => {}
            Some(_) => {
                let _ = std::fs::remove_file(entry.path());
            }
            None => {}
        }
    }
    let staged = Staged {
        dir: dir.to_path_buf(),
        files,
    };
    let write_one = |name: &str, content: &[u8]| -> Result<(), (String, std::io::Error)> {
        let tmp = staged.tmp_of(name);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(content)?;
            f.sync_all()
        };
        write().map_err(|e| (name.to_string(), e))
    };
    // Largest first, dealt to whichever lane has less to write.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1.len()));
    let mut lanes: [(usize, Vec<usize>); 2] = [(0, Vec::new()), (0, Vec::new())];
    for i in order {
        let lane = if lanes[0].0 <= lanes[1].0 { 0 } else { 1 };
        lanes[lane].0 += files[i].1.len();
        lanes[lane].1.push(i);
    }
    let run_lane = |lane: &[usize]| {
        lane.iter()
            .map(|&i| write_one(&files[i].0, &files[i].1))
            .find_map(Result::err)
    };
    let failed = std::thread::scope(|scope| {
        let other = scope.spawn(|| run_lane(&lanes[1].1));
        let here = run_lane(&lanes[0].1);
        let other = other.join().expect("an output writer panicked");
        here.or(other)
    });
    if let Some((name, e)) = failed {
        // A full disk leaves half-written temporary files: remove them now rather than leave
        // their space taken until the next run.
        let path = dir.join(name);
        staged.discard();
        return Err(EngineError::io(path, e));
    }
    Ok(staged)
}

impl Staged<'_> {
    fn tmp_of(&self, name: &str) -> PathBuf {
        self.dir.join(temporary_name(name, std::process::id()))
    }

    /// Renames every file into place, in order, and syncs the directory.
    pub fn publish(self) -> Result<(), EngineError> {
        for (i, (name, _)) in self.files.iter().enumerate() {
            if i == self.files.len() / 2 {
                crate::faults::point("outputs:middle");
            }
            let path = self.dir.join(name);
            std::fs::rename(self.tmp_of(name), &path).map_err(|e| EngineError::io(&path, e))?;
        }
        // Make the renames themselves durable.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Removes the temporary files: the batch they belong to did not commit.
    pub fn discard(self) {
        for (name, _) in self.files {
            let _ = std::fs::remove_file(self.tmp_of(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn temporary_names_carry_the_writing_process() {
        assert_eq!(temporary_name("postings.csv", 42), ".postings.csv.42.tmp");
        assert_eq!(temporary_pid(".postings.csv.42.tmp"), Some(Some(42)));
        // The names before the process id: always stale.
        assert_eq!(temporary_pid(".postings.csv.tmp"), Some(None));
        assert_eq!(temporary_pid("postings.csv"), None);
        assert_eq!(temporary_pid(".hidden"), None);
    }

    /// Staged files are invisible until published and gone when discarded; a dead process's
    /// temporary files are removed by the next stage, a live one's are left alone.
    #[test]
    fn staged_outputs_appear_only_when_published() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let live = temporary_name("balances.csv", child.id());
        std::fs::write(out.join(&live), b"another run's").unwrap();
        std::fs::write(out.join(".balances.csv.tmp"), b"old").unwrap();
        let mut reaped = std::process::Command::new("true").spawn().unwrap();
        reaped.wait().unwrap();
        let dead = temporary_name("balances.csv", reaped.id());
        std::fs::write(out.join(&dead), b"a dead run's").unwrap();

        let files: Files = vec![
            ("a.csv".to_string(), b"a\n".to_vec()),
            ("b.csv".to_string(), b"b\n".to_vec()),
        ];
        let me = std::process::id();
        let staged = stage_files(&out, &files).unwrap();
        let mut expected = vec![
            live.clone(),
            temporary_name("a.csv", me),
            temporary_name("b.csv", me),
        ];
        expected.sort();
        assert_eq!(names_in(&out), expected);
        staged.discard();
        assert_eq!(names_in(&out), vec![live.clone()]);

        stage_files(&out, &files).unwrap().publish().unwrap();
        assert_eq!(names_in(&out), vec![live, "a.csv".into(), "b.csv".into()]);
        assert_eq!(std::fs::read(out.join("b.csv")).unwrap(), b"b\n");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
