#!/usr/bin/env bash
# End-of-day throughput against DuckDB and Polars (issue 4).
#
#   bench/run.sh [SIZE...]          sizes like 1M 10M 100M (default: 1M 10M 100M)
#
# For each size and format (FORMATS, default "parquet csv") it generates a day with
# `clearhouse gen` (1,000 members, 2,000 instruments, 5 banks, CNY and USD, FILES files,
# default 4), times `clearhouse run` on it, times the same netting in DuckDB and in Polars
# (bench/peers.py, in a venv at bench/.venv that this script creates from PyPI), checks that
# every member's net per currency is the same in all three, and prints a table: trades/s,
# ratios ours/peer and peak RSS (/usr/bin/time -v). Results also go to bench/out/results.md.
#
# Each engine runs REPEAT times (default 3), interleaved (ours, DuckDB, Polars, ours, ...), so
# that a slow minute of the machine hits all three alike; the table shows each one's median
# and the ratios of the medians, and bench/out/runs.md every single run.
#
# Environment: FORMATS, FILES, PEERS (default "duckdb polars"), REPEAT (default 3),
# SKIP_BUILD=1 (use the built binary), KEEP=1 (keep the generated days in bench/out), OUT
# (default bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1M 10M 100M)
FORMATS=${FORMATS:-"parquet csv"}
FILES=${FILES:-4}
PEERS=${PEERS:-"duckdb polars"}
REPEAT=${REPEAT:-3}
OUT=${OUT:-$ROOT/bench/out}
BIN=$ROOT/target/release/clearhouse
VENV=$ROOT/bench/.venv
TIME=/usr/bin/time
mkdir -p "$OUT"

[ -x "$TIME" ] || { echo "bench: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -p clearhouse
fi
if [ -n "$PEERS" ] && ! "$VENV/bin/python" -c "import duckdb, polars" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet duckdb polars
fi

trades_of() { # 1M -> 1000000, 10K -> 10000, 123 -> 123
    local s=$1
    case $s in
        *M) echo $(( ${s%M} * 1000000 )) ;;
        *K) echo $(( ${s%K} * 1000 )) ;;
        *) echo "$s" ;;
    esac
}

# Bytes a day needs on disk (trade files, then outputs and ledger, ~200 MB at most).
bytes_needed() { # trades format
    local per=11
    [ "$2" = csv ] && per=82
    echo $(( $1 * per + 400 * 1000 * 1000 ))
}

# "<seconds> <peak RSS in MiB>" of a /usr/bin/time -v log.
time_of() {
    awk -F': ' '/Elapsed \(wall clock\)/ {
                    n = split($2, p, ":"); s = 0
                    for (i = 1; i <= n; i++) s = s * 60 + p[i]
                    wall = s }
                /Maximum resident set size/ { rss = $2 / 1024 }
                END { printf "%.2f %.0f\n", wall, rss }' "$1"
}

# Every member's net per currency, in minor units, from our member_positions.csv.
our_nets() { # member_positions.csv out.csv
    "$VENV/bin/python" - "$1" "$2" <<'PY'
import csv, sys
rows = []
with open(sys.argv[1]) as f:
    for r in csv.DictReader(f):
        whole, _, frac = r["net_amount"].partition(".")
        sign = -1 if whole.startswith("-") else 1
        minor = abs(int(whole)) * 10 ** len(frac) + (int(frac) if frac else 0)
        rows.append((r["member_id"], r["currency"], sign * minor))
with open(sys.argv[2], "w") as f:
    f.write("member_id,currency,net_minor\n")
    for m, c, n in sorted(rows):
        f.write(f"{m},{c},{n}\n")
PY
}

# The median of numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]
        else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }

RESULTS=$OUT/results.md
RUNS=$OUT/runs.md
{
    echo "| trades | format | files | runs | ours: run s | trades/s | netting s | RSS MiB | DuckDB s | RSS MiB | netting / DuckDB | run / DuckDB | Polars s | RSS MiB | netting / Polars | nets equal |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} > "$RESULTS"
{
    echo "| trades | format | run | ours: run s | netting s | DuckDB s | Polars s | netting / DuckDB | run / DuckDB | netting / Polars |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$RUNS"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"

for size in "${SIZES[@]}"; do
    n=$(trades_of "$size")
    for format in $FORMATS; do
        day=$OUT/day-$size-$format
        need=$(bytes_needed "$n" "$format")
        avail=$(( $(df --output=avail -k "$OUT" | tail -1) * 1024 ))
        if [ ! -d "$day" ] && [ "$avail" -lt "$need" ]; then
            echo "skip $size $format: needs ~$(( need / 1000000 )) MB on $(df --output=target "$OUT" | tail -1), $(( avail / 1000000 )) MB free"
            echo "| $size | $format | skipped: not enough disk | | | | | | | | | | | | |" >> "$RESULTS"
            continue
        fi
        if [ ! -d "$day" ]; then
            echo "gen $size $format ($FILES files)"
            "$BIN" gen "$day" --trades "$n" --members 1000 --instruments 2000 --banks 5 \
                --currencies CNY,USD --format "$format" --files "$FILES" > /dev/null
        fi
        data=$OUT/data-$size-$format
        walls=() nettings=() rsses=() duckdbs=() duckdb_rsses=() polarses=() polars_rsses=()
        equal=yes
        for rep in $(seq "$REPEAT"); do
            rm -rf "$data"
            sync
            $TIME -v "$BIN" run "$day" --data-dir "$data" > "$OUT/run-$size-$format.txt" 2> "$OUT/time-$size-$format.txt" || {
                echo "clearhouse run failed: $(tail -5 "$OUT/run-$size-$format.txt")" >&2; exit 1; }
            read -r wall rss < <(time_of "$OUT/time-$size-$format.txt")
            summary=$(ls "$data"/out/*/summary.json)
            netting=$("$VENV/bin/python" -c "import json,sys; t=json.load(open(sys.argv[1]))['timings_ms']; print('%.2f' % ((t['read+validate'] + t['net']) / 1000))" "$summary")
            walls+=("$wall") nettings+=("$netting") rsses+=("$rss")
            our_nets "$(dirname "$summary")/member_positions.csv" "$OUT/nets-ours.csv"
            run_row="| $size | $format | $rep | $wall | $netting"
            for peer in duckdb polars; do
                if [[ " $PEERS " != *" $peer "* ]]; then
                    run_row="$run_row |"
                    continue
                fi
                $TIME -v "$VENV/bin/python" "$ROOT/bench/peers.py" "$peer" "$format" "$day" "$OUT/nets-$peer.csv" \
                    > "$OUT/$peer-$size-$format.json" 2> "$OUT/time-$peer-$size-$format.txt" || {
                    echo "$peer failed: $(tail -5 "$OUT/time-$peer-$size-$format.txt")" >&2; exit 1; }
                read -r _ peer_rss < <(time_of "$OUT/time-$peer-$size-$format.txt")
                peer_s=$("$VENV/bin/python" -c "import json,sys; print('%.2f' % json.load(open(sys.argv[1]))['seconds'])" "$OUT/$peer-$size-$format.json")
                cmp -s "$OUT/nets-ours.csv" "$OUT/nets-$peer.csv" || equal="no ($peer differs)"
                run_row="$run_row | $peer_s"
                if [ $peer = duckdb ]; then
                    duckdbs+=("$peer_s") duckdb_rsses+=("$peer_rss")
                else
                    polarses+=("$peer_s") polars_rsses+=("$peer_rss")
                fi
            done
            d="" p=""
            [ ${#duckdbs[@]} -eq 0 ] || d=${duckdbs[-1]}
            [ ${#polarses[@]} -eq 0 ] || p=${polarses[-1]}
            echo "$run_row | ${d:+$(ratio "$netting" "$d")} | ${d:+$(ratio "$wall" "$d")} | ${p:+$(ratio "$netting" "$p")} |" >> "$RUNS"
        done
        wall=$(median "${walls[@]}") netting=$(median "${nettings[@]}") rss=$(median "${rsses[@]}")
        per_s=$("$VENV/bin/python" -c "print(f'{$n / $wall / 1e6:.2f} M')")
        row="| $size | $format | $FILES | $REPEAT | $wall | $per_s | $netting | ${rss%.*}"
        if [ ${#duckdbs[@]} -gt 0 ]; then
            d=$(median "${duckdbs[@]}")
            row="$row | $d | $(median "${duckdb_rsses[@]}" | cut -d. -f1) | $(ratio "$netting" "$d") | $(ratio "$wall" "$d")"
        else
            row="$row | | | | "
        fi
        if [ ${#polarses[@]} -gt 0 ]; then
            p=$(median "${polarses[@]}")
            row="$row | $p | $(median "${polars_rsses[@]}" | cut -d. -f1) | $(ratio "$netting" "$p")"
        else
            row="$row | | |"
        fi
        row="$row | $equal |"
        echo "$row" >> "$RESULTS"
        echo "$row"
        [ "${KEEP:-0}" = 1 ] || rm -rf "$day" "$data"
    done
done
echo
echo "medians of $REPEAT interleaved runs each (every run: $RUNS); ratios are ratios of the medians."
echo "ours: whole 'clearhouse run' wall time (validate, de-duplicate, net, post, instruct, write"
echo "outputs, commit); netting = its read+validate and net stages (summary.json timings_ms)."
echo "DuckDB / Polars: the netting query only, in process (imports and process start excluded)."
echo
cat "$RESULTS"
