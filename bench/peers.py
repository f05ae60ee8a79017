"""The netting of a generated day done by DuckDB or Polars, for bench/run.sh.

    peers.py ENGINE FORMAT DAY_DIR NETS_CSV

ENGINE is duckdb or polars, FORMAT parquet or csv. Computes, per member and currency, what
Clearhouse's member_positions.csv calls net_amount (SPEC §3): Σ sold − Σ bought − Σ fees,
with A = round(price × quantity) and fee = max(round(A × fee_rate), min_fee) per side, both
rounded half away from zero to the currency's minor unit; and per member and instrument the
quantity net. Writes `member_id,currency,net_minor` to NETS_CSV and prints one JSON line with
the query time (seconds, imports and process start excluded) and the row counts.

Money is never a float here: prices are read as decimals and turned into integer thousandths
(gen's prices have 3 decimals, its currencies 2 minor digits), so rounding is integer
arithmetic, half away from zero (amounts and fees are positive): (x + half) // unit. Polars
rounds decimals half to even by default; integers sidestep that.
"""

import json
import sys
import time

PRICE_SCALE = 3  # clearhouse gen: prices have three decimals
MINOR_DIGITS = 2  # CNY and USD
RATE_SCALE = 5  # fee rates of gen: 0.0003 and 0.00025


def duckdb_nets(fmt, day):
    import duckdb

    con = duckdb.connect()
    con.execute("PRAGMA threads=2")
    if fmt == "parquet":
        source = f"read_parquet('{day}/trades*.parquet')"
    else:
        # Every column as text, then cast exactly: a price is never a float.
        source = (
            f"read_csv('{day}/trades*.csv', header=true, all_varchar=true)"
        )
    price_unit = 10 ** (PRICE_SCALE - MINOR_DIGITS)
    rate_unit = 10**RATE_SCALE
    query = f"""
    WITH t AS (
        SELECT buyer, seller, instrument,
               CAST(quantity AS BIGINT) AS q,
               CAST(CAST(price AS DECIMAL(18, {PRICE_SCALE})) * {10 ** PRICE_SCALE} AS BIGINT)
                   AS p
        FROM {source}
    ),
    i AS (SELECT instrument, currency FROM read_csv('{day}/instruments.csv', all_varchar=true)),
    m AS (
        SELECT member_id,
               CAST(CAST(fee_rate AS DECIMAL(18, {RATE_SCALE})) * {rate_unit} AS BIGINT) AS rate,
               CAST(CAST(min_fee AS DECIMAL(18, {MINOR_DIGITS})) * {10 ** MINOR_DIGITS} AS BIGINT)
                   AS min_fee
        FROM read_csv('{day}/members.csv', all_varchar=true)
    ),
    a AS (
        SELECT t.buyer, t.seller, t.instrument, t.q, i.currency,
               (t.p * t.q + {price_unit // 2}) // {price_unit} AS amount
        FROM t JOIN i USING (instrument)
    ),
    sides AS (
        SELECT buyer AS member, currency, instrument, -amount AS cash, amount, q FROM a
        UNION ALL
        SELECT seller AS member, currency, instrument, amount AS cash, amount, -q FROM a
    )
    SELECT s.member, s.currency, s.instrument, GROUPING(s.instrument) AS per_currency,
           sum(s.cash) - sum(greatest((s.amount * m.rate + {rate_unit // 2}) // {rate_unit},
                                      m.min_fee)) AS cash_net,
           sum(s.q) AS qty_net
    FROM sides s JOIN m ON m.member_id = s.member
    GROUP BY GROUPING SETS ((s.member, s.currency), (s.member, s.instrument))
    """
    # One scan for both nets (GROUPING SETS); the result, a row per member and instrument,
    # stays inside DuckDB as Polars' stays in its DataFrame: turning a million rows into
    # Python objects is not netting.
    start = time.perf_counter()
    con.execute(f"CREATE TEMP TABLE nets AS {query}")
    rows = con.execute(
        "SELECT member, currency, cash_net FROM nets WHERE per_currency = 1"
    ).fetchall()
    seconds = time.perf_counter() - start
    qty = con.execute("SELECT count(*) FROM nets WHERE per_currency = 0").fetchone()[0]
    cash = [(m, c, int(n)) for m, c, n in rows]
    return seconds, cash, qty


def polars_nets(fmt, day):
    import polars as pl

    if fmt == "parquet":
        trades = pl.scan_parquet(f"{day}/trades*.parquet")
        price = pl.col("price").cast(pl.Decimal(18, PRICE_SCALE))
    else:
        trades = pl.scan_csv(
            f"{day}/trades*.csv", infer_schema=False
        )  # every column as text
        price = pl.col("price").str.to_decimal(scale=PRICE_SCALE)
    # Decimal × 10^scale is exact; the cast to Int64 then only drops a zero fraction.
    p = (price * 10**PRICE_SCALE).cast(pl.Int64)
    q = pl.col("quantity").cast(pl.Int64)
    instruments = pl.scan_csv(f"{day}/instruments.csv", infer_schema=False).select(
        "instrument", "currency"
    )
    members = pl.scan_csv(f"{day}/members.csv", infer_schema=False).select(
        pl.col("member_id").alias("member"),
        (pl.col("fee_rate").str.to_decimal(scale=RATE_SCALE) * 10**RATE_SCALE)
        .cast(pl.Int64)
        .alias("rate"),
        (pl.col("min_fee").str.to_decimal(scale=MINOR_DIGITS) * 10**MINOR_DIGITS)
        .cast(pl.Int64)
        .alias("min_fee"),
    )
    price_unit = 10 ** (PRICE_SCALE - MINOR_DIGITS)
    rate_unit = 10**RATE_SCALE
    a = (
        trades.select("buyer", "seller", "instrument", p.alias("p"), q.alias("q"))
        .join(instruments, on="instrument")
        .with_columns(((pl.col("p") * pl.col("q") + price_unit // 2) // price_unit).alias("amount"))
    )
    sides = pl.concat(
        [
            a.select(pl.col("buyer").alias("member"), "currency", (-pl.col("amount")).alias("cash"), "amount"),
            a.select(pl.col("seller").alias("member"), "currency", pl.col("amount").alias("cash"), "amount"),
        ]
    )
    fee = pl.max_horizontal(
        (pl.col("amount") * pl.col("rate") + rate_unit // 2) // rate_unit, pl.col("min_fee")
    )
    cash = (
        sides.join(members, on="member")
        .group_by("member", "currency")
        .agg((pl.col("cash").sum() - fee.sum()).alias("net"))
    )
    qty = (
        pl.concat(
            [
                a.select(pl.col("buyer").alias("member"), "instrument", "q"),
                a.select(pl.col("seller").alias("member"), "instrument", (-pl.col("q")).alias("q")),
            ]
        )
        .group_by("member", "instrument")
        .agg(pl.col("q").sum().alias("net"))
    )
    start = time.perf_counter()
    cash_df, qty_df = pl.collect_all([cash, qty])
    seconds = time.perf_counter() - start
    rows = [(m, c, int(n)) for m, c, n in cash_df.iter_rows()]
    return seconds, rows, qty_df.height


def main():
    engine, fmt, day, out = sys.argv[1:5]
    nets = {"duckdb": duckdb_nets, "polars": polars_nets}[engine]
    seconds, cash, qty_rows = nets(fmt, day)
    with open(out, "w") as f:
        f.write("member_id,currency,net_minor\n")
        for m, c, n in sorted(cash):
            f.write(f"{m},{c},{n}\n")
    print(json.dumps({"engine": engine, "seconds": seconds, "cash_rows": len(cash), "qty_rows": qty_rows}))


if __name__ == "__main__":
    main()
