//! Market hours through the real binary: `init`, sessions over HTTP and the CLI, the same
//! day through the server and through `clearhouse run`, auth, roles and limits, a flipped
//! journal byte, the data directory's writer lock.

mod common;
mod server_support;

use std::path::Path;

use common::*;
use server_support::*;

const DATE: &str = "2026-11-25";

fn gen_day(dir: &Path, trades: &str) {
    let run = clearhouse(&[
        "gen",
        dir.to_str().unwrap(),
        "--trades",
        trades,
        "--members",
        "30",
        "--instruments",
        "20",
        "--banks",
        "3",
        "--currencies",
        "CNY,USD,JPY",
        "--seed",
        "11",
        "--format",
        "jsonl",
        "--date",
        DATE,
    ]);
    assert_eq!(run.code, 0, "{}", run.text());
}

/// The trades file `gen` wrote.
fn gen_trades(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .expect("a trades jsonl file")
}

/// The same trades through `serve` (posted in batches, some as arrays, some re-sent) and
/// through `clearhouse run`, each after `init` of the same reference data: identical outputs
/// but for the input digest and the timings.
#[test]
fn a_day_through_the_server_equals_run() {
    let tmp = tempfile::tempdir().unwrap();
    let day = tmp.path().join("gen");
    gen_day(&day, "3000");
    let reference = tmp.path().join("ref");
    reference_dir(&day, &reference, true);

    // Through the server.
    let served = tmp.path().join("served");
    init(&reference, &served);
    let server = Server::start(&served, &[]);
    let open = server.request(
        "POST",
        &format!("/v1/sessions/{DATE}/open"),
        Some(OPERATOR),
        b"",
    );
    assert_eq!(open.status, 201, "{}", open.body);
    let lines: Vec<String> = std::fs::read_to_string(gen_trades(&day))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for (i, chunk) in lines.chunks(700).enumerate() {
        let body = if i % 2 == 0 {
            chunk.join("\n")
        } else {
            format!("[{}]", chunk.join(","))
        };
        let reply = server.request("POST", "/v1/trades", Some(SUBMIT), body.as_bytes());
        assert_eq!(
            reply.status,
            200,
            "{}",
            &reply.body[..reply.body.len().min(500)]
        );
        assert_eq!(reply.json()["created"], chunk.len() as u64);
    }
    // A re-sent batch is acknowledged and stored once.
    let again = server.request(
        "POST",
        "/v1/trades",
        Some(SUBMIT),
        lines[..50].join("\n").as_bytes(),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["already_existed"], 50);
    // The compact answer: counts, and the rows that already existed (all others were created).
    let compact = server.request(
        "POST",
        "/v1/trades?results=compact",
        Some(SUBMIT),
        lines[40..60].join("\n").as_bytes(),
    );
    assert_eq!(compact.status, 200, "{}", compact.body);
    let c = compact.json();
    assert_eq!(c["already_existed"], 20);
    assert_eq!(c["rows"], 20);
    assert_eq!(c["already_existed_rows"].as_array().map(Vec::len), Some(20));
    assert!(c.get("results").is_none(), "{}", compact.body);
    let unknown = server.request(
        "POST",
        "/v1/trades?results=tiny",
        Some(SUBMIT),
        lines[0].as_bytes(),
    );
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let state = server.request("GET", &format!("/v1/sessions/{DATE}"), Some(SUBMIT), b"");
    assert_eq!(state.json()["state"], "open");
    assert_eq!(state.json()["trades"], lines.len() as u64);
    let close = server.request(
        "POST",
        &format!("/v1/sessions/{DATE}/close"),
        Some(OPERATOR),
        b"",
    );
    assert_eq!(close.status, 200, "{}", close.body);
    let closed = close.json();
    assert_eq!(closed["status"], "posted");
    assert_eq!(closed["summary"]["trades"]["netted"], lines.len() as u64);
    let posted = server.request("GET", &format!("/v1/sessions/{DATE}"), Some(SUBMIT), b"");
    assert_eq!(posted.json()["state"], "posted");
    let late = server.request("POST", "/v1/trades", Some(SUBMIT), lines[0].as_bytes());
    assert_eq!(late.status, 409, "{}", late.body);

    // Through `clearhouse run` on a data directory initialised the same way.
    let ran = tmp.path().join("ran");
    init(&reference, &ran);
    let day_dir = tmp.path().join("day");
    reference_dir(&day, &day_dir, false);
    std::fs::copy(gen_trades(&day), day_dir.join("trades.jsonl")).unwrap();
    let run = run_day(&day_dir, &ran, &[]);
    assert_eq!(run.code, 0, "{}", run.text());

    let served_out = comparable_outputs(&served.join("out").join(DATE));
    let ran_out = comparable_outputs(&ran.join("out").join(DATE));
    assert_eq!(
        served_out.keys().collect::<Vec<_>>(),
        ran_out.keys().collect::<Vec<_>>()
    );
    for (name, text) in &ran_out {
        assert_eq!(
            &served_out[name], text,
            "{name} differs between serve and run"
        );
    }
    assert_eq!(
        ledger_rows(&served)[..ledger_rows(&served).len() - 2],
        ledger_rows(&ran)[..ledger_rows(&ran).len() - 2]
    );

    // Balances over HTTP are the ledger's.
    let balances = csv_rows(&served.join("out").join(DATE).join("balances.csv"));
    let row = &balances[0];
    let account = server.request(
        "GET",
        &format!("/v1/accounts/{}", row[0]),
        Some(SUBMIT),
        b"",
    );
    assert_eq!(account.status, 200, "{}", account.body);
    let found = account.json()["balances"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["currency"] == row[1].as_str() && b["balance"] == row[2].as_str());
    assert!(found, "{} vs {row:?}", account.body);
    let missing = server.request("GET", "/v1/accounts/NOBODY", Some(SUBMIT), b"");
    assert_eq!(missing.status, 404);
    assert_eq!(server.terminate().code(), Some(0));

    // The opening posted by init and the session's batch audit clean, the journal included.
    let audit = clearhouse(&["audit", "--data-dir", served.to_str().unwrap()]);
    assert_eq!(audit.code, 0, "{}", audit.text());
    assert!(audit.stdout.contains("1 journals"), "{}", audit.stdout);
}

#[test]
fn auth_roles_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("ref");
    reference_dir(&sample("day1"), &reference, true);
    let data = tmp.path().join("data");
    init(&reference, &data);
    let server = Server::start(
        &data,
        &[
            "--max-body-bytes",
            "4000",
            "--max-trades-per-request",
            "3",
            "--max-connections",
            "4",
        ],
    );
    let open_path = format!("/v1/sessions/{DATE}/open");
    assert_eq!(server.request("POST", &open_path, None, b"").status, 401);
    assert_eq!(
        server
            .request("POST", &open_path, Some("guess"), b"")
            .status,
        401
    );
    assert_eq!(
        server.request("POST", &open_path, Some(SUBMIT), b"").status,
        403
    );
    assert_eq!(
        server
            .request("GET", &format!("/v1/sessions/{DATE}"), None, b"")
            .status,
        401
    );
    let no_session = server.request(
        "POST",
        "/v1/trades",
        Some(SUBMIT),
        day1_trade("T1").as_bytes(),
    );
    assert_eq!(no_session.status, 409, "{}", no_session.body);
    assert_eq!(
        server
            .request("POST", &open_path, Some(OPERATOR), b"")
            .status,
        201
    );
    assert_eq!(
        server
            .request("POST", &open_path, Some(OPERATOR), b"")
            .status,
        200
    );
    assert_eq!(server.request("GET", "/healthz", None, b"").status, 200);

    // Limits: trades per request, body size; a clear 4xx, and the server goes on.
    let four: Vec<String> = (1..=4).map(|i| day1_trade(&format!("T{i}"))).collect();
    let too_many = server.request(
        "POST",
        "/v1/trades",
        Some(SUBMIT),
        four.join("\n").as_bytes(),
    );
    assert_eq!(too_many.status, 413, "{}", too_many.body);
    let huge = vec![b' '; 5000];
    assert_eq!(
        server
            .request("POST", "/v1/trades", Some(SUBMIT), &huge)
            .status,
        413
    );
    assert_eq!(
        server
            .request("POST", "/v1/trades", Some(SUBMIT), b"{nope")
            .status,
        422
    );
    assert_eq!(
        server
            .request("POST", "/v1/trades", Some(SUBMIT), b"[1,")
            .status,
        400
    );

    // A batch with one bad trade is refused whole, with the reason.
    let bad = [
        day1_trade("T1"),
        trade_json("T2", DATE, "FUNDX", "ALPHA", "ALPHA", "1.000", 1),
    ];
    let refused = server.request(
        "POST",
        "/v1/trades",
        Some(SUBMIT),
        bad.join("\n").as_bytes(),
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    let r = refused.json();
    assert_eq!(r["accepted"], false);
    assert_eq!(r["results"][0]["status"], "not_applied");
    assert_eq!(r["results"][1]["status"], "refused");
    assert!(r["results"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("same member as the buyer"));
    let ok = server.request(
        "POST",
        "/v1/trades",
        Some(SUBMIT),
        four[..3].join("\n").as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let conflict = trade_json("T1", DATE, "FUNDX", "ALPHA", "BETA", "2.000", 1);
    let r = server.request("POST", "/v1/trades", Some(SUBMIT), conflict.as_bytes());
    assert_eq!(r.status, 422);
    assert!(r.body.contains("different content"), "{}", r.body);

    // Connections: four kept-alive ones hold every slot; the next is told 429 at once.
    let idle: Vec<_> = (0..4).map(|_| kept_alive(server.addr)).collect();
    let over = server.request("GET", "/healthz", None, b"");
    assert_eq!(over.status, 429, "{}", over.body);
    drop(idle);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.request("GET", "/healthz", None, b"").status, 200);

    let metrics = server.request("GET", "/metrics", None, b"");
    assert!(
        metrics
            .body
            .contains("clearhouse_trades_total{result=\"created\"} 3"),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .contains("clearhouse_requests_denied_total{reason=\"forbidden\"} 1"));
    assert!(metrics
        .body
        .contains("clearhouse_batch_latency_seconds_count"));

    // The server holds the data directory: no second writer.
    let blocked = clearhouse(&[
        "ingest",
        sample("day1").join("trades.csv").to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(blocked.code, 1);
    assert!(
        blocked
            .text()
            .contains("in use by another clearhouse process"),
        "{}",
        blocked.text()
    );
    assert_eq!(server.terminate().code(), Some(0));

    // Restarted: the session is recovered, its trades still known.
    let server = Server::start(&data, &[]);
    let state = server.request("GET", &format!("/v1/sessions/{DATE}"), Some(SUBMIT), b"");
    assert_eq!(state.json()["trades"], 3, "{}", state.body);
}

/// A connection that was answered once and stays open (so it holds a connection slot). The
/// slots of earlier connections are freed as their tasks end: until then this one may be told
/// 429, and tries again.
fn kept_alive(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::io::{Read, Write};
    for _ in 0..100 {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
            .unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        while !reply.ends_with(b"\r\n\r\nok\n") && !reply.starts_with(b"HTTP/1.1 429") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&buf[..n]);
        }
        if reply.starts_with(b"HTTP/1.1 200") {
            return stream;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no connection slot freed up");
}

/// `init`, `open`, `ingest`, `close` and `journal verify` from the command line; a flipped
/// byte in a sealed journal is named by `journal verify`.
#[test]
fn cli_session_and_a_flipped_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("ref");
    reference_dir(&sample("day1"), &reference, true);
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    init(&reference, &data);
    let trades = sample("day1").join("trades.csv");
    let t = trades.to_str().unwrap();
    assert_eq!(
        clearhouse(&["ingest", t, "--data-dir", d]).code,
        1,
        "no session open"
    );
    assert_eq!(clearhouse(&["open", DATE, "--data-dir", d]).code, 0);
    assert_eq!(
        clearhouse(&["open", "2026-11-26", "--data-dir", d]).code,
        1,
        "one at a time"
    );
    let first = clearhouse(&["ingest", t, "--data-dir", d]);
    assert_eq!(first.code, 0, "{}", first.text());
    assert!(
        first.stdout.contains("20 created, 1 already existed"),
        "{}",
        first.stdout
    );
    let again = clearhouse(&["ingest", t, "--data-dir", d]);
    assert!(
        again.stdout.contains("0 created, 21 already existed"),
        "{}",
        again.stdout
    );

    // A file with a bad row appends nothing.
    let bad = tmp.path().join("trades-bad.csv");
    std::fs::write(
        &bad,
        "trade_id,business_date,instrument,buyer,seller,price,quantity\n\
         N1,2026-11-25,FUNDX,ALPHA,BETA,1.000,1\nN2,2026-11-25,NOPE,ALPHA,BETA,1.000,1\n",
    )
    .unwrap();
    let refused = clearhouse(&["ingest", bad.to_str().unwrap(), "--data-dir", d]);
    assert_eq!(refused.code, 2, "{}", refused.text());
    assert!(
        refused.stderr.contains("trades-bad.csv:3"),
        "{}",
        refused.stderr
    );

    let close = clearhouse(&["close", DATE, "--data-dir", d]);
    assert_eq!(close.code, 0, "{}", close.text());
    assert!(close.stdout.contains("20 netted"), "{}", close.stdout);
    let again = clearhouse(&["close", DATE, "--data-dir", d]);
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(again.stdout.contains("already posted"), "{}", again.stdout);
    let verify = clearhouse(&["journal", "verify", "--data-dir", d]);
    assert_eq!(verify.code, 0, "{}", verify.text());
    assert!(verify.stdout.contains("sealed"), "{}", verify.stdout);

    // Flip one byte inside a record (past the 64-byte segment header and the header record).
    let segment = data.join(format!("journal-{DATE}")).join("00000001.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    let offset = 64 + 80 + 60;
    bytes[offset] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let verify = clearhouse(&["journal", "verify", "--data-dir", d]);
    assert_eq!(verify.code, 6, "{}", verify.text());
    assert!(verify.stdout.contains("00000001.seg"), "{}", verify.stdout);
    assert!(verify.stdout.contains("byte offset"), "{}", verify.stdout);
}

/// `init` again updates the reference data and never the balances; bad reference data
/// changes nothing.
#[test]
fn init_again_updates_members_never_balances() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("ref");
    reference_dir(&sample("day1"), &reference, true);
    let data = tmp.path().join("data");
    init(&reference, &data);
    let ledger = ledger_rows(&data);
    assert!(!ledger.is_empty());

    let members = std::fs::read_to_string(reference.join("members.csv")).unwrap();
    let renamed = members.replace("Alpha Securities,", "Alpha Securities Renamed,");
    std::fs::write(reference.join("members.csv"), &renamed).unwrap();
    std::fs::write(
        reference.join("opening_balances.csv"),
        "account,currency,balance\nALPHA,CNY,1.00\n",
    )
    .unwrap();
    let again = clearhouse(&[
        "init",
        reference.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(
        again.stdout.contains("opening files ignored"),
        "{}",
        again.stdout
    );
    assert_eq!(ledger_rows(&data), ledger);
    assert_eq!(
        std::fs::read_to_string(data.join("members.csv")).unwrap(),
        renamed
    );

    let before = snapshot_tree(&data);
    std::fs::write(reference.join("instruments.csv"), "instrument,name\nX,y\n").unwrap();
    let bad = clearhouse(&[
        "init",
        reference.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 2, "{}", bad.text());
    let mut after = snapshot_tree(&data);
    after.remove(Path::new("LOCK"));
    let mut before = before;
    before.remove(Path::new("LOCK"));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read(data.join("members.csv")).unwrap(),
        renamed.as_bytes()
    );
}

// The same tests with the ledger in PostgreSQL (skipped without CLEARHOUSE_TEST_POSTGRES).
postgres_variants!(
    a_day_through_the_server_equals_run,
    init_again_updates_members_never_balances,
);
