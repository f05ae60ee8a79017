use std::collections::BTreeSet;

use clearhouse_formats::money::Decimal;

use super::*;

fn sample_day1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/day1")
}

fn date() -> BusinessDate {
    BusinessDate::parse("2026-11-25").unwrap()
}

/// A data directory holding day1's reference data.
fn data_dir() -> (tempfile::TempDir, DataDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    for name in REFERENCE_FILES {
        let bytes = std::fs::read(sample_day1().join(name)).unwrap();
        write_atomic(&data.reference_file(name), &bytes).unwrap();
    }
    (dir, data)
}

fn buffered() -> SessionOptions {
    let mut options = SessionOptions::default();
    options.journal.sync = SyncMode::Buffered;
    options.journal.buffer_size_bytes = 4 << 20;
    options.journal.record_size_max_bytes = (1 << 20) - 64;
    options
}

fn trade(id: &str, quantity: i64) -> TradeFields<'_> {
    TradeFields {
        trade_id: id,
        business_date: "2026-11-25",
        instrument: "600519",
        buyer: "BETA",
        seller: "ALPHA",
        price: Decimal::parse("1689.50").unwrap(),
        quantity,
        executed_at: None,
    }
}

fn submit(session: &Session, trades: &[TradeFields<'_>]) -> BatchOutcome {
    let mut batch = session.start_batch(Path::new("test"));
    for (i, t) in trades.iter().enumerate() {
        batch.trade(i as u64 + 1, t);
    }
    session.commit(batch).unwrap()
}

/// Every trade id in a journal, in order.
fn journal_ids(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let report = journal::read_all(dir, |seq, payload| {
        if seq > 1 {
            record::decode_trades(seq, payload, "2026-11-25", |t| {
                ids.push(t.trade_id.to_string())
            })
            .unwrap();
        }
    })
    .unwrap();
    assert!(report.sealed);
    ids
}

#[test]
fn batches_are_all_or_nothing_and_idempotent() {
    let (_tmp, data) = data_dir();
    let (session, report) = Session::open(&data, date(), buffered()).unwrap();
    assert!(report.created);
    let first = submit(&session, &[trade("T1", 100), trade("T2", 200)]);
    assert!(first.accepted);
    assert_eq!((first.created, first.already_existed), (2, 0));

    // One bad trade (not a lot multiple) refuses the whole batch.
    let refused = submit(&session, &[trade("T3", 100), trade("T4", 150)]);
    assert!(!refused.accepted);
    assert_eq!(refused.results[0].status, TradeStatus::NotApplied);
    let TradeStatus::Refused(reason) = &refused.results[1].status else {
        panic!("{:?}", refused.results[1]);
    };
    assert!(reason.contains("column quantity"), "{reason}");

    // Re-sent: acknowledged, not stored again; same id, other content: refused.
    let again = submit(
        &session,
        &[trade("T1", 100), trade("T3", 100), trade("T3", 100)],
    );
    assert!(again.accepted);
    let statuses: Vec<_> = again.results.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["already_existed", "created", "already_existed"]);
    let conflict = submit(&session, &[trade("T2", 300)]);
    assert!(!conflict.accepted);
    assert!(
        matches!(&conflict.results[0].status, TradeStatus::Refused(r) if r.contains("different content"))
    );

    // Another date is refused with its reason.
    let mut other = trade("T9", 100);
    other.business_date = "2026-11-26";
    let wrong_date = submit(&session, &[other]);
    assert!(
        matches!(&wrong_date.results[0].status, TradeStatus::Refused(r) if r.contains("session's business date"))
    );

    assert_eq!(session.trade_count(), 3);
    session.seal().unwrap();
    let sealed = session.commit(session.start_batch(Path::new("late")));
    assert!(
        sealed.is_ok_and(|o| !o.accepted),
        "an empty batch is refused"
    );
    let mut late = session.start_batch(Path::new("late"));
    late.trade(1, &trade("T5", 100));
    assert!(session.commit(late).is_err(), "no append after the seal");
    let dir = session.journal_dir().to_path_buf();
    drop(session);
    assert_eq!(journal_ids(&dir), ["T1", "T2", "T3"]);
}

#[test]
fn reopening_rebuilds_the_id_index() {
    let (_tmp, data) = data_dir();
    let (session, _) = Session::open(&data, date(), buffered()).unwrap();
    assert!(submit(&session, &[trade("T1", 100)]).accepted);
    session.shutdown().unwrap();
    let (session, report) = Session::open(&data, date(), buffered()).unwrap();
    assert!(!report.created);
    assert_eq!(report.trades_recovered, 1);
    let again = submit(&session, &[trade("T1", 100), trade("T2", 100)]);
    let statuses: Vec<_> = again.results.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["already_existed", "created"]);
    assert!(!submit(&session, &[trade("T1", 200)]).accepted);
    session.seal().unwrap();
    drop(session);
    assert!(Session::open(&data, date(), buffered()).is_err(), "sealed");
}

/// Concurrent producers append a known set, with overlaps (every id is sent by two threads):
/// the sealed journal holds exactly that set, each trade once.
#[test]
fn concurrent_producers_store_exactly_the_set() {
    let (_tmp, data) = data_dir();
    let mut options = buffered();
    options.journal.sync = SyncMode::Durable;
    let (session, _) = Session::open(&data, date(), options).unwrap();
    let threads = 4;
    let per_thread = 600;
    let batch = 40;
    let ids: Vec<String> = (0..threads * per_thread / 2)
        .map(|i| format!("T{i:06}"))
        .collect();
    std::thread::scope(|scope| {
        for k in 0..threads {
            let (session, ids) = (&session, &ids);
            scope.spawn(move || {
                // Threads k and k+2 send the same half of the ids, in other batch cuts.
                let half = &ids[(k % 2) * ids.len() / 2..(k % 2 + 1) * ids.len() / 2];
                let cut = batch + k * 7;
                for chunk in half.chunks(cut) {
                    let trades: Vec<_> = chunk.iter().map(|id| trade(id, 100)).collect();
                    let outcome = submit(session, &trades);
                    assert!(outcome.accepted);
                }
            });
        }
    });
    let stats = &session.stats;
    assert_eq!(stats.trades_created.load(Relaxed), ids.len() as u64);
    assert_eq!(stats.trades_already_existed.load(Relaxed), ids.len() as u64);
    session.seal().unwrap();
    let dir = session.journal_dir().to_path_buf();
    drop(session);
    let stored = journal_ids(&dir);
    let distinct: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), distinct.len(), "each trade once");
    assert_eq!(distinct, ids.iter().collect::<BTreeSet<_>>());
}

#[test]
fn opening_needs_reference_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    let err = Session::open(&data, date(), buffered()).err().unwrap();
    assert!(err.to_string().contains("clearhouse init"), "{err}");
}

#[test]
fn content_key_sees_every_field_but_the_id() {
    let base = trade("T1", 100);
    assert_eq!(content_key(&base), content_key(&trade("T2", 100)));
    let long_id = "X".repeat(40);
    let changed = [
        TradeFields {
            quantity: 200,
            ..base
        },
        TradeFields {
            price: Decimal::parse("1689.5").unwrap(),
            ..base
        },
        TradeFields {
            price: Decimal::parse("1689.51").unwrap(),
            ..base
        },
        TradeFields {
            buyer: "ALPHA",
            seller: "BETA",
            ..base
        },
        TradeFields {
            executed_at: Some(""),
            ..base
        },
        TradeFields {
            executed_at: Some("2026-11-25T10:00:00Z"),
            ..base
        },
        TradeFields {
            instrument: &long_id,
            ..base
        },
    ];
    for (i, other) in changed.iter().enumerate() {
        // `1689.5` and `1689.50` parse to the same decimal (the readers normalise): equal.
        if i == 1 {
            assert_eq!(content_key(other), content_key(&base));
            continue;
        }
        assert_ne!(content_key(other), content_key(&base), "change {i}");
    }
}
