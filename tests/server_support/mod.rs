//! Helpers for the market-hours tests: a reference directory with tokens, the real server on
//! an ephemeral loopback port, and a minimal HTTP/1.1 client over `TcpStream`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SUBMIT: &str = "submit-secret";
pub const OPERATOR: &str = "operator-secret";

/// `[[tokens]]` with the SHA-256 of [`SUBMIT`] and [`OPERATOR`].
pub const TOKENS_TOML: &str = r#"
[[tokens]]
name = "gateway"
sha256 = "5e22e6a4e86a27864fa03ba57fcc930878982f7c665a88454a35e817810035f5"
role = "submit"

[[tokens]]
name = "ops"
sha256 = "ec585b7be286a5088d8687af4ce027f389cd098e2bb0dee876d5521fa4468f59"
role = "operator"
"#;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clearhouse")
}

/// Copies `from`'s reference files (and opening files, if `openings`) to `to`, with tokens
/// added to platform.toml.
pub fn reference_dir(from: &Path, to: &Path, openings: bool) {
    std::fs::create_dir_all(to).unwrap();
    let mut names = vec!["members.csv", "instruments.csv"];
    if openings {
        names.extend(["opening_balances.csv", "opening_positions.csv"]);
    }
    for name in names {
        if from.join(name).exists() {
            std::fs::copy(from.join(name), to.join(name)).unwrap();
        }
    }
    let platform = std::fs::read_to_string(from.join("platform.toml")).unwrap();
    std::fs::write(to.join("platform.toml"), platform + TOKENS_TOML).unwrap();
}

/// `--ledger URL` when the test runs on PostgreSQL ([`crate::common::on_postgres`]).
pub fn ledger_args(data: &Path) -> Vec<String> {
    crate::common::ledger_url(data)
        .map(|url| vec!["--ledger".to_string(), url])
        .unwrap_or_default()
}

/// `clearhouse init REF --data-dir DATA`, which must succeed.
pub fn init(reference: &Path, data: &Path) {
    let out = Command::new(bin())
        .args(["init", reference.to_str().unwrap(), "--data-dir"])
        .arg(data)
        .args(ledger_args(data))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real server, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        // The server's log goes to a file beside the data directory: a pipe nobody reads
        // could fill up and stall it.
        let log = data.with_extension("serve.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(ledger_args(data))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("clearhouse: listening on http://") else {
            let _ = child.wait();
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("server did not start: {line:?} {err}");
        };
        Server {
            addr: addr.parse().unwrap(),
            child,
        }
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}");
        self.child.wait().unwrap()
    }

    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Reply {
        request(self.addr, method, path, token, body).expect("request")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request on a fresh connection (`Connection: close`); the reply is read to the end.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    head.push_str("content-type: application/json\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> std::io::Result<Reply> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad HTTP reply");
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body).ok_or_else(bad)?
    } else {
        body.to_string()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// Trades as NDJSON objects (SPEC §2.4 keys).
pub fn trade_json(
    id: &str,
    date: &str,
    instrument: &str,
    buyer: &str,
    seller: &str,
    price: &str,
    quantity: i64,
) -> String {
    format!(
        r#"{{"trade_id":"{id}","business_date":"{date}","instrument":"{instrument}","buyer":"{buyer}","seller":"{seller}","price":"{price}","quantity":{quantity}}}"#
    )
}

/// A trade of samples/day1's reference data that is always valid.
pub fn day1_trade(id: &str) -> String {
    trade_json(id, "2026-11-25", "FUNDX", "ALPHA", "BETA", "1.000", 1)
}

pub fn data_dir_of(tmp: &Path, name: &str) -> PathBuf {
    tmp.join(name)
}
