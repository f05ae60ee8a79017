//! Resource limits, with the real binary: a disk that fills up while the ledger is written or
//! while the outputs are written fails the run cleanly (a clear message, a non-zero exit, the
//! ledger as before, no half output file) and a re-run once there is room again equals a clean
//! run; a trade file larger than the memory the process may use is streamed; a day with a
//! million members runs.
//!
//! "Disk full" is made two ways. `RLIMIT_FSIZE` (with `SIGXFSZ` ignored, so a write past the
//! limit fails with `EFBIG` instead of killing the process) needs no privilege and always
//! runs. A real tmpfs too small for the data runs where mounting is permitted (root in a
//! container that allows it) and says so when it is skipped.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// Limits set on the child between fork and exec.
#[derive(Default, Clone, Copy)]
struct Limits {
    /// `RLIMIT_FSIZE`: no file may grow past this many bytes.
    file_size_bytes: Option<u64>,
    /// `RLIMIT_AS`: the address space the process may map.
    address_space_bytes: Option<u64>,
}

struct Limited {
    code: i32,
    stdout: String,
    stderr: String,
    /// The child's peak resident set, from `wait4` (the kernel's own figure for that child).
    peak_rss_bytes: u64,
}

impl Limited {
    fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs the binary under `limits` and reaps it with `wait4`, which reports that child's own
/// peak RSS (not the maximum over every child of this test process, as
/// `getrusage(RUSAGE_CHILDREN)` would while other tests run in parallel).
fn clearhouse_limited(args: &[&str], limits: Limits, env: &[(&str, &str)]) -> Limited {
    let mut stdout = tempfile::tempfile().unwrap();
    let mut stderr = tempfile::tempfile().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clearhouse"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout.try_clone().unwrap()))
        .stderr(Stdio::from(stderr.try_clone().unwrap()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: between fork and exec only async-signal-safe calls (signal, setrlimit) are made
    // and nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(bytes) = limits.file_size_bytes {
                // An ignored disposition survives exec: the write fails with EFBIG instead.
                if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
                set_limit(libc::RLIMIT_FSIZE, bytes)?;
            }
            if let Some(bytes) = limits.address_space_bytes {
                set_limit(libc::RLIMIT_AS, bytes)?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("the clearhouse binary starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped (std never waited for it).
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4: {err}");
    }
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let read = |f: &mut std::fs::File| {
        let mut text = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut text).unwrap();
        text
    };
    Limited {
        code,
        stdout: read(&mut stdout),
        stderr: read(&mut stderr),
        // ru_maxrss is in KiB on Linux.
        peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: a plain system call on a struct we own.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn run_args(day: &Path, data: &Path) -> Vec<String> {
    vec![
        "run".to_string(),
        day.display().to_string(),
        "--data-dir".to_string(),
        data.display().to_string(),
    ]
}

fn limited_run(day: &Path, data: &Path, limits: Limits) -> Limited {
    let args = run_args(day, data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    clearhouse_limited(&args, limits, &[])
}

fn gen(dir: &Path, extra: &[&str]) {
    let mut args = vec!["gen", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = clearhouse(&args);
    assert_eq!(run.code, 0, "gen: {}", run.text());
}

/// The ledger file itself, byte for byte (the WAL and its index are SQLite's scratch space:
/// what matters is that nothing committed changed).
fn ledger_bytes(data: &Path) -> Vec<u8> {
    std::fs::read(data.join("ledger.sqlite")).unwrap_or_default()
}

/// Names in `dir` that are not finished outputs: temporary files of an interrupted write.
fn temporary_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Every visible output file of a failed write is complete: byte-identical to the clean run's
/// file of that name (a file is renamed into place only once written and synced).
fn assert_no_partial_outputs(dir: &Path, clean: &BTreeMap<String, String>, what: &str) {
    assert_eq!(temporary_files(dir), Vec::<String>::new(), "{what}");
    if !dir.exists() {
        return;
    }
    for (name, text) in comparable_outputs(dir) {
        let expected = clean
            .get(&name)
            .unwrap_or_else(|| panic!("{what}: unexpected output {name}"));
        if name != "summary.json" {
            assert_eq!(&text, expected, "{what}: {name} is not the complete file");
        }
    }
}

/// Two generated days of one market, the second without opening balances (the ledger has
/// them by then): many members and few trades, so that the day's largest output
/// (balances.csv, a row per member and currency) is larger than its ledger transaction.
struct TwoDays {
    day1: PathBuf,
    day2: PathBuf,
    clean_ledger: Vec<String>,
    clean_out2: BTreeMap<String, String>,
}

const DATE1: &str = "2026-11-25";
const DATE2: &str = "2026-11-26";

fn two_days(root: &Path) -> TwoDays {
    let day1 = root.join("day1");
    let day2 = root.join("day2");
    let market = [
        "--trades",
        "20",
        "--members",
        "20000",
        "--instruments",
        "5",
        "--banks",
        "1",
    ];
    gen(
        &day1,
        &[&market[..], &["--date", DATE1, "--seed", "1"]].concat(),
    );
    gen(
        &day2,
        &[&market[..], &["--date", DATE2, "--seed", "2"]].concat(),
    );
    std::fs::remove_file(day2.join("opening_balances.csv")).unwrap();
    let clean = root.join("clean");
    for day in [&day1, &day2] {
        let run = run_day(day, &clean, &[]);
        assert_eq!(
            run.code,
            0,
            "clean run of {}: {}",
            day.display(),
            run.text()
        );
    }
    TwoDays {
        clean_ledger: ledger_rows(&clean),
        clean_out2: comparable_outputs(&clean.join("out").join(DATE2)),
        day1,
        day2,
    }
}

/// A file-size limit that fails the second day's ledger transaction: above SQLite's 32 KiB
/// shared-memory index (else the ledger could not even be opened) and far below the pages a
/// day of thousands of trades writes to the WAL.
const LEDGER_FAILS_BYTES: u64 = 96 * 1024;

#[test]
fn disk_full_while_posting_fails_cleanly_and_the_rerun_equals_a_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let days = two_days(tmp.path());
    let data = tmp.path().join("data");
    assert_eq!(run_day(&days.day1, &data, &[]).code, 0);
    let bytes_before = ledger_bytes(&data);
    let rows_before = ledger_rows(&data);

    let full = limited_run(
        &days.day2,
        &data,
        Limits {
            file_size_bytes: Some(LEDGER_FAILS_BYTES),
            ..Limits::default()
        },
    );
    assert_eq!(full.code, 1, "{}", full.text());
    assert!(
        full.stderr.contains("ledger") && full.stderr.contains("ledger.sqlite"),
        "the message names the ledger: {}",
        full.stderr
    );
    assert!(!full.stderr.contains("panicked"), "{}", full.stderr);
    assert_eq!(ledger_bytes(&data), bytes_before, "the ledger file changed");
    assert_eq!(ledger_rows(&data), rows_before, "the ledger's rows changed");
    assert_no_partial_outputs(
        &data.join("out").join(DATE2),
        &days.clean_out2,
        "after a failed posting",
    );

    let rerun = run_day(&days.day2, &data, &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.text());
    assert_eq!(ledger_rows(&data), days.clean_ledger);
    assert_eq!(
        comparable_outputs(&data.join("out").join(DATE2)),
        days.clean_out2
    );
}

/// Between the second day's ledger transaction (a few hundred KiB of WAL: the accounts table
/// and the changed balances) and its largest output, balances.csv (one row per member and
/// currency, 2 MB for 20,000 members): the commit succeeds, the outputs cannot be written.
const OUTPUTS_FAIL_BYTES: u64 = 1024 * 1024;

#[test]
fn disk_full_while_writing_outputs_fails_cleanly_and_the_rerun_restores_them() {
    let tmp = tempfile::tempdir().unwrap();
    let days = two_days(tmp.path());
    let data = tmp.path().join("data");
    assert_eq!(run_day(&days.day1, &data, &[]).code, 0);

    let full = limited_run(
        &days.day2,
        &data,
        Limits {
            file_size_bytes: Some(OUTPUTS_FAIL_BYTES),
            ..Limits::default()
        },
    );
    assert_eq!(full.code, 1, "{}", full.text());
    assert!(
        full.stderr.contains(&format!(
            "business date {DATE2} is posted, but writing its outputs failed"
        )) && full.stderr.contains("balances.csv"),
        "the message says what is done and what failed: {}",
        full.stderr
    );
    assert!(!full.stderr.contains("panicked"), "{}", full.stderr);
    // The outputs are written only after the commit: the batch is posted, exactly as a clean
    // run posts it.
    assert_eq!(ledger_rows(&data), days.clean_ledger);
    let out = data.join("out").join(DATE2);
    assert_no_partial_outputs(&out, &days.clean_out2, "after a failed output write");
    assert!(!out.join("balances.csv").exists());

    let rerun = run_day(&days.day2, &data, &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.text());
    assert_eq!(ledger_rows(&data), days.clean_ledger, "posted twice?");
    assert_eq!(comparable_outputs(&out), days.clean_out2);
    assert_eq!(temporary_files(&out), Vec::<String>::new());
}

/// A tmpfs mounted for the length of a test; unmounted (lazily) when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None`, with a note on stderr, where this process may not mount (not root, or a
    /// container without the capability): the rlimit tests above still run everywhere.
    fn mount(dir: &Path, size_bytes: u64) -> Option<Tmpfs> {
        use std::ffi::CString;
        std::fs::create_dir_all(dir).unwrap();
        let target = CString::new(dir.to_str().unwrap()).unwrap();
        let fstype = CString::new("tmpfs").unwrap();
        let options = CString::new(format!("size={size_bytes}")).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            eprintln!(
                "skipped: cannot mount a tmpfs at {} ({err}); the RLIMIT_FSIZE tests cover disk full",
                dir.display()
            );
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the file system with a filler file until only about `free_bytes` are left.
    fn fill_leaving(&self, free_bytes: u64) -> PathBuf {
        use std::io::Write;
        let filler = self.dir.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xA5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        f.set_len(written.saturating_sub(free_bytes)).unwrap();
        f.sync_all().unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.dir.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; MNT_DETACH so an open file cannot keep it mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_full_tmpfs_fails_posting_and_output_writing_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(ledger_fs) = Tmpfs::mount(&tmp.path().join("ledger-fs"), 64 << 20) else {
        return;
    };
    let Some(out_fs) = Tmpfs::mount(&tmp.path().join("out-fs"), 64 << 20) else {
        return;
    };
    let days = two_days(tmp.path());

    // Posting: the data directory on a tmpfs with 128 KiB left.
    let data = ledger_fs.dir.join("data");
    assert_eq!(run_day(&days.day1, &data, &[]).code, 0);
    let bytes_before = ledger_bytes(&data);
    let rows_before = ledger_rows(&data);
    let filler = ledger_fs.fill_leaving(128 * 1024);
    let full = run_day(&days.day2, &data, &[]);
    assert_eq!(full.code, 1, "{}", full.text());
    assert!(full.stderr.contains("ledger.sqlite"), "{}", full.stderr);
    assert!(!full.stderr.contains("panicked"), "{}", full.stderr);
    assert_eq!(ledger_bytes(&data), bytes_before, "the ledger file changed");
    assert_eq!(ledger_rows(&data), rows_before, "the ledger's rows changed");
    assert_no_partial_outputs(
        &data.join("out").join(DATE2),
        &days.clean_out2,
        "tmpfs, posting",
    );
    std::fs::remove_file(&filler).unwrap();
    let rerun = run_day(&days.day2, &data, &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.text());
    assert_eq!(ledger_rows(&data), days.clean_ledger);
    assert_eq!(
        comparable_outputs(&data.join("out").join(DATE2)),
        days.clean_out2
    );

    // Output writing: the ledger on the ordinary disk, the outputs (--out) on a tmpfs with
    // 1 MiB left, less than balances.csv.
    let data = tmp.path().join("data-out-full");
    assert_eq!(run_day(&days.day1, &data, &[]).code, 0);
    let out = out_fs.dir.join("out");
    let filler = out_fs.fill_leaving(1 << 20);
    let full = run_day(&days.day2, &data, &["--out", out.to_str().unwrap()]);
    assert_eq!(full.code, 1, "{}", full.text());
    assert!(
        full.stderr
            .contains("is posted, but writing its outputs failed"),
        "{}",
        full.stderr
    );
    assert_eq!(ledger_rows(&data), days.clean_ledger);
    assert_no_partial_outputs(&out, &days.clean_out2, "tmpfs, outputs");
    std::fs::remove_file(&filler).unwrap();
    let rerun = run_day(&days.day2, &data, &["--out", out.to_str().unwrap()]);
    assert_eq!(rerun.code, 0, "{}", rerun.text());
    assert_eq!(comparable_outputs(&out), days.clean_out2);
    assert_eq!(ledger_rows(&data), days.clean_ledger);
}

/// A trade file of about 200 MB read by a process that may map 160 MiB in all (code, stacks
/// and heap): it can only have been streamed. The kernel's peak-RSS figure must be a small
/// fraction of the file as well. Two intake threads and two malloc arenas keep the address
/// space the same on machines with many cores.
#[test]
fn a_trade_file_larger_than_the_memory_allowed_is_streamed() {
    const TRADES: u64 = 2_500_000;
    const ADDRESS_SPACE_BYTES: u64 = 160 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    let trades = TRADES.to_string();
    gen(
        &day,
        &[
            "--trades",
            &trades,
            "--members",
            "50",
            "--instruments",
            "10",
            "--banks",
            "2",
        ],
    );
    let file_bytes = std::fs::metadata(day.join("trades.csv")).unwrap().len();
    assert!(
        file_bytes > ADDRESS_SPACE_BYTES,
        "the trade file ({file_bytes} bytes) must be larger than the memory allowed"
    );
    let data = tmp.path().join("data");
    let args = run_args(&day, &data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = clearhouse_limited(
        &args,
        Limits {
            address_space_bytes: Some(ADDRESS_SPACE_BYTES),
            ..Limits::default()
        },
        &[("CLEARHOUSE_THREADS", "2"), ("MALLOC_ARENA_MAX", "2")],
    );
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.peak_rss_bytes < file_bytes / 4,
        "peak RSS {} bytes for a {file_bytes}-byte trade file",
        run.peak_rss_bytes
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("out/2026-11-25/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["trades"]["rows"], TRADES);
    assert_eq!(summary["trades"]["netted"], TRADES);
    assert_eq!(summary["status"], "posted");
}

/// A market of a million members: generated, run, audited clean, and every member has its
/// balances row and a registered bank.
#[test]
fn a_day_with_a_million_members_runs() {
    const MEMBERS: usize = 1_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    let members = MEMBERS.to_string();
    gen(
        &day,
        &[
            "--trades",
            "100000",
            "--members",
            &members,
            "--instruments",
            "5",
            "--banks",
            "3",
            "--currencies",
            "CNY",
        ],
    );
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    let audit = clearhouse(&["audit", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(audit.code, 0, "{}", audit.text());
    assert!(audit.stdout.contains("clean"), "{}", audit.text());

    let out = data.join("out/2026-11-25");
    let balances = csv_rows(&out.join("balances.csv"));
    // One currency, so one row per member, and the platform's accounts besides.
    let member_rows = balances.iter().filter(|r| r[0].starts_with('M')).count();
    assert_eq!(member_rows, MEMBERS);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["trades"]["netted"], 100_000);
    let traded = csv_rows(&out.join("member_positions.csv"))
        .iter()
        .map(|r| r[0].clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(summary["members_netted"], traded);
    let db = rusqlite::Connection::open(data.join("ledger.sqlite")).unwrap();
    let registered: i64 = db
        .query_row(
            "SELECT count(*) FROM accounts WHERE account LIKE 'M%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(registered, MEMBERS as i64);
}

/// Found by the million-member day: opening balances whose total at one bank passes the
/// 64-bit range (each row within the 18 digits an amount may have) panicked while posting, as
/// did opening positions whose total per instrument does. Now they are rejects naming the row
/// that passes the range, and nothing is posted.
#[test]
fn opening_totals_beyond_the_range_of_amounts_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("day");
    gen(
        &day,
        &[
            "--trades",
            "10",
            "--members",
            "12",
            "--instruments",
            "1",
            "--banks",
            "1",
        ],
    );
    // Twelve members at bank B01 with ~10^18 minor units each: the tenth passes i64::MAX.
    let mut balances = String::from("account,currency,balance\n");
    for m in 1..=12 {
        balances.push_str(&format!("M{m:05},CNY,9999999999999999.99\n"));
    }
    std::fs::write(day.join("opening_balances.csv"), balances).unwrap();
    std::fs::write(
        day.join("opening_positions.csv"),
        "member_id,instrument,quantity\nM00001,I00001,5000000000000000000\nM00002,I00001,5000000000000000000\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    let run = run_day(&day, &data, &[]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let rejects = std::fs::read_to_string(data.join("out/2026-11-25/rejects.csv")).unwrap();
    assert!(
        rejects.contains("opening_balances.csv,11,M00010,")
            && rejects.contains("at bank B01 in CNY beyond the 64-bit range"),
        "{rejects}"
    );
    assert!(
        rejects.contains("opening_positions.csv,3,M00002,")
            && rejects.contains("opening positions in I00001 beyond the 64-bit range"),
        "{rejects}"
    );
    assert!(!data.join("ledger.sqlite").exists(), "a ledger was created");
}
