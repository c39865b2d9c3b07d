#!/usr/bin/env python3
"""Peer: Polars (with its Delta support, which writes through the deltalake package).

  --workload a --data NDJSON_DIR --out TABLE_DIR           NDJSON -> all-string frame -> write_delta
  --workload d --data SILVER_TABLE --query low|high --out FILE.parquet
                                                           scan_delta -> group_by -> Parquet
  --workload f --data TABLE_DIR [--version N]              scan_delta(..., version=N) row count

Prints one JSON line; `op_s` is time.perf_counter() around the operation only (after imports
and argument parsing).

Workload a: Polars' NDJSON reader stops at a malformed line (ignore_errors does not skip it), so
the lines are read as text first (read_csv with a delimiter that never occurs), lines that are
not one JSON object are dropped (common.JSON_OBJECT_LINE, a regular expression: Polars has no
JSON validity test that is not far slower), and the rest goes to read_ndjson with an all-String schema (numbers and
nested objects come back as their JSON text).

Workload d: a sum over a group whose amounts are all NULL is NULL in SQL but 0 in Polars; the
aggregate keeps SQL's meaning so the results compare.
"""

import argparse
import glob
import io
import os
import time

from common import FIELDS, JSON_OBJECT_LINE, emit, fail

import polars as pl

SCHEMA = {f: pl.String for f in FIELDS}


def ingest(data: str, out: str) -> None:
    files = sorted(glob.glob(os.path.join(data, "*.ndjson")))
    if not files:
        fail(f"no *.ndjson files in {data}")
    t0 = time.perf_counter()
    lines_read = 0
    frames = []
    for f in files:
        lines = pl.read_csv(f, has_header=False, separator="\x01", quote_char=None,
                            schema={"line": pl.String})
        lines_read += lines.height
        objects = lines.filter(pl.col("line").str.contains(JSON_OBJECT_LINE))
        if objects.height == 0:
            continue
        text = objects.select(pl.col("line").str.join("\n")).item()
        frames.append(pl.read_ndjson(io.BytesIO(text.encode()), schema=SCHEMA))
    df = pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)
    df.write_delta(out)
    op_s = time.perf_counter() - t0
    emit("polars", "a", "ingest", op_s, lines_read, rows_out=df.height,
         reader="read_csv lines -> JSON object regex -> read_ndjson(all String)", writer="write_delta")


def money_sum() -> pl.Expr:
    amount = pl.col("amount")
    return pl.when(amount.count() > 0).then(amount.sum().round(2)).otherwise(None).alias("amount")


def aggregate(silver: str, query: str, out: str) -> None:
    t0 = time.perf_counter()
    lf = pl.scan_delta(silver)
    if query == "low":
        keys = [pl.col("ts").dt.truncate("1h").alias("hour"), "country", "event_type"]
    else:
        keys = ["user_id"]
    result = lf.group_by(keys).agg(pl.len().alias("events"), money_sum())
    result.sink_parquet(out)
    op_s = time.perf_counter() - t0
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    emit("polars", "d", f"agg_{query}", op_s, rows, rows_out=rows)


def count(path: str, version) -> None:
    t0 = time.perf_counter()
    lf = pl.scan_delta(path) if version is None else pl.scan_delta(path, version=version)
    n = lf.select(pl.len()).collect().item()
    op_s = time.perf_counter() - t0
    emit("polars", "f", "count_latest" if version is None else f"count_v{version}", op_s, n, count=n)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["a", "d", "f"])
    p.add_argument("--data", required=True)
    p.add_argument("--out")
    p.add_argument("--query", choices=["low", "high"])
    p.add_argument("--version", type=int)
    a = p.parse_args()
    if a.workload == "a":
        ingest(a.data, a.out)
    elif a.workload == "d":
        aggregate(a.data, a.query, a.out)
    else:
        count(a.data, a.version)


if __name__ == "__main__":
    main()
