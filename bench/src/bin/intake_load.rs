//! Load generator for the intake server: trades/s through `POST /v1/trades` over loopback.
//!
//! Sets up a data directory from a synthetic day (`clearhouse gen`), starts the real
//! `clearhouse serve` on 127.0.0.1 (ephemeral port), opens the session, then `--clients`
//! threads each post their share of the trades in batches of `--batch` over one keep-alive
//! connection, each batch answered only once durable. Reports trades/s, batch latency and the
//! journal's fsyncs, then closes the session (the end-of-day batch on the journal) and times
//! that too.
//!
//! ```sh
//! cargo build --release -p clearhouse -p clearhouse-bench
//! target/release/intake-load --clearhouse target/release/clearhouse --trades 1000000 --batch 1000
//! target/release/intake-load --clearhouse target/release/clearhouse --trades 1000000 --batch 10000
//! target/release/intake-load ... --results compact   # answers without a result per trade
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clearhouse_engine::server::auth::token_sha256_hex;

const SUBMIT: &str = "bench-submit-token";
const OPERATOR: &str = "bench-operator-token";

struct Args {
    clearhouse: PathBuf,
    trades: u64,
    batch: usize,
    clients: usize,
    /// `full` (a result per trade) or `compact` (`?results=compact`).
    results: String,
    work: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        clearhouse: PathBuf::from("target/release/clearhouse"),
        trades: 1_000_000,
        batch: 1_000,
        clients: 2,
        results: "full".to_string(),
        work: std::env::temp_dir().join(format!("intake-load-{}", std::process::id())),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--clearhouse" => args.clearhouse = value.into(),
            "--trades" => args.trades = value.parse().expect("--trades N"),
            "--batch" => args.batch = value.parse().expect("--batch N"),
            "--clients" => args.clients = value.parse().expect("--clients N"),
            "--results" => args.results = value,
            "--work" => args.work = value.into(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(args.batch > 0 && args.clients > 0);
    assert!(
        args.results == "full" || args.results == "compact",
        "--results full|compact"
    );
    args
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let args = parse_args();
    let day = args.work.join("day");
    let reference = args.work.join("ref");
    let data = args.work.join("data");
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&reference).unwrap();
    eprintln!("generating {} trades...", args.trades);
    run(Command::new(&args.clearhouse).args([
        "gen",
        day.to_str().unwrap(),
        "--trades",
        &args.trades.to_string(),
        "--members",
        "200",
        "--instruments",
        "100",
        "--format",
        "jsonl",
        "--date",
        "2026-11-25",
    ]));
    for name in ["members.csv", "instruments.csv", "opening_balances.csv"] {
        std::fs::copy(day.join(name), reference.join(name)).unwrap();
    }
    let platform = std::fs::read_to_string(day.join("platform.toml")).unwrap();
    let tokens = format!(
        "\n[[tokens]]\nname = \"bench\"\nsha256 = \"{}\"\nrole = \"submit\"\n\
         [[tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nrole = \"operator\"\n",
        token_sha256_hex(SUBMIT),
        token_sha256_hex(OPERATOR)
    );
    std::fs::write(reference.join("platform.toml"), platform + &tokens).unwrap();
    run(Command::new(&args.clearhouse)
        .args(["init", reference.to_str().unwrap(), "--data-dir"])
        .arg(&data));
    let trades_file = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&trades_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let bodies: Vec<String> = lines.chunks(args.batch).map(|c| c.join("\n")).collect();
    let bytes: usize = bodies.iter().map(String::len).sum();

    let mut server = Server::start(&args.clearhouse, &data, args.batch);
    let open = server.post("/v1/sessions/2026-11-25/open", OPERATOR, b"");
    assert!(open.0 == 201, "open: {open:?}");

    eprintln!(
        "posting {} trades in {} batches of {} from {} clients ({:.1} MiB)...",
        lines.len(),
        bodies.len(),
        args.batch,
        args.clients,
        bytes as f64 / (1 << 20) as f64
    );
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|c| {
                let bodies = &bodies;
                let addr = server.addr;
                let path = format!("/v1/trades?results={}", args.results);
                scope.spawn(move || {
                    let mut conn = Conn::new(addr);
                    let mut latencies = Vec::new();
                    for body in bodies.iter().skip(c).step_by(args.clients) {
                        let t = Instant::now();
                        let (status, reply) = conn.post(&path, SUBMIT, body.as_bytes());
                        assert_eq!(status, 200, "{}", &reply[..reply.len().min(300)]);
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    let server_cpu = server.cpu_seconds() - cpu_before;
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let metrics = server.get("/metrics");
    let fsyncs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("clearhouse_journal_fsyncs_total "))
        .unwrap_or("?")
        .to_string();
    println!(
        "batch {:>6} ({} results): {} trades in {:.3}s = {:.0} trades/s ({:.1} MiB/s of JSON); batch latency p50 {:.1} ms, p99 {:.1} ms; {} fsyncs",
        args.batch,
        args.results,
        lines.len(),
        elapsed.as_secs_f64(),
        lines.len() as f64 / elapsed.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        fsyncs
    );
    // The machine may be shared: the server's own CPU time per trade does not depend on what
    // else runs, and bounds what two dedicated cores could take.
    let cpu_per_trade = server_cpu / lines.len() as f64;
    println!(
        "  server CPU {:.3}s = {:.2} µs/trade (user+sys): {:.0} trades/s per core, load average {}",
        server_cpu,
        cpu_per_trade * 1e6,
        1.0 / cpu_per_trade,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .next()
            .unwrap_or("?")
    );
    let t = Instant::now();
    let close = server.post("/v1/sessions/2026-11-25/close", OPERATOR, b"");
    assert!(close.0 == 200, "close: {}", close.1);
    println!(
        "close (seal + end-of-day batch on the journal): {:.3}s",
        t.elapsed().as_secs_f64()
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&args.work);
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(clearhouse: &Path, data: &Path, batch: usize) -> Server {
        let mut child = Command::new(clearhouse)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(["--max-trades-per-request", &batch.max(50_000).to_string()])
            .args(["--max-body-bytes", &(256usize << 20).to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("clearhouse: listening on http://")
            .unwrap_or_else(|| panic!("{line}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    fn post(&mut self, path: &str, token: &str, body: &[u8]) -> (u16, String) {
        Conn::new(self.addr).post(path, token, body)
    }

    fn get(&mut self, path: &str) -> String {
        Conn::new(self.addr).request("GET", path, None, b"").1
    }

    /// User + system CPU seconds of the server process so far (Linux /proc).
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is 14th, stime 15th.
        let after = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Clock ticks are USER_HZ, 100 on Linux.
        let hz = 100.0;
        (ticks(11) + ticks(12)) / hz
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 connection; replies must carry a content-length.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn post(&mut self, path: &str, token: &str, body: &[u8]) -> (u16, String) {
        self.request("POST", path, Some(token), body)
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        let auth = token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\n{auth}content-length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut reply = vec![0u8; length];
        self.reader.read_exact(&mut reply).unwrap();
        (status, String::from_utf8_lossy(&reply).into_owned())
    }
}
