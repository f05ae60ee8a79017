//! What only the PostgreSQL ledger can show: the same bytes as SQLite from the same days, and
//! two runs on two hosts (two data directories, one ledger database) racing to post one batch
//! post it once, refused by the batch's primary key. Skipped without CLEARHOUSE_TEST_POSTGRES.

mod common;

use std::process::{Command, Stdio};

use common::*;

const DATES: [&str; 2] = ["2026-11-25", "2026-11-26"];

#[test]
fn sqlite_and_postgres_write_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let on_sqlite = tmp.path().join("sqlite");
    for day in ["day1", "day2"] {
        assert_eq!(run_day(&sample(day), &on_sqlite, &[]).code, 0);
    }
    let sqlite_ledger = ledger_rows(&on_sqlite);
    on_postgres("sqlite_and_postgres_write_the_same_bytes", || {
        let on_pg = tmp.path().join("postgres");
        for day in ["day1", "day2"] {
            let run = run_day(&sample(day), &on_pg, &[]);
            assert_eq!(run.code, 0, "{}", run.text());
        }
        let outputs_equal = |pg_dir: &std::path::Path, date: &str| {
            let (a, b) = (
                read_dir_files(&on_sqlite.join("out").join(date)),
                read_dir_files(pg_dir),
            );
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (name, bytes) in &a {
                if name == "summary.json" {
                    assert_eq!(stable_summary(bytes), stable_summary(&b[name]));
                } else {
                    assert!(
                        bytes == &b[name],
                        "{date}/{name} differs between the backends"
                    );
                }
            }
        };
        for date in DATES {
            outputs_equal(&on_pg.join("out").join(date), date);
        }
        assert_eq!(ledger_rows(&on_pg), sqlite_ledger);
        // Restored from PostgreSQL's stored outputs: the same bytes again.
        std::fs::remove_dir_all(on_pg.join("out").join(DATES[1])).unwrap();
        let rerun = run_day(&sample("day2"), &on_pg, &[]);
        assert_eq!(rerun.code, 0, "{}", rerun.text());
        assert!(rerun.stdout.contains("already posted"), "{}", rerun.stdout);
        outputs_equal(&on_pg.join("out").join(DATES[1]), DATES[1]);
    });
}

/// Both runs compute day 2 from the same ledger version; the test holds the version row until
/// both are waiting on a lock (the first on it, the second on the first's uncommitted batch
/// key), then lets them go. The second is refused by the key and reports the day as already
/// posted, with the first's outputs.
#[test]
fn two_hosts_racing_to_post_one_batch_post_it_once() {
    on_postgres("two_hosts_racing_to_post_one_batch_post_it_once", || {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("host-a"), tmp.path().join("host-b"));
        assert_eq!(run_day(&sample("day1"), &a, &[]).code, 0);
        share_ledger(&a, &b);
        let url = ledger_url(&a).unwrap();
        let database = ledger_database(&a).unwrap();

        let mut holder = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut hold = holder.transaction().unwrap();
        hold.query(
            "SELECT value FROM meta WHERE key = 'version' FOR UPDATE",
            &[],
        )
        .unwrap();

        let day2 = sample("day2");
        let mut posters: Vec<_> = [&a, &b]
            .iter()
            .map(|data| {
                Command::new(env!("CARGO_BIN_EXE_clearhouse"))
                    .args(["run", day2.to_str().unwrap(), "--data-dir"])
                    .arg(data)
                    .args(["--ledger", &url])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut watcher = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                    &[&database],
                )
                .unwrap()
                .get(0);
            if waiting == 2 {
                break;
            }
            for p in &mut posters {
                if let Some(status) = p.try_wait().unwrap() {
                    panic!("a poster finished before the race was set up: {status}");
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        hold.commit().unwrap();

        let runs: Vec<_> = posters
            .into_iter()
            .map(|p| p.wait_with_output().unwrap())
            .collect();
        let stdouts: Vec<String> = runs
            .iter()
            .map(|r| String::from_utf8_lossy(&r.stdout).into_owned())
            .collect();
        for (run, stdout) in runs.iter().zip(&stdouts) {
            assert_eq!(
                run.status.code(),
                Some(0),
                "{stdout}{}",
                String::from_utf8_lossy(&run.stderr)
            );
        }
        let already = stdouts
            .iter()
            .filter(|s| s.contains("already posted"))
            .count();
        assert_eq!(already, 1, "exactly one run lost the race: {stdouts:#?}");
        assert_eq!(ledger_count(&a, "SELECT count(*) FROM batches"), 2);
        assert_eq!(
            ledger_count(
                &a,
                "SELECT count(*) FROM batches WHERE business_date = '2026-11-26'"
            ),
            1
        );
        // The loser wrote the winner's outputs, restored from the ledger.
        assert_eq!(
            comparable_outputs(&a.join("out").join(DATES[1])),
            comparable_outputs(&b.join("out").join(DATES[1]))
        );
        let audit = clearhouse(&["audit", "--data-dir", a.to_str().unwrap()]);
        assert_eq!(audit.code, 0, "{}", audit.text());
    });
}

/// `ledger = URL` in the data directory's platform.toml puts the ledger in PostgreSQL (no
/// SQLite file appears); `--ledger` overrides it.
#[test]
fn platform_toml_names_the_ledger_and_the_flag_overrides_it() {
    on_postgres(
        "platform_toml_names_the_ledger_and_the_flag_overrides_it",
        || {
            let tmp = tempfile::tempdir().unwrap();
            let data = tmp.path().join("data");
            let url = ledger_url(&data).unwrap();
            std::fs::create_dir_all(&data).unwrap();
            let platform = std::fs::read_to_string(sample("day1").join("platform.toml")).unwrap();
            // A top-level key: before the first [table].
            std::fs::write(
                data.join("platform.toml"),
                format!("ledger = \"{url}\"\n{platform}"),
            )
            .unwrap();
            let run = |extra: &[&str]| {
                Command::new(env!("CARGO_BIN_EXE_clearhouse"))
                    .args(["run", sample("day1").to_str().unwrap(), "--data-dir"])
                    .arg(&data)
                    .args(extra)
                    .output()
                    .unwrap()
            };
            let posted = run(&[]);
            assert!(
                posted.status.success(),
                "{}",
                String::from_utf8_lossy(&posted.stderr)
            );
            assert!(!data.join("ledger.sqlite").exists());
            assert_eq!(ledger_count(&data, "SELECT count(*) FROM batches"), 1);

            let elsewhere = run(&["--ledger", "postgres://nobody@127.0.0.1:1/none"]);
            assert_eq!(elsewhere.status.code(), Some(1));
            let stderr = String::from_utf8_lossy(&elsewhere.stderr);
            assert!(
                stderr.contains("postgres://nobody@127.0.0.1:1/none"),
                "{stderr}"
            );

            std::fs::write(
                data.join("platform.toml"),
                format!("ledger = \"mysql://x\"\n{platform}"),
            )
            .unwrap();
            let bad = run(&[]);
            assert_eq!(bad.status.code(), Some(1));
            let stderr = String::from_utf8_lossy(&bad.stderr);
            assert!(stderr.contains("is not a postgres://"), "{stderr}");
        },
    );
}
