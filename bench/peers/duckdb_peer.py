#!/usr/bin/env python3
"""Peer: DuckDB (with its delta extension, loaded from the duckdb-extension-delta package by path).

  --workload a --data NDJSON_DIR --out DIR                 NDJSON -> all-VARCHAR rows -> Parquet
                                                           (no Delta log: a ceiling, not a lakehouse write)
  --workload d --data SILVER_TABLE --query low|high --out FILE.parquet
                                                           delta_scan -> GROUP BY -> Parquet

Prints one JSON line; `op_s` is time.perf_counter() around the operation only (after imports,
connecting and loading the extension).

Workload a: read_json(format='newline_delimited', ignore_errors=true) does not keep to line
boundaries: a truncated line such as `{"event_id":"e1","user_id":` is parsed on into the next
line, and both come back as an all-NULL row, so a good record is lost. The lines are therefore
read as text (read_csv with a delimiter that never occurs), the ones that are valid JSON objects
kept, and from_json turns each into all-VARCHAR columns (numbers and nested objects as JSON text).

The session time zone is UTC (Strata's), so date_trunc('hour', ts) cuts hours the same way.
"""

import argparse
import glob
import os
import time

from common import FIELDS, emit, fail

import duckdb


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def connect() -> duckdb.DuckDBPyConnection:
    import duckdb_extension_delta as m

    base = os.path.dirname(m.__file__)
    ext = sorted(glob.glob(os.path.join(base, "**", "*.duckdb_extension"), recursive=True))
    if not ext:
        fail(f"no .duckdb_extension under {base}")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"LOAD {sql_str(ext[0])}")
    return con


def ingest(data: str, out: str) -> None:
    con = connect()
    files = sorted(glob.glob(os.path.join(data, "*.ndjson")))
    if not files:
        fail(f"no *.ndjson files in {data}")
    os.makedirs(out, exist_ok=True)
    target = os.path.join(out, "events.parquet")
    struct = "{" + ", ".join(f'"{f}": "VARCHAR"' for f in FIELDS) + "}"
    lines = (f"read_csv([{', '.join(sql_str(f) for f in files)}], columns = {{'line': 'VARCHAR'}}, "
             "header = false, delim = '\x01', quote = '', escape = '', auto_detect = false)")
    t0 = time.perf_counter()
    con.execute(f"""
        COPY (
            SELECT unnest(from_json(line, {sql_str(struct)}))
            FROM {lines}
            WHERE starts_with(line, '{{') AND json_valid(line)
        ) TO {sql_str(target)} (FORMAT parquet)""")
    op_s = time.perf_counter() - t0
    lines_read = con.execute(f"SELECT count(*) FROM {lines}").fetchone()[0]
    rows_out = con.execute(f"SELECT count(*) FROM read_parquet({sql_str(target)})").fetchone()[0]
    emit("duckdb", "a", "ingest", op_s, lines_read, rows_out=rows_out,
         reader="read_csv lines -> json_valid -> from_json(all VARCHAR)", writer="COPY TO Parquet (no Delta)")


QUERIES = {
    "low": """SELECT date_trunc('hour', ts) AS hour, country, event_type,
                     count(*) AS events, round(sum(amount), 2) AS amount
              FROM delta_scan({src}) GROUP BY ALL""",
    "high": """SELECT user_id, count(*) AS events, round(sum(amount), 2) AS amount
               FROM delta_scan({src}) GROUP BY ALL""",
}


def aggregate(silver: str, query: str, out: str) -> None:
    con = connect()
    t0 = time.perf_counter()
    con.execute(f"COPY ({QUERIES[query].format(src=sql_str(silver))}) TO {sql_str(out)} (FORMAT parquet)")
    op_s = time.perf_counter() - t0
    rows = con.execute(f"SELECT count(*) FROM read_parquet({sql_str(out)})").fetchone()[0]
    emit("duckdb", "d", f"agg_{query}", op_s, rows, rows_out=rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["a", "d"])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--query", choices=["low", "high"])
    a = p.parse_args()
    if a.workload == "a":
        ingest(a.data, a.out)
    else:
        aggregate(a.data, a.query, a.out)


if __name__ == "__main__":
    main()
