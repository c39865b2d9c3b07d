#!/usr/bin/env python3
"""Peer: Polars (with its Delta support, which writes through the deltalake package).

  --workload a --data NDJSON_DIR --out TABLE_DIR           NDJSON -> all-string frame -> write_delta
  --workload b --data BRONZE_TABLE --out DIR              scan_delta -> casts, rules, latest per event_id
                                                           -> DIR/silver and DIR/quarantine, two Delta
                                                           tables written by deltalake.write_deltalake
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

Workload b: the shipped example pipeline's silver_events flow (examples/events.pipeline.toml) in
Polars expressions, with the same semantics as the DuckDB peer (see there and common.py): strict
casts (a failed one sends the row to quarantine with stage `cast`), the rules (stage
`expectation`), the latest row per event_id by event_ts with ties to the later arrival. Polars
casts text with more than 4 fraction digits to DECIMAL(18,4) by cutting, not rounding, so only
text with at most 14 integer and 4 fraction digits and no exponent goes through its cast; the rest
is rounded through its digits, in integers.

Workload d: a sum over a group whose amounts are all NULL is NULL in SQL but 0 in Polars; the
aggregate keeps SQL's meaning so the results compare.
"""

import argparse
import glob
import io
import os
import time

from common import (AMOUNT_SIMPLE, ARRIVAL, FIELDS, JSON_NUMBER, JSON_OBJECT_LINE, KNOWN_EVENT_TYPES,
                    RULES, SILVER_COLUMNS, TIMESTAMP_TEXT, emit, fail)

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


# ---------------------------------------------------------------- workload b

DAY_US = 86_400_000_000
BIG = 10**18  # DECIMAL(18,4)'s unscaled values stay below this


def strict_timestamp(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `_event_us` (microseconds since the epoch, UTC; NULL for NULL text and for a failed
    cast) and `_ts_ok` (the text is NULL or casts)."""
    ts = pl.col("ts")
    lf = lf.with_columns(ts.str.extract_groups(TIMESTAMP_TEXT).alias("_t"))
    t = pl.col("_t").struct.field
    z = t("z")
    lf = lf.with_columns(
        pl.concat_str([t("y"), t("mo"), t("d")], separator="-").str.to_date("%Y-%m-%d", strict=False)
        .cast(pl.Int64).alias("_day"),
        t("h").cast(pl.Int64, strict=False).alias("_hh"),
        t("mi").cast(pl.Int64, strict=False).alias("_mi"),
        t("s").cast(pl.Int64, strict=False).fill_null(0).alias("_ss"),
        # digits past microseconds are cut, fewer than six padded
        t("f").str.slice(0, 6).str.pad_end(6, "0").cast(pl.Int64, strict=False).fill_null(0).alias("_us"),
        z.str.slice(1, 2).cast(pl.Int64, strict=False).fill_null(0).alias("_oh"),
        z.str.slice(4, 2).cast(pl.Int64, strict=False).fill_null(0).alias("_om"),
        pl.when(z.str.starts_with("-")).then(-1).otherwise(1).alias("_sign"),
    )
    c = pl.col
    ok = (t("y").is_not_null() & c("_day").is_not_null() & (c("_hh") <= 23) & (c("_mi") <= 59)
          & (c("_ss") <= 59) & (c("_oh") <= 23) & (c("_om") <= 59)).fill_null(False)
    us = (c("_day") * DAY_US
          + ((c("_hh") * 60 + c("_mi")) * 60 + c("_ss") - c("_sign") * (c("_oh") * 3600 + c("_om") * 60))
          * 1_000_000 + c("_us"))
    return lf.with_columns((ts.is_null() | ok).alias("_ts_ok"),
                           pl.when(ts.is_not_null() & ok).then(us).alias("_event_us"))


def decimal_by_digits(amount: pl.Expr) -> pl.Expr:
    """The exact DECIMAL(18,4) of a JSON number's text, rounded half away from zero, NULL when it
    is no JSON number or needs more than 18 digits (as the DuckDB peer's macros)."""
    n = amount.str.extract_groups(JSON_NUMBER).struct.field
    frac = n("f").fill_null("")
    digits = pl.concat_str([n("i"), frac]).str.strip_chars_start("0")
    nd = digits.str.len_chars().cast(pl.Int64)
    e = n("e").str.replace(r"^\+", "")
    exp = (pl.when(e.is_null()).then(0)
           .otherwise(e.cast(pl.Int64, strict=False)
                      .fill_null(pl.when(e.str.starts_with("-")).then(-BIG).otherwise(BIG))))
    k = exp - frac.str.len_chars().cast(pl.Int64) + 4
    kept = (nd + k).clip(0, None)
    unscaled = (pl.when(digits == "").then(0)
                .when(nd + k > 18).then(None)
                .when(k >= 0).then(digits.cast(pl.Int64, strict=False)
                                   * pl.lit(10.0).pow(k.clip(0, 18)).cast(pl.Int64))
                .when(-k > nd).then(0)
                .otherwise(digits.str.slice(0, kept).cast(pl.Int64, strict=False).fill_null(0)
                           + (digits.str.slice(kept, 1) >= "5").cast(pl.Int64)))
    unscaled = pl.when(n("i").is_not_null() & (unscaled < BIG)).then(unscaled)
    text = pl.concat_str([n("neg"), (unscaled // 10_000).cast(pl.String), pl.lit("."),
                          (unscaled % 10_000).cast(pl.String).str.pad_start(4, "0")])
    return text.cast(pl.Decimal(18, 4), strict=False)


def strict_decimal(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `_amount` (DECIMAL(18,4)) and `_amount_ok` (the text is NULL or casts). Text Polars'
    own cast takes exactly goes through it; the (rare) rest through its digits."""
    amount = pl.col("amount")
    simple = amount.is_null() | amount.str.contains(AMOUNT_SIMPLE)
    lf = lf.with_columns(simple.alias("_simple"))
    cast = lf.filter(pl.col("_simple")).with_columns(amount.cast(pl.Decimal(18, 4), strict=False).alias("_amount"))
    digits = lf.filter(~pl.col("_simple")).with_columns(decimal_by_digits(amount).alias("_amount"))
    return pl.concat([cast, digits]).with_columns(
        (amount.is_null() | pl.col("_amount").is_not_null()).alias("_amount_ok"))


def silver(bronze: str, out: str) -> None:
    from deltalake import write_deltalake

    t0 = time.perf_counter()
    lf = pl.scan_delta(bronze)
    bronze_cols = lf.collect_schema().names()
    # a column the source has not sent yet is NULL
    lf = lf.with_columns(pl.lit(None, pl.String).alias(c) for c in
                         ["event_id", "user_id", "event_type", "ts", "session_id", "amount", "country", "device"]
                         if c not in bronze_cols)
    lf = strict_decimal(strict_timestamp(lf))
    c = pl.col
    event_ts = c("_event_us").cast(pl.Datetime("us", "UTC"))
    flags = {
        "event_id_present": c("event_id").is_null(),
        "user_id_present": c("user_id").is_null(),
        "event_ts_present": c("_event_us").is_null(),
        "known_event_type": ~c("event_type").is_in(KNOWN_EVENT_TYPES).fill_null(False),
        "amount_not_negative": ~(c("_amount") >= 0).fill_null(False),
    }
    lf = lf.with_columns(
        event_ts.alias("_event_ts"),
        event_ts.dt.date().alias("_event_date"),
        (~(c("_ts_ok") & c("_amount_ok"))).alias("_cast_failed"),
        *[f.alias(f"_f_{name}") for name, f in flags.items()],
    )
    # every bronze row, typed and checked, once (silver and the quarantine both read it)
    typed = lf.select(*bronze_cols, "_event_ts", "_event_date", "_amount", "_ts_ok", "_amount_ok", "_cast_failed",
                      *[f"_f_{name}" for name in flags]).collect().lazy()
    failed_rule = pl.any_horizontal([c(f"_f_{name}") for name in flags])
    out_row = {"event_id": c("event_id"), "user_id": c("user_id"), "event_type": c("event_type"),
               "event_ts": c("_event_ts"), "session_id": c("session_id"), "amount": c("_amount"),
               "event_date": c("_event_date"), "country": c("country"), "device": c("device")}
    assert list(out_row) == SILVER_COLUMNS
    # the latest passing row per event_id by event_ts, then arrival: picked by row number (sorting
    # the wide rows themselves is several times slower)
    passed = typed.filter(~c("_cast_failed") & ~failed_rule).with_row_index("_i")
    latest = passed.group_by("event_id").agg(c("_i").sort_by(["_event_ts", *ARRIVAL]).last())
    silver_lf = passed.join(latest.select("_i"), on="_i", how="semi").select(**out_row)
    # quarantine: a failed cast keeps the bronze row; a failed rule, the checked output row
    cast_reason = pl.concat_str(
        [pl.when(~c("_ts_ok")).then(pl.format("column ts: value '{}' is not a valid TIMESTAMP", c("ts"))),
         pl.when(~c("_amount_ok")).then(pl.format("column amount: value '{}' is not a valid DECIMAL(18,4)",
                                                  c("amount")))],
        separator="; ", ignore_nulls=True)
    cast_lf = typed.filter(c("_cast_failed")).select(
        c("event_id"), pl.lit("cast").alias("stage"), pl.lit([], pl.List(pl.String)).alias("rules"),
        cast_reason.alias("reason"), pl.struct(bronze_cols).struct.json_encode().alias("record"),
        c("_source_file").alias("source_file"), c("_source_line").alias("source_line"))
    failed = [pl.when(c(f"_f_{name}")).then(pl.lit(name)) for name in flags]
    rules = pl.concat_list(failed + [pl.when(c("_f_event_id_present")).then(pl.lit(RULES[-1]))]).list.drop_nulls()
    rule_lf = typed.filter(~c("_cast_failed") & failed_rule).select(
        c("event_id"), pl.lit("expectation").alias("stage"), rules.alias("rules"),
        (pl.lit("failed ") + pl.concat_str(failed, separator=", ", ignore_nulls=True)).alias("reason"),
        pl.struct(**out_row).struct.json_encode().alias("record"),
        c("_source_file").alias("source_file"), c("_source_line").alias("source_line"))
    silver_df, cast_df, rule_df, read = pl.collect_all([silver_lf, cast_lf, rule_lf, typed.select(pl.len())])
    quarantine_df = pl.concat([cast_df, rule_df])
    write_deltalake(os.path.join(out, "silver"), silver_df.to_arrow(), partition_by=["event_date"])
    write_deltalake(os.path.join(out, "quarantine"), quarantine_df.to_arrow())
    op_s = time.perf_counter() - t0
    emit("polars", "b", "silver", op_s, read.item(), rows_written=silver_df.height,
         rows_quarantined=quarantine_df.height, columns=silver_df.columns,
         writer="deltalake write_deltalake (silver partitioned by event_date)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["a", "b", "d", "f"])
    p.add_argument("--data", required=True)
    p.add_argument("--out")
    p.add_argument("--query", choices=["low", "high"])
    p.add_argument("--version", type=int)
    a = p.parse_args()
    if a.workload == "a":
        ingest(a.data, a.out)
    elif a.workload == "b":
        silver(a.data, a.out)
    elif a.workload == "d":
        aggregate(a.data, a.query, a.out)
    else:
        count(a.data, a.version)


if __name__ == "__main__":
    main()
