#!/usr/bin/env bash
# Runs every fuzz target for a bounded time with a seed corpus made from samples/.
# Not part of CI (it needs cargo-fuzz and minutes per target):
#   bash fuzz/run.sh [SECONDS_PER_TARGET]     (default 60)
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the machine's stable
# toolchain accept them, since no other toolchain can be installed here.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1

seed() { # target, files...
  local dir="corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/$(echo "$f" | tr '/' '_')"; done
}
seed trades_csv ../samples/*/trades*.csv ../samples/bad/*/trades.csv
seed trades_jsonl ../samples/*/trades*.jsonl
seed reference_csv ../samples/*/members.csv ../samples/*/instruments.csv ../samples/*/opening_*.csv
seed platform_toml ../samples/*/platform.toml ../samples/bad/*/platform.toml
seed http_body ../samples/*/trades*.jsonl
seed bank_files ../formats/tests/data/camt/*.xml
seed trades_parquet seeds/trades_parquet/*.parquet
seed fund_events ../samples/*/deposits.csv ../samples/*/withdrawals.csv ../samples/*/freezes.csv ../samples/*/members.csv

mkdir -p results
for target in $(cargo fuzz list); do
  echo "== $target ($seconds s)"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    2>&1 | tee "results/$target.log" | grep -E "^#[0-9]+.*(DONE|pulse)|SUMMARY|panicked|ERROR" || true
  grep -E "^Done [0-9]+ runs|stat::number_of_executed_units" "results/$target.log" | tail -1 || true
done
# One line per target for RELIABILITY.md: executions, and whether libFuzzer saved a crash.
for target in $(cargo fuzz list); do
  runs=$(grep -oE "^Done [0-9]+ runs" "results/$target.log" | grep -oE "[0-9]+" || echo "?")
  crashes=$(ls "artifacts/$target" 2>/dev/null | grep -cE "^(crash|oom|timeout|leak)-" || true)
  echo "$target runs=$runs findings=$crashes"
done | tee results/summary.txt
