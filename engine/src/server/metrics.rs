//! Counters of the intake server, rendered in the Prometheus text format (`GET /metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the batch latency histogram, in seconds.
const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub appends: AtomicU64,
    pub append_bytes: AtomicU64,
    /// fsyncs of the sessions closed by this process; the open one's are read live.
    pub fsyncs_closed_sessions: AtomicU64,
    pub batches_accepted: AtomicU64,
    pub batches_refused: AtomicU64,
    pub trades_created: AtomicU64,
    pub trades_already_existed: AtomicU64,
    pub trades_refused: AtomicU64,
    pub unauthorized: AtomicU64,
    pub forbidden: AtomicU64,
    pub over_limit: AtomicU64,
    pub connections_refused: AtomicU64,
    pub sessions_closed: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// Records the time from a batch's arrival to its answer (after the fsync).
    pub fn observe_batch(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, count) in LATENCY_BUCKETS_S.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Relaxed);
    }

    /// The text format; `open_fsyncs` are those of the open session's journal.
    pub fn render(&self, open_fsyncs: u64, open_session: Option<&str>) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, series: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in series {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let get = |c: &AtomicU64| c.load(Relaxed);
        counter(
            "clearhouse_journal_appends_total",
            "Journal records appended (session headers and trade batches).",
            &[("", get(&self.appends))],
        );
        counter(
            "clearhouse_journal_append_bytes_total",
            "Payload bytes appended to journals.",
            &[("", get(&self.append_bytes))],
        );
        counter(
            "clearhouse_journal_fsyncs_total",
            "fdatasync calls of the journal writers (group commits, rolls, seals).",
            &[("", get(&self.fsyncs_closed_sessions) + open_fsyncs)],
        );
        counter(
            "clearhouse_batches_total",
            "Trade batches by outcome.",
            &[
                ("{result=\"accepted\"}", get(&self.batches_accepted)),
                ("{result=\"refused\"}", get(&self.batches_refused)),
            ],
        );
        counter(
            "clearhouse_trades_total",
            "Trades by result.",
            &[
                ("{result=\"created\"}", get(&self.trades_created)),
                (
                    "{result=\"already_existed\"}",
                    get(&self.trades_already_existed),
                ),
                ("{result=\"refused\"}", get(&self.trades_refused)),
            ],
        );
        counter(
            "clearhouse_requests_denied_total",
            "Requests refused before any work, by reason.",
            &[
                ("{reason=\"unauthorized\"}", get(&self.unauthorized)),
                ("{reason=\"forbidden\"}", get(&self.forbidden)),
                ("{reason=\"limit\"}", get(&self.over_limit)),
                ("{reason=\"connections\"}", get(&self.connections_refused)),
            ],
        );
        counter(
            "clearhouse_sessions_closed_total",
            "Sessions sealed and batched by this process.",
            &[("", get(&self.sessions_closed))],
        );
        let name = "clearhouse_batch_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From a trade batch's arrival to its durable answer.\n# TYPE {name} histogram"
        );
        for (bound, count) in LATENCY_BUCKETS_S.iter().zip(&self.latency_buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", get(count));
        }
        let total = get(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = get(&self.latency_sum_us) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
        let _ = writeln!(
            out,
            "# HELP clearhouse_session_open Whether a session is open (its date as a label).\n# TYPE clearhouse_session_open gauge"
        );
        match open_session {
            Some(date) => {
                let _ = writeln!(out, "clearhouse_session_open{{date=\"{date}\"}} 1");
            }
            None => {
                let _ = writeln!(out, "clearhouse_session_open 0");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.appends.fetch_add(3, Relaxed);
        m.observe_batch(Duration::from_micros(700));
        m.observe_batch(Duration::from_millis(20));
        let text = m.render(5, Some("2026-11-25"));
        assert!(text.contains("clearhouse_journal_appends_total 3\n"));
        assert!(text.contains("clearhouse_journal_fsyncs_total 5\n"));
        assert!(text.contains("clearhouse_batch_latency_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("clearhouse_batch_latency_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("clearhouse_batch_latency_seconds_bucket{le=\"0.025\"} 2\n"));
        assert!(text.contains("clearhouse_batch_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("clearhouse_batch_latency_seconds_count 2\n"));
        assert!(text.contains("clearhouse_session_open{date=\"2026-11-25\"} 1\n"));
    }
}
