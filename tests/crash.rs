//! A batch killed at any point leaves the ledger as if it never started, and re-running
//! finishes it: the final ledger and outputs equal those of a run never interrupted, and the
//! day is posted exactly once.

mod common;

use common::*;

const FAULT_POINTS: &[&str] = &[
    "validated",
    "netted",
    "posting:middle",
    "posting:before-commit",
    "posted",
    "outputs:middle",
];

#[test]
fn a_batch_aborted_anywhere_finishes_identically_on_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    assert_eq!(run_day(&sample("day1"), &clean, &[]).code, 0);
    let clean_ledger = ledger_rows(&clean);
    let clean_out = comparable_outputs(&clean.join("out/2026-11-25"));

    for point in FAULT_POINTS {
        let data = tmp.path().join(point.replace(':', "-"));
        let day = sample("day1");
        let args = [
            "run",
            day.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ];
        let crashed = clearhouse_env(&args, &[("CLEARHOUSE_FAULT", point)]);
        assert_ne!(
            crashed.code,
            0,
            "{point}: the fault did not fire\n{}",
            crashed.text()
        );
        assert!(
            crashed.stderr.contains("fault injected"),
            "{point}: {}",
            crashed.stderr
        );
        let posted_before_crash = matches!(*point, "posted" | "outputs:middle");
        if !posted_before_crash {
            assert!(
                ledger_rows(&data).iter().all(|r| !r.contains("2026-11-25")),
                "{point}: a batch is visible after a crash before commit"
            );
        }
        let rerun = run_day(&day, &data, &[]);
        assert_eq!(rerun.code, 0, "{point}: {}", rerun.text());
        assert_eq!(
            ledger_rows(&data),
            clean_ledger,
            "{point}: ledger differs from a clean run"
        );
        assert_eq!(
            comparable_outputs(&data.join("out/2026-11-25")),
            clean_out,
            "{point}: outputs differ"
        );
        let leftovers: Vec<_> = std::fs::read_dir(data.join("out/2026-11-25"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{point}: temporary files left: {leftovers:?}"
        );
    }
}

// The same tests with the ledger in PostgreSQL (skipped without CLEARHOUSE_TEST_POSTGRES).
postgres_variants!(a_batch_aborted_anywhere_finishes_identically_on_rerun,);
