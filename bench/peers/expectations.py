"""Workload e: the 30 expectations every engine checks over the benchmark's silver.events, in one
place, and the metric each one is compared on.

The mix is the one bench/README.md gives: not-null x8, in-set x4, between x6, regex x3, unique x2,
row count, mean/min/max/stdev x4 and column pair A > B x2.

What is compared, engine by engine (the checker's agreement key):
- row expectations (not_null, in, between, regex, pair): `failed`, the rows for which the rule
  does not hold, and success meaning none failed. Strata counts a row as failed when its rule is FALSE or NULL, so a NULL
  fails an in-set, between or regex rule. Great Expectations leaves NULLs out of its
  `unexpected_count` and reports them as `missing_count`, so its `failed` is the sum of the two;
  a pair rule ignores rows where either value is missing (GE's ignore_row_if
  "either_value_is_missing", Strata's `a IS NULL OR b IS NULL OR a > b`), so it is
  `unexpected_count` alone. (GE's own `success` passes a column whose only failures are NULLs.)
  The DuckDB SELECT computes Strata's definition directly.
- unique, row count and aggregates: `success` only (engines count duplicates differently: GE
  counts every row of a duplicated value, Strata the rows beyond the first).
"""

from __future__ import annotations

import json

EVENT_TYPES = ["view", "click", "purchase", "signup"]
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "NL"]
EU = ["GB", "DE", "FR", "NL"]
DEVICES = ["ios", "android", "web", "desktop"]

# (name, kind, arguments)
EXPECTATIONS: list[tuple[str, str, dict]] = [
    *[(f"not_null_{c}", "not_null", {"column": c})
      for c in ["event_id", "user_id", "event_type", "ts", "session_id", "amount", "country", "device"]],
    ("known_event_type", "in", {"column": "event_type", "values": EVENT_TYPES}),
    ("known_country", "in", {"column": "country", "values": COUNTRIES}),
    ("known_device", "in", {"column": "device", "values": DEVICES}),
    ("european_country", "in", {"column": "country", "values": EU}),
    ("amount_in_range", "between", {"column": "amount", "min": 0, "max": 10000}),
    ("amount_small", "between", {"column": "amount", "min": 0, "max": 500}),
    ("amount_positive", "between", {"column": "amount", "min": 0.01, "max": 100000}),
    ("ts_in_year", "between", {"column": "ts", "min": "2026-01-01T00:00:00Z", "max": "2027-01-01T00:00:00Z"}),
    ("ts_first_two_hours", "between", {"column": "ts", "min": "2026-01-01T00:00:00Z",
                                       "max": "2026-01-01T02:00:00Z"}),
    ("ts_after_launch", "between", {"column": "ts", "min": "2025-12-31T00:00:00Z"}),
    ("event_id_format", "regex", {"column": "event_id", "regex": "^evt-[0-9a-f]{16}$"}),
    ("user_id_format", "regex", {"column": "user_id", "regex": "^u-[0-9]+$"}),
    ("session_id_format", "regex", {"column": "session_id", "regex": "^s-[0-9a-f]{8}$"}),
    ("event_id_unique", "unique", {"column": "event_id"}),
    ("session_id_unique", "unique", {"column": "session_id"}),
    ("row_count", "row_count", {"min": 1, "max": 1_000_000_000}),
    ("amount_mean", "agg", {"fn": "mean", "column": "amount", "min": 0, "max": 1000}),
    ("amount_min", "agg", {"fn": "min", "column": "amount", "min": 0, "max": 1000}),
    ("amount_max", "agg", {"fn": "max", "column": "amount", "min": 0, "max": 100000}),
    ("amount_stdev", "agg", {"fn": "stdev", "column": "amount", "min": 0, "max": 10000}),
    ("event_type_after_device", "pair", {"a": "event_type", "b": "device"}),
    ("user_after_event_id", "pair", {"a": "user_id", "b": "event_id"}),
]
assert len(EXPECTATIONS) == 30, len(EXPECTATIONS)

ROW_KINDS = {"not_null", "in", "between", "regex", "pair"}
SQL_FN = {"mean": "avg", "min": "min", "max": "max", "stdev": "stddev_samp"}


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sql_value(v) -> str:
    if isinstance(v, str):
        return f"TIMESTAMP {sql_str(v.replace('T', ' ').removesuffix('Z'))}"
    return repr(v)


def condition(kind: str, a: dict) -> str:
    """The row rule as the SQL condition a row must make TRUE (DataFusion and DuckDB alike)."""
    if kind == "not_null":
        return f"{a['column']} IS NOT NULL"
    if kind == "in":
        return f"{a['column']} IN ({', '.join(sql_str(v) for v in a['values'])})"
    if kind == "between":
        parts = [f"{a['column']} >= {sql_value(a['min'])}"]
        if "max" in a:
            parts.append(f"{a['column']} <= {sql_value(a['max'])}")
        return " AND ".join(parts)
    if kind == "regex":
        return f"regexp_matches({a['column']}, {sql_str(a['regex'])})"
    if kind == "pair":
        return f"({a['a']} IS NULL OR {a['b']} IS NULL OR {a['a']} > {a['b']})"
    raise ValueError(kind)


def aggregate_sql(a: dict) -> str:
    return f"{SQL_FN[a['fn']]}({a['column']}) BETWEEN {a['min']} AND {a['max']}"


def strata_rules() -> str:
    """The rules file for `strata quality check` (docs/pipelines.md), action warn throughout."""
    out = []

    def toml(v) -> str:
        return json.dumps(v)

    for name, kind, a in EXPECTATIONS:
        out.append("[[expect]]")
        out.append(f"name = {toml(name)}")
        if kind == "not_null":
            out.append(f"not_null = {toml(a['column'])}")
        elif kind == "in":
            out.append(f"column = {toml(a['column'])}")
            out.append(f"in = {toml(a['values'])}")
        elif kind == "between":
            # a timestamp bound is a check: the rules' min/max take numbers and text
            if isinstance(a["min"], str):
                out.append(f"check = {toml(condition(kind, a))}")
            else:
                out.append(f"column = {toml(a['column'])}")
                out.append(f"min = {toml(a['min'])}")
                if "max" in a:
                    out.append(f"max = {toml(a['max'])}")
        elif kind == "regex":
            out.append(f"column = {toml(a['column'])}")
            out.append(f"matches = {toml(a['regex'])}")
        elif kind == "unique":
            out.append(f"unique = {toml([a['column']])}")
        elif kind == "row_count":
            out.append(f"row_count = {{ min = {a['min']}, max = {a['max']} }}")
        elif kind == "agg":
            out.append(f"aggregate = {toml(aggregate_sql(a).replace('stddev_samp', 'stddev'))}")
        elif kind == "pair":
            out.append(f"check = {toml(condition(kind, a))}")
        out.append('action = "warn"')
        out.append("")
    return "\n".join(out)


def key(results: dict) -> dict:
    """The agreement key: name -> [success, failed rows or None] (see the module's text)."""
    kinds = {name: kind for name, kind, _ in EXPECTATIONS}
    return {name: [r["failed"] == 0, r["failed"]] if kinds[name] in ROW_KINDS else [r["success"], None]
            for name, r in sorted(results.items())}
