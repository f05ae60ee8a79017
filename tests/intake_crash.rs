//! The intake server killed with `kill -9` at random moments while several clients stream
//! trades: after each restart every acknowledged trade is in the journal exactly once, and the
//! journal verifies.

mod common;
mod server_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clearhouse_engine::journal;
use clearhouse_engine::session::record;
use common::*;
use server_support::*;

const DATE: &str = "2026-11-25";
const ROUNDS: usize = 4;
const CLIENTS: usize = 3;

/// A small xorshift: the test needs varied moments, not statistical quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Streams batches until the server stops answering; records what was acknowledged.
fn client(
    addr: std::net::SocketAddr,
    id: usize,
    round: usize,
    seed: u64,
    acked: Arc<Mutex<BTreeSet<String>>>,
) {
    let mut rng = Rng(seed | 1);
    let mut sent: Vec<Vec<String>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while Instant::now() < deadline {
        // Now and then re-send an acknowledged batch: it must come back "already existed".
        let resend = !sent.is_empty() && rng.below(5) == 0;
        let ids: Vec<String> = if resend {
            sent[rng.below(sent.len() as u64) as usize].clone()
        } else {
            let size = 1 + rng.below(40) as usize;
            (0..size)
                .map(|_| {
                    n += 1;
                    format!("R{round}C{id}N{n}")
                })
                .collect()
        };
        let body: Vec<String> = ids.iter().map(|t| day1_trade(t)).collect();
        let Ok(reply) = request(
            addr,
            "POST",
            "/v1/trades",
            Some(SUBMIT),
            body.join("\n").as_bytes(),
        ) else {
            return; // killed
        };
        if reply.status != 200 {
            // A reply cut short by the kill; anything else is a failure.
            assert!(reply.body.is_empty(), "{} {}", reply.status, reply.body);
            return;
        }
        let json = reply.json();
        if resend {
            assert_eq!(json["already_existed"], ids.len() as u64, "{}", reply.body);
        } else {
            assert_eq!(json["created"], ids.len() as u64, "{}", reply.body);
            acked.lock().unwrap().extend(ids.iter().cloned());
            sent.push(ids);
        }
    }
}

/// Trade ids in the journal, with their number of occurrences.
fn journal_trades(dir: &std::path::Path) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    let report = journal::read_all(dir, |seq, payload| {
        if seq > 1 {
            record::decode_trades(seq, payload, DATE, |t| {
                *ids.entry(t.trade_id.to_string()).or_insert(0) += 1;
            })
            .unwrap();
        }
    })
    .unwrap();
    assert!(report.records >= 1);
    ids
}

#[test]
fn kill_9_during_intake_loses_no_acknowledged_trade() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("ref");
    reference_dir(&sample("day1"), &reference, true);
    // The clients' trades all sell FUNDX that ALPHA does not hold: a cash-only market here.
    let platform = std::fs::read_to_string(reference.join("platform.toml")).unwrap();
    let platform = platform.replace(
        "shortfall_policy = \"abort\"",
        "shortfall_policy = \"abort\"\nsecurities_check = false",
    );
    std::fs::write(reference.join("platform.toml"), platform).unwrap();
    let data = tmp.path().join("data");
    init(&reference, &data);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed | 1);
    let journal_dir = data.join(format!("journal-{DATE}"));
    for round in 0..ROUNDS {
        let server = Server::start(&data, &[]);
        if round == 0 {
            let open = server.request(
                "POST",
                &format!("/v1/sessions/{DATE}/open"),
                Some(OPERATOR),
                b"",
            );
            assert_eq!(open.status, 201, "{}", open.body);
        }
        // Everything acknowledged before is still there, once.
        let state = server.request("GET", &format!("/v1/sessions/{DATE}"), Some(SUBMIT), b"");
        assert_eq!(state.json()["state"], "open", "{}", state.body);
        let known = state.json()["trades"].as_u64().unwrap();
        assert!(known >= acked.lock().unwrap().len() as u64);

        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let acked = Arc::clone(&acked);
                let addr = server.addr;
                let seed = rng.next();
                std::thread::spawn(move || client(addr, c, round, seed, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + rng.below(600)));
        server.kill9();
        for c in clients {
            c.join().unwrap();
        }
    }
    assert!(
        !acked.lock().unwrap().is_empty(),
        "no batch was acknowledged"
    );

    // A last restart recovers the torn tail, if any; the journal then verifies and holds
    // every acknowledged trade exactly once.
    let server = Server::start(&data, &[]);
    assert_eq!(server.terminate().code(), Some(0));
    let verify = clearhouse(&["journal", "verify", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(verify.code, 0, "{}", verify.text());
    let stored = journal_trades(&journal_dir);
    assert!(stored.values().all(|n| *n == 1), "a trade stored twice");
    let acked = acked.lock().unwrap();
    let missing: Vec<_> = acked.iter().filter(|t| !stored.contains_key(*t)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    // And the day closes on exactly what the journal holds.
    let close = clearhouse(&["close", DATE, "--data-dir", data.to_str().unwrap()]);
    assert_eq!(close.code, 0, "{}", close.text());
    assert!(
        close.stdout.contains(&format!("{} netted", stored.len())),
        "{}",
        close.stdout
    );
}
