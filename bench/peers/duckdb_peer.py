#!/usr/bin/env python3
"""Peer: DuckDB (with its delta extension, loaded from the duckdb-extension-delta package by path).

  --workload a --data NDJSON_DIR --out DIR                 NDJSON -> all-VARCHAR rows -> Parquet
                                                           (no Delta log: a ceiling, not a lakehouse write)
  --workload b --data BRONZE_TABLE --out DIR              delta_scan -> casts, rules, latest per event_id
                                                           (SQL) -> DIR/silver and DIR/quarantine, two
                                                           Delta tables written by deltalake.write_deltalake
  --workload d --data SILVER_TABLE --query low|high --out FILE.parquet
                                                           delta_scan -> GROUP BY -> Parquet
  --workload e --data SILVER_TABLE --out FILE.json        the 30 expectations of expectations.py in
                                                           one hand-written SELECT over delta_scan

Prints one JSON line; `op_s` is time.perf_counter() around the operation only (after imports,
connecting and loading the extension).

Workload a: read_json(format='newline_delimited', ignore_errors=true) does not keep to line
boundaries: a truncated line such as `{"event_id":"e1","user_id":` is parsed on into the next
line, and both come back as an all-NULL row, so a good record is lost. The lines are therefore
read as text (read_csv with a delimiter that never occurs), the ones that are valid JSON objects
kept, and from_json turns each into all-VARCHAR columns (numbers and nested objects as JSON text).

Workload b: the shipped example pipeline's silver_events flow (examples/events.pipeline.toml) in
DuckDB SQL, as the pipeline test's DuckDB oracle does it, over bronze.events: the strict casts
(TIMESTAMP by the grammar in common.py with its fields' ranges checked, no offset meaning UTC,
fractions past microseconds cut; DECIMAL(18,4) from the JSON number grammar, rounded half away
from zero, more than 18 digits failing), a row with a failed cast to quarantine with stage
`cast`, the five rules (and the merge key's not-null rule) sending a failing row to quarantine with
stage `expectation` and the rules it failed, then the latest row per event_id by event_ts, a tie
going to the later arrival (bronze's _batch_id, _source_file, _source_line). Silver is written
partitioned by event_date, as the flow's target is; the quarantine rows carry the event_id, the
stage, the failed rules, a reason, the row as JSON and its bronze file and line.

The session time zone is UTC (Strata's), so date_trunc('hour', ts) cuts hours the same way.
"""

import argparse
import glob
import json
import os
import time

from common import (AMOUNT_SIMPLE, ARRIVAL, FIELDS, JSON_NUMBER, JSON_NUMBER_GROUPS, KNOWN_EVENT_TYPES,
                    TIMESTAMP_GROUPS, TIMESTAMP_TEXT, emit, fail)

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


# ---------------------------------------------------------------- workload e


def expectations(silver: str, out: str) -> None:
    """All 30 metrics in one SELECT (the fused reference), then each rule's verdict from them."""
    from expectations import EXPECTATIONS, SQL_FN, condition

    cols, names = ["count(*)"], []
    for name, kind, a in EXPECTATIONS:
        if kind in ("not_null", "in", "between", "regex", "pair"):
            cols.append(f"sum(CASE WHEN coalesce({condition(kind, a)}, false) THEN 0 ELSE 1 END)")
        elif kind == "unique":
            # rows beyond the first of each value, NULL counting as one value (as GROUP BY does)
            c = a["column"]
            cols.append(f"count(*) - count(DISTINCT {c}) - (CASE WHEN count({c}) < count(*) THEN 1 ELSE 0 END)")
        elif kind == "row_count":
            cols.append("count(*)")
        elif kind == "agg":
            cols.append(f"{SQL_FN[a['fn']]}({a['column']})")
        names.append((name, kind, a))
    con = connect()
    t0 = time.perf_counter()
    row = con.execute(f"SELECT {', '.join(cols)} FROM delta_scan({sql_str(silver)})").fetchone()
    op_s = time.perf_counter() - t0
    rows = row[0]
    results = {}
    for (name, kind, a), v in zip(names, row[1:]):
        if kind == "row_count":
            ok = a["min"] <= v <= a["max"]
            results[name] = {"success": ok, "failed": None, "observed": v}
        elif kind == "agg":
            ok = v is not None and a["min"] <= v <= a["max"]
            results[name] = {"success": ok, "failed": None, "observed": v}
        else:
            results[name] = {"success": v == 0, "failed": int(v), "observed": None}
    with open(out, "w") as fh:
        json.dump({"rows": rows, "results": results}, fh)
    emit("duckdb", "e", "expectations", op_s, rows)


# ---------------------------------------------------------------- workload b

def sql_list(xs) -> str:
    return "[" + ", ".join(sql_str(x) for x in xs) + "]"


# The exact DECIMAL(18,4) of a JSON number's text through its digits (no float): the number is
# digits(i ++ f) * 10^(e - len(f)), so its unscaled value at scale 4 keeps every digit followed
# by k = e - len(f) + 4 zeros, or drops the last -k digits, the first dropped one deciding the
# rounding (half away from zero). NULL when it is no JSON number or needs more than 18 digits.
# Text the plain cast takes exactly (at most 14 integer and 4 fraction digits, no exponent) is
# cast; only the rest (exponents, 5+ fraction digits, anything malformed) goes through the digits.
DECIMAL_MACROS = f"""
CREATE MACRO dec_exp(e) AS CASE WHEN e = '' THEN 0::BIGINT
    ELSE coalesce(try_cast(e AS BIGINT),
                  CASE WHEN starts_with(e, '-') THEN -1000000000000000000 ELSE 1000000000000000000 END::BIGINT) END;
CREATE MACRO dec_unscaled(digits, k) AS CASE
    WHEN digits = '' THEN 0::HUGEINT
    WHEN length(digits) + k > 18 THEN NULL
    WHEN k >= 0 THEN CAST(digits || repeat('0', CAST(k AS BIGINT)) AS HUGEINT)
    WHEN -k > length(digits) THEN 0::HUGEINT
    ELSE coalesce(try_cast(left(digits, CAST(length(digits) + k AS BIGINT)) AS HUGEINT), 0::HUGEINT)
         + CASE WHEN substr(digits, CAST(length(digits) + k + 1 AS BIGINT), 1) >= '5' THEN 1 ELSE 0 END END;
CREATE MACRO dec_from(neg, u) AS CASE WHEN u IS NULL OR u >= 1000000000000000000 THEN NULL
    ELSE CAST(neg || CAST(u // 10000 AS VARCHAR) || '.' || lpad(CAST(u % 10000 AS VARCHAR), 4, '0')
              AS DECIMAL(18,4)) END;
CREATE MACRO dec_of_parts(n) AS CASE WHEN n.i = '' THEN NULL
    ELSE dec_from(n.neg, dec_unscaled(ltrim(n.i || n.f, '0'), dec_exp(n.e) - length(n.f) + 4)) END;
CREATE MACRO strict_decimal_18_4(a) AS CASE
    WHEN a IS NULL THEN NULL
    WHEN regexp_full_match(a, {sql_str(AMOUNT_SIMPLE)}) THEN CAST(a AS DECIMAL(18,4))
    ELSE dec_of_parts(regexp_extract(a, {sql_str(JSON_NUMBER)}, {sql_list(JSON_NUMBER_GROUPS)})) END;
"""

RULE_FLAGS = [("f_event_id", "event_id_present"), ("f_user_id", "user_id_present"),
              ("f_event_ts", "event_ts_present"), ("f_event_type", "known_event_type"),
              ("f_amount", "amount_not_negative")]


def checked_sql(bronze: str, bronze_cols: list[str]) -> str:
    """Every bronze row, typed, with its cast and rule verdicts."""
    types = ", ".join(sql_str(t) for t in KNOWN_EVENT_TYPES)
    # a column the source has not sent yet is NULL
    pick = ", ".join(f'b."{c}"' if c in bronze_cols else f"NULL::VARCHAR AS {c}"
                     for c in ["event_id", "user_id", "event_type", "ts", "session_id", "amount",
                               "country", "device"])
    # the bronze row, for a row whose cast fails (its quarantine record)
    raw = "struct_pack(" + ", ".join(f'"{c}" := "_raw_{c}"' for c in bronze_cols) + ")"
    keep = ", ".join(f'b."{c}" AS "_raw_{c}"' for c in bronze_cols)
    arrival = ", ".join(f"b.{c}" for c in ARRIVAL)
    return f"""
    CREATE TEMP TABLE checked AS
    WITH src AS (
      SELECT {arrival}, {pick}, {keep}
      FROM delta_scan({sql_str(bronze)}) AS b
    ), p AS (
      SELECT *,
        regexp_extract(ts, {sql_str(TIMESTAMP_TEXT)}, {sql_list(TIMESTAMP_GROUPS)}) AS t,
        strict_decimal_18_4(amount) AS amount_dec
      FROM src
    ), q AS (
      SELECT *,
        try_cast(t.y || '-' || t.mo || '-' || t.d AS DATE) AS day,
        try_cast(t.h AS BIGINT) AS hh, try_cast(t.mi AS BIGINT) AS mi,
        CASE WHEN t.s = '' THEN 0 ELSE try_cast(t.s AS BIGINT) END AS ss,
        CASE WHEN t.f = '' THEN 0 ELSE try_cast(rpad(left(t.f, 6), 6, '0') AS BIGINT) END AS us,
        CASE WHEN t.z IN ('', 'Z') THEN 0 ELSE try_cast(substr(t.z, 2, 2) AS BIGINT) END AS oh,
        CASE WHEN length(t.z) = 6 THEN try_cast(substr(t.z, 5, 2) AS BIGINT) ELSE 0 END AS om
      FROM p
    ), r AS (
      SELECT *,
        ts IS NULL OR coalesce(t.y <> '' AND day IS NOT NULL AND hh <= 23 AND mi <= 59 AND ss <= 59
                               AND oh <= 23 AND om <= 59, FALSE) AS ts_ok,
        amount IS NULL OR amount_dec IS NOT NULL AS amount_ok
      FROM q
    ), typed AS (
      SELECT *,
        CASE WHEN ts IS NOT NULL AND ts_ok THEN
          make_timestamp((day - DATE '1970-01-01')::BIGINT * 86400000000
            + ((hh * 60 + mi) * 60 + ss
               - (CASE WHEN starts_with(t.z, '-') THEN -1 ELSE 1 END) * (oh * 3600 + om * 60)) * 1000000
            + us)::TIMESTAMPTZ END AS event_ts,
        NOT (ts_ok AND amount_ok) AS cast_failed
      FROM r
    )
    SELECT {', '.join(ARRIVAL)}, CASE WHEN cast_failed THEN to_json({raw})::VARCHAR END AS raw_json, event_id, user_id, event_type, ts, amount, session_id, country,
      device, event_ts, amount_dec AS amount_typed, CAST(event_ts AS DATE) AS event_date, cast_failed,
      ts_ok, amount_ok,
      event_id IS NULL AS f_event_id,
      user_id IS NULL AS f_user_id,
      event_ts IS NULL AS f_event_ts,
      coalesce(event_type NOT IN ({types}), TRUE) AS f_event_type,
      coalesce(amount_dec < 0, TRUE) AS f_amount
    FROM typed
    """


PASSED = "NOT cast_failed AND NOT (" + " OR ".join(f for f, _ in RULE_FLAGS) + ")"

SILVER_SQL = f"""
    SELECT event_id, user_id, event_type, event_ts, session_id, amount_typed AS amount, event_date,
           country, device
    FROM checked
    WHERE {PASSED}
    QUALIFY row_number() OVER (PARTITION BY event_id
                               ORDER BY event_ts DESC, {', '.join(c + ' DESC' for c in ARRIVAL)}) = 1
"""

_names = ", ".join(f"CASE WHEN {f} THEN '{name}' END" for f, name in RULE_FLAGS)  # NULL when passed
_failed = f"list_filter([{_names}], x -> x IS NOT NULL)"

QUARANTINE_SQL = f"""
    SELECT event_id,
      CASE WHEN cast_failed THEN 'cast' ELSE 'expectation' END AS stage,
      CASE WHEN cast_failed THEN []::VARCHAR[]
           ELSE list_concat({_failed}, CASE WHEN f_event_id THEN ['key_not_null'] ELSE [] END) END AS rules,
      CASE WHEN cast_failed THEN concat_ws('; ',
             CASE WHEN NOT ts_ok THEN 'column ts: value ''' || ts || ''' is not a valid TIMESTAMP' END,
             CASE WHEN NOT amount_ok THEN 'column amount: value ''' || amount || ''' is not a valid DECIMAL(18,4)' END)
           ELSE 'failed ' || concat_ws(', ', {_names}) END AS reason,
      CASE WHEN cast_failed THEN raw_json
           ELSE to_json(struct_pack(event_id, user_id, event_type, event_ts, session_id,
                                    amount := amount_typed, event_date, country, device))::VARCHAR END AS record,
      _source_file AS source_file, _source_line AS source_line
    FROM checked
    WHERE NOT ({PASSED})
"""


def silver(bronze: str, out: str) -> None:
    from deltalake import write_deltalake

    con = connect()
    t0 = time.perf_counter()
    con.execute(DECIMAL_MACROS)
    bronze_cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM delta_scan({sql_str(bronze)})").fetchall()]
    con.execute(checked_sql(bronze, bronze_cols))
    silver_rows = con.execute(SILVER_SQL).to_arrow_table()
    quarantine_rows = con.execute(QUARANTINE_SQL).to_arrow_table()
    write_deltalake(os.path.join(out, "silver"), silver_rows, partition_by=["event_date"])
    write_deltalake(os.path.join(out, "quarantine"), quarantine_rows)
    op_s = time.perf_counter() - t0
    rows_read = con.execute("SELECT count(*) FROM checked").fetchone()[0]
    emit("duckdb", "b", "silver", op_s, rows_read, rows_written=silver_rows.num_rows,
         rows_quarantined=quarantine_rows.num_rows, columns=silver_rows.schema.names,
         writer="deltalake write_deltalake (silver partitioned by event_date)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["a", "b", "d", "e"])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--query", choices=["low", "high"])
    a = p.parse_args()
    if a.workload == "a":
        ingest(a.data, a.out)
    elif a.workload == "b":
        silver(a.data, a.out)
    elif a.workload == "e":
        expectations(a.data, a.out)
    else:
        aggregate(a.data, a.query, a.out)


if __name__ == "__main__":
    main()
