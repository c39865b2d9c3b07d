#!/usr/bin/env python3
"""Turns the harness's JSON lines into bench/RESULTS.md and one SVG bar chart per workload and
size in bench/charts/.

    report.py RESULTS_JSONL... [--out bench/RESULTS.md] [--charts bench/charts]
              [--notes bench/targets-notes.toml]

For each size and workload the latest benchmark run (bench_id) that measured it is reported (a
run of some workloads replaces only those); warm-up runs are left out. Each size gets a "Targets" section (also printed): the performance targets (a1 ..
f3, see TARGETS) with PASS, MISSED or "not measured", judged on the medians the tables show, from
runs that neither failed nor disagreed; the targets are defined for size s. "What stands in the
way" of each comes from the notes file (target id = text, or a table of operation = text).
Needs only the Python standard library (3.11+ for a TOML notes file).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import os
import statistics
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))

SIZES = {"xs": "10k rows in 4 files", "s": "1M rows in 16 files", "m": "10M rows in 64 files"}
WORKLOADS = {
    "a": "NDJSON into a bronze Delta table",
    "b": "bronze.events to silver.events as the shipped example pipeline does it",
    "c": "MERGE changed rows into silver.events",
    "d": "Gold aggregations over silver.events",
    "e": "30 expectations over silver.events in one pass",
    "f": "1 200 small appends, then reading the latest version and version 537",
    "g": "the schema registry and push ingest over HTTP: strata serve against a minimal axum server",
}
OPS = {
    "ingest": "ingest every line of the files",
    "silver": "casts, rules, quarantine, latest per event_id: silver.events and quarantine.events written",
    "merge_10k": "MERGE 10k changed rows (8k updates, 2k inserts)",
    "merge_1m": "MERGE 1M changed rows (800k updates, 200k inserts)",
    "agg_low": "low cardinality: per hour, country, event_type",
    "agg_high": "high cardinality: per user_id",
    "expectations": "not-null ×8, in-set ×4, between ×6, regex ×3, unique ×2, row count, mean/min/max/stdev ×4, "
                    "column pair ×2 (bench/peers/expectations.py)",
    "append": "1 200 INSERTs of 1 000 rows, a commit each",
    "count_latest": "open the latest version and count its rows",
    "count_v537": "open version 537 and count its rows",
    "rss_v100": "Strata: SELECT count(*) .. VERSION AS OF 100",
    "rss_v1200": "Strata: SELECT count(*) .. VERSION AS OF 1200",
    "lookup": "GET /schemas/ids/1 (a consumer's lookup), 8 connections; rows = requests",
    "register": "POST /subjects/bench-N-value/versions, a new schema each, 8 connections; rows = requests",
    "push": "POST /api/v1/tables/bronze.pushed/records, 1 000 NDJSON records each, 4 connections; "
            "rows = records",
}
LABELS = {
    ("a", "strata"): "Strata: strata ingest (bronze Delta)",
    ("a", "deltalake"): "pyarrow + deltalake write_deltalake",
    ("a", "polars"): "Polars + write_delta",
    ("a", "duckdb"): "DuckDB to Parquet (no Delta: a ceiling)",
    ("b", "strata"): "Strata: pipeline run",
    ("b", "duckdb"): "DuckDB SQL + write_deltalake",
    ("b", "polars"): "Polars + write_deltalake",
    ("c", "strata"): "Strata: MERGE INTO",
    ("c", "deltalake"): "deltalake (Python) merge",
    ("d", "strata"): "Strata: CREATE TABLE gold.. AS",
    ("d", "duckdb"): "DuckDB delta_scan to Parquet",
    ("d", "polars"): "Polars scan_delta to Parquet",
    ("e", "strata"): "Strata: quality check",
    ("e", "gx"): "Great Expectations on pandas",
    ("e", "duckdb"): "DuckDB: one hand-written SELECT",
    ("f", "strata"): "Strata",
    ("f", "deltalake"): "deltalake (Python)",
    ("f", "polars"): "Polars scan_delta",
    ("g", "strata"): "Strata: strata serve",
}
# Engines that are no peer: Strata itself, the floors, and the no-Delta ceiling of workload a.
NOT_PEERS = {"strata", "floor"}
CEILINGS = {("a", "duckdb")}
COLORS = {"gx": "#cf222e", "strata": "#1f6feb", "deltalake": "#d29922", "polars": "#8250df", "duckdb": "#2da44e",
          "floor": "#6e7781"}


def label(workload: str, engine: str) -> str:
    if engine == "floor":
        return "floor (bench/floors)"
    return LABELS.get((workload, engine), engine)


def fmt_s(s: float | None) -> str:
    if s is None:
        return "–"
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.01:
        return f"{s * 1e3:.0f} ms"
    return f"{s * 1e3:.1f} ms"


def fmt_rate(r: float | None) -> str:
    if r is None:
        return "–"
    for unit, f in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if r >= f:
            return f"{r / f:.2f} {unit}"
    return f"{r:.0f}"


def fmt_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(paths: list[str]) -> list[dict]:
    recs = []
    for p in paths:
        with open(p) as fh:
            for i, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    print(f"report: {p}:{i}: not JSON, skipped", file=sys.stderr)
    return recs


def summarise(recs: list[dict]) -> dict:
    """{(workload, op): {engine: stats}} for the measured (non-warm-up) runs."""
    by = defaultdict(lambda: defaultdict(list))
    for r in recs:
        if r.get("warmup"):
            continue
        by[(r["workload"], r["op"])][r["engine"]].append(r)
    out = {}
    for key, engines in by.items():
        stats = {}
        for engine, rs in engines.items():
            ok = [r for r in rs if "error" not in r]
            agree = [r.get("agree") for r in rs]
            s = {
                "runs": len(ok),
                "errors": len(rs) - len(ok),
                "op_s": median(r["op_s"] for r in ok),
                "wall_s": median(r["wall_s"] for r in ok),
                "cpu_s": median(r["cpu_s"] for r in ok),
                "rss_mib": median(r["maxrss_kib"] / 1024 for r in ok),
                "rows": median(r["rows"] for r in ok),
                "op_min": min((r["op_s"] for r in ok), default=None),
                "op_max": max((r["op_s"] for r in ok), default=None),
                "op_source": ok[0]["op_source"] if ok else None,
                "agree": (None if all(a is None for a in agree) and not (len(rs) - len(ok))
                          else all(a is True for a in agree)),
                "extra": ok[0].get("extra") if ok else None,
            }
            s["rows_per_s"] = s["rows"] / s["op_s"] if s["op_s"] and s["rows"] else None
            stats[engine] = s
        out[key] = stats
    return out


def engine_order(engines) -> list[str]:
    pref = ["strata", "deltalake", "polars", "duckdb", "floor"]
    return sorted(engines, key=lambda e: (pref.index(e) if e in pref else len(pref), e))


def table(workload: str, op: str, stats: dict) -> list[str]:
    peers = {e: s for e, s in stats.items()
             if e not in NOT_PEERS and (workload, e) not in CEILINGS and s["op_s"]}
    best_peer = min(peers.items(), key=lambda kv: kv[1]["op_s"]) if peers else None
    floor = stats.get("floor", {}).get("op_s")
    lines = [
        "| engine | in-process (median) | wall (median) | CPU | peak RSS | rows/s | × best peer | × floor | runs | agrees |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in engine_order(stats):
        s = stats[e]
        vs_peer = s["op_s"] / best_peer[1]["op_s"] if best_peer and s["op_s"] else None
        vs_floor = s["op_s"] / floor if floor and s["op_s"] else None
        agree = {True: "yes", False: "**NO**", None: "not checked"}[s["agree"]]
        if s["errors"]:
            agree = f"**{s['errors']} failed**"
        name = label(workload, e)
        if s["op_source"] == "wall":
            name += " (no --timing: wall)"
        rss = "–" if s["rss_mib"] is None else f"{s['rss_mib']:.0f} MiB"
        lines.append(
            f"| {name} | {fmt_s(s['op_s'])} | {fmt_s(s['wall_s'])} | {fmt_s(s['cpu_s'])} | {rss} | "
            f"{fmt_rate(s['rows_per_s'])} | {fmt_ratio(vs_peer)} | {fmt_ratio(vs_floor)} | {s['runs']} | {agree} |")
    if best_peer:
        lines.append("")
        lines.append(f"Best peer: {label(workload, best_peer[0])}.")
    return lines


def svg_chart(title: str, panels: list[tuple[str, list[tuple[str, str, float | None, float | None]]]]) -> str:
    """Horizontal bars: per panel (an operation) one row per engine with two bars, the median
    in-process time (solid) and the median wall time (pale); for a peak-RSS panel (title starting
    with "rss") one bar of peak RSS in MiB. Each panel has its own scale."""
    width, left, right = 820, 250, 110
    bar_w = width - left - right
    row_h, bar_h = 30, 11
    y = 62
    parts = []
    for ptitle, rows in panels:
        parts.append(f'<text x="10" y="{y}" font-weight="bold">{html.escape(ptitle)}</text>')
        y += 10
        rss = ptitle.startswith("rss")
        top = max([v for _, _, a, b in rows for v in (a, b) if v] or [1.0])
        for engine, name, a, b in rows:
            color = COLORS.get(engine, "#57606a")
            parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{html.escape(name)}</text>')
            bars = [(a, 1.0, f"{a:.0f} MiB peak RSS" if a else "–")] if rss else [
                (a, 1.0, fmt_s(a)), (b, 0.35, fmt_s(b) + " wall")]
            for i, (v, opacity, text) in enumerate(bars):
                yy = y + 3 + i * (bar_h + 2)
                w = 0 if not v else max(1.0, bar_w * v / top)
                parts.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{bar_h}" '
                             f'fill="{color}" fill-opacity="{opacity}"/>')
                parts.append(f'<text x="{left + w + 4:.1f}" y="{yy + bar_h - 1}" font-size="10">'
                             f'{html.escape(text)}</text>')
            y += row_h
        y += 16
    height = y + 10
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>'
            f'<text x="10" y="38" font-size="11" fill="#57606a">solid: time inside the process; '
            f'pale: the whole process (wall). Medians; each operation has its own scale.</text>')
    return head + "".join(parts) + "</svg>\n"


METHOD = """\
## How each column was measured

Each engine runs as its own process, once per run; the harness (`bench/harness.py`) starts it
through a small launcher (`bench/rusage.c`) that waits for it with `wait4` and records its wall
time, CPU time and peak RSS.

| column | how |
|---|---|
| in-process | the operation's own time inside its process, after start-up and imports: Strata's `--timing` line (`Time: X ms`, printed on stderr by the binary), a peer's `time.perf_counter()` around the operation only, a floor's own `op_s` |
| wall | the whole process, from fork to exit (includes start-up, Python imports, loading extensions, opening the lakehouse) |
| CPU | user + system CPU time of the process (`ru_utime + ru_stime` of `os.wait4`) |
| peak RSS | the process's peak resident set size (`ru_maxrss`) |
| rows/s | rows of the operation / median in-process time (a: lines of input; b: rows of bronze.events; c: changed rows; d: rows of silver.events; f append: 1 200 000 rows; f counts: the rows counted; g: requests, or records for push) |
| × best peer | median in-process time / the fastest peer's; below 1 is faster than every peer. The no-Delta ceiling of workload a is no peer |
| × floor | median in-process time / the floor's (bench/floors: the same job with only arrow and parquet, one thread) |
| agrees | the checker (DuckDB, `bench/check.py`) found this engine's output identical to the others' (and, for workload a, to the source files) |

All values are medians over the measured runs; one warm-up run per engine came first and is not
counted (none for a one-run smoke test). Engines alternate their order from run to run. Strata
runs with a user's defaults (no benchmark-only flag or setting); peers use their libraries'
defaults.
"""


# ---------------------------------------------------------------- targets

# The size the targets are defined for; at every other size the verdicts are for information.
TARGET_SIZE = "s"
NOTES_FILE = os.path.join(HERE, "targets-notes.toml")
# (id, the target as stated)
TARGETS = [
    ("a1", "ingest: Strata's rows/s at least 1.5× the best Delta-writing peer's (pyarrow + deltalake, "
           "Polars + write_delta; the DuckDB-to-Parquet ceiling does not count)"),
    ("a2", "ingest: Strata's rows/s at least 0.8× the floor's"),
    ("b1", "bronze to silver: Strata no slower than DuckDB doing the same outputs (silver.events and "
           "quarantine.events)"),
    ("b2", "bronze to silver: Strata's time at most 1.2× the floor's (reading bronze plus writing silver)"),
    ("c1", "each MERGE: Strata's time at most 1.5× the floor's"),
    ("c2", "each MERGE: Strata's peak RSS at most 2× the bytes of the files it touches (the floor's "
           "`bytes_rewritten`: the files that hold a changed key)"),
    ("d1", "each aggregation: Strata no slower than the faster of DuckDB and Polars"),
    ("e1", "expectations: Strata at least 20× faster than Great Expectations on pandas"),
    ("e2", "expectations: Strata's time at most 1.5× the fused DuckDB SELECT's"),
    ("f1", "version 537's count: Strata faster than both Python deltalake and Polars"),
    ("f2", "small appends: Strata's commits/s at least 0.75× the floor's"),
    ("f3", "Strata's peak RSS reading version 1200 within 10% of reading version 100 (ratio at most 1.10)"),
]
TARGET_TEXT = dict(TARGETS)
MERGE_OPS = ["merge_10k", "merge_1m"]
AGG_OPS = ["agg_low", "agg_high"]
# Workload g has no targets: its rows are shown for information, as ratios to the floor.
G_OPS = ["lookup", "register", "push"]


# Short engine names for the targets' sentences.
SHORT = {("a", "deltalake"): "pyarrow + deltalake", ("a", "polars"): "Polars + write_delta",
         "strata": "Strata", "gx": "Great Expectations", "deltalake": "Python deltalake", "polars": "Polars", "duckdb": "DuckDB",
         "floor": "the floor"}


def short(workload: str, engine: str) -> str:
    return SHORT.get((workload, engine)) or SHORT.get(engine, engine)


class NotMeasured(Exception):
    """A target's inputs are missing; the message says which."""


def fmt_x(r: float) -> str:
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def fmt_bytes(b: float) -> str:
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= f:
            return f"{b / f:.1f} {unit}"
    return f"{b:.0f} B"


def judge(ratio: float, bound: float, kind: str, what: str) -> tuple[bool, str]:
    """kind: "min" (ratio >= bound), "max" (ratio <= bound) or "below" (ratio < bound)."""
    if kind == "min":
        ok, phrase = ratio >= bound, "at least"
        factor = bound / ratio if ratio > 0 else float("inf")
    elif kind == "max":
        ok, phrase = ratio <= bound, "at most"
        factor = ratio / bound
    else:
        ok, phrase = ratio < bound, "below"
        factor = ratio / bound
    text = f"{fmt_x(ratio)} {what}, target {phrase} {bound:g}×: "
    if ok:
        return True, text + "met"
    f = "∞" if factor == float("inf") else (f"{factor:.2f}" if factor < 10 else f"{factor:.0f}")
    return False, text + f"missed by a factor {f}"


class TargetInputs:
    """The measured runs of one benchmark run (one size), for the targets: warm-up runs, runs that
    failed and runs whose output disagreed are left out."""

    def __init__(self, rs: list[dict]) -> None:
        self.rs = [r for r in rs if not r.get("warmup")]
        self.workloads = {r["workload"] for r in self.rs}
        self.left_out: list[str] = []  # per target evaluation: the runs left out, said in the row

    def runs(self, w: str, op: str, engine: str) -> list[dict]:
        if w not in self.workloads:
            raise NotMeasured(f"workload {w} was not run")
        ops = [r for r in self.rs if r["workload"] == w and r["op"] == op]
        if not ops:
            why = " (the 1M-row MERGE runs only at sizes s and m)" if op == "merge_1m" else ""
            raise NotMeasured(f"no {op} run{why}")
        mine = [r for r in ops if r["engine"] == engine]
        if not mine:
            if engine == "floor":
                raise NotMeasured("no floor run (floors skipped: no floors binary)")
            raise NotMeasured(f"no {short(w, engine)} run of {op}")
        good = [r for r in mine if "error" not in r and r.get("agree") is not False]
        bad = len(mine) - len(good)
        if not good:
            raise NotMeasured(f"all {bad} measured {short(w, engine)} runs of {op} failed or disagreed "
                              "with the others: none is used")
        note = f"{bad} of {len(mine)} {short(w, engine)} runs of {op} left out (failed or disagreed)"
        if bad and note not in self.left_out:
            self.left_out.append(note)
        return good

    def op_s(self, w: str, op: str, engine: str) -> float:
        t = median(r.get("op_s") for r in self.runs(w, op, engine))
        if not t:
            raise NotMeasured(f"{short(w, engine)} has no in-process time for {op}")
        return t

    def rows_per_s(self, w: str, op: str, engine: str) -> float:
        rows = median(r.get("rows") for r in self.runs(w, op, engine))
        if not rows:
            raise NotMeasured(f"{short(w, engine)} has no row count for {op}")
        return rows / self.op_s(w, op, engine)

    def rss_bytes(self, w: str, op: str, engine: str) -> float:
        kib = median(r.get("maxrss_kib") for r in self.runs(w, op, engine))
        if not kib:
            raise NotMeasured(f"{short(w, engine)} has no peak RSS for {op}")
        return kib * 1024

    def commits_per_s(self, w: str, op: str, engine: str) -> float:
        runs = self.runs(w, op, engine)
        commits = median((r.get("extra") or {}).get("commits") for r in runs)
        if commits:  # as the table's line: commits / median in-process time
            return commits / self.op_s(w, op, engine)
        rate = median((r.get("extra") or {}).get("commits_per_s") for r in runs)
        if not rate:
            raise NotMeasured(f"{short(w, engine)}'s {op} records carry no commits_per_s")
        return rate

    def floor_extra(self, w: str, op: str, key: str) -> list:
        return [((r.get("extra") or {}).get("floor") or {}).get(key) for r in self.runs(w, op, "floor")]


def evaluate_targets(rs: list[dict], notes: dict) -> list[dict]:
    """One row per target (and per operation for c1, c2, d1): id, op, target, measured, ratio,
    verdict (PASS, MISSED, not measured, info), note."""
    t = TargetInputs(rs)
    rows: list[dict] = []

    def row(tid: str, op: str | None, fn, info: bool = False) -> None:
        t.left_out = []
        try:
            measured, (ok, ratio) = fn()
            verdict = "info" if info else ("PASS" if ok else "MISSED")
        except NotMeasured as e:
            measured, ratio, verdict = "", str(e), "not measured"
        if t.left_out:
            measured = (measured + "; " if measured else "") + "; ".join(t.left_out)
        note = notes.get(tid, "")
        if isinstance(note, dict):
            note = note.get(op or "", "")
        elif info:  # a target's note is not about the rows shown for information
            note = ""
        rows.append({"id": tid, "op": op, "info": info, "measured": measured,
                     "target": f"{op}: shown for information, no target" if info else TARGET_TEXT[tid],
                     "ratio": ratio, "verdict": verdict, "note": note if isinstance(note, str) else ""})

    def a1():
        s = t.rows_per_s("a", "ingest", "strata")
        peers = {e: t.rows_per_s("a", "ingest", e) for e in ("deltalake", "polars")}
        best = max(peers, key=peers.get)
        return (f"Strata {fmt_rate(s)} rows/s; " + ", ".join(f"{short('a', e)} {fmt_rate(v)} rows/s"
                                                          for e, v in peers.items()),
                judge(s / peers[best], 1.5, "min", f"the best Delta peer's rows/s ({short('a', best)})"))

    def a2():
        s = t.rows_per_s("a", "ingest", "strata")
        f = t.rows_per_s("a", "ingest", "floor")
        return (f"Strata {fmt_rate(s)} rows/s, floor {fmt_rate(f)} rows/s",
                judge(s / f, 0.8, "min", "the floor's rows/s"))

    def b1():
        s, d = t.op_s("b", "silver", "strata"), t.op_s("b", "silver", "duckdb")
        measured = f"Strata {fmt_s(s)}; DuckDB {fmt_s(d)}"
        try:
            measured += f", Polars {fmt_s(t.op_s('b', 'silver', 'polars'))} (for information)"
        except NotMeasured:
            pass
        return measured, judge(s / d, 1.0, "max", "DuckDB's time")

    def b2():
        s = t.op_s("b", "silver", "strata")
        if not any(r["workload"] == "b" and r["engine"] == "floor" for r in t.rs):
            # bench/floors has no bronze-to-silver job yet: say so, with the ratio there is
            try:
                vs = f"; Strata's time is {fmt_x(s / t.op_s('b', 'silver', 'duckdb'))} DuckDB's (b1)"
            except NotMeasured:
                vs = ""
            raise NotMeasured("no floor for reading bronze plus writing silver: bench/floors has no such "
                              f"job yet{vs}")
        f = t.op_s("b", "silver", "floor")
        return f"Strata {fmt_s(s)}, floor {fmt_s(f)}", judge(s / f, 1.2, "max", "the floor's time")

    def c1(op):
        def go():
            s, f = t.op_s("c", op, "strata"), t.op_s("c", op, "floor")
            return (f"Strata {fmt_s(s)}, floor {fmt_s(f)}", judge(s / f, 1.5, "max", "the floor's time"))
        return go

    def c2(op):
        def go():
            rss = t.rss_bytes("c", op, "strata")
            touched = median(t.floor_extra("c", op, "bytes_rewritten"))
            if not touched:
                raise NotMeasured(f"the floor's {op} records carry no bytes_rewritten")
            files = median(t.floor_extra("c", op, "files_rewritten"))
            in_files = f" in {files:.0f} file{'s' if files != 1 else ''}" if files is not None else ""
            return (f"Strata's peak RSS {fmt_bytes(rss)}; touched files {fmt_bytes(touched)}{in_files}",
                    judge(rss / touched, 2.0, "max", "the touched files' bytes"))
        return go

    def d1(op):
        def go():
            s = t.op_s("d", op, "strata")
            peers = {e: t.op_s("d", op, e) for e in ("duckdb", "polars")}
            best = min(peers, key=peers.get)
            return (f"Strata {fmt_s(s)}; " + ", ".join(f"{short('d', e)} {fmt_s(v)}" for e, v in peers.items()),
                    judge(s / peers[best], 1.0, "max", f"the faster peer's time ({short('d', best)})"))
        return go

    def e1():
        s, g = t.op_s("e", "expectations", "strata"), t.op_s("e", "expectations", "gx")
        return (f"Strata {fmt_s(s)}; Great Expectations {fmt_s(g)} ({fmt_x(g / s)} Strata's time)",
                judge(g / s, 20.0, "min", "(Great Expectations' time over Strata's)"))

    def e2():
        s, d = t.op_s("e", "expectations", "strata"), t.op_s("e", "expectations", "duckdb")
        return (f"Strata {fmt_s(s)}; DuckDB {fmt_s(d)}",
                judge(s / d, 1.5, "max", "the fused DuckDB SELECT's time"))

    def f1(op, info=False):
        def go():
            s = t.op_s("f", op, "strata")
            peers = {e: t.op_s("f", op, e) for e in ("deltalake", "polars")}
            best = min(peers, key=peers.get)
            what = f"the faster peer's time ({short('f', best)})"
            measured = f"Strata {fmt_s(s)}; " + ", ".join(f"{short('f', e)} {fmt_s(v)}" for e, v in peers.items())
            if info:
                return measured, (None, f"{fmt_x(s / peers[best])} {what}")
            return measured, judge(s / peers[best], 1.0, "below", what)
        return go

    def f2():
        s, f = t.commits_per_s("f", "append", "strata"), t.commits_per_s("f", "append", "floor")
        return (f"Strata {s:.1f} commits/s, floor {f:.1f} commits/s",
                judge(s / f, 0.75, "min", "the floor's commits/s"))

    def g(op):
        def go():
            s, f = t.rows_per_s("g", op, "strata"), t.rows_per_s("g", op, "floor")
            unit = "records/s" if op == "push" else "requests/s"
            return (f"Strata {fmt_rate(s)} {unit}, the minimal axum server {fmt_rate(f)} {unit}",
                    (None, f"{fmt_x(s / f)} the floor's {unit}"))
        return go

    def f3():
        lo, hi = t.rss_bytes("f", "rss_v100", "strata"), t.rss_bytes("f", "rss_v1200", "strata")
        return (f"Strata's peak RSS {fmt_bytes(hi)} at version 1200, {fmt_bytes(lo)} at version 100",
                judge(hi / lo, 1.10, "max", "version 100's peak RSS"))

    row("a1", None, a1)
    row("a2", None, a2)
    row("b1", None, b1)
    row("b2", None, b2)
    for op in MERGE_OPS:
        row("c1", op, c1(op))
    for op in MERGE_OPS:
        row("c2", op, c2(op))
    for op in AGG_OPS:
        row("d1", op, d1(op))
    row("e1", None, e1)
    row("e2", None, e2)
    row("f1", "count_v537", f1("count_v537"))
    row("f1", "count_latest", f1("count_latest", info=True), info=True)
    row("f2", None, f2)
    row("f3", None, f3)
    for op in G_OPS:
        row("g", op, g(op), info=True)
    return rows


def load_notes(path: str) -> tuple[dict, str | None]:
    """The free text of "what stands in the way": {target id: text} or {target id: {op: text}}, from
    a TOML file (or JSON, by its extension). A missing file gives no notes."""
    if not os.path.exists(path):
        return {}, None
    try:
        if path.endswith(".json"):
            with open(path) as fh:
                notes = json.load(fh)
        else:
            import tomllib  # Python 3.11+
            with open(path, "rb") as fh:
                notes = tomllib.load(fh)
    except (OSError, ValueError, ImportError) as e:
        print(f"report: {path}: cannot read the targets' notes: {e}", file=sys.stderr)
        return {}, None
    if not isinstance(notes, dict):
        print(f"report: {path}: not a table of target id = text, ignored", file=sys.stderr)
        return {}, None
    kept: dict = {}
    for k, v in notes.items():
        if k not in TARGET_TEXT:
            print(f"report: {path}: {k!r} is no target id ({', '.join(TARGET_TEXT)}), ignored", file=sys.stderr)
        elif isinstance(v, str):
            kept[k] = v
        elif isinstance(v, dict):
            kept[k] = {op: x for op, x in v.items() if isinstance(x, str)}
            for op in v.keys() - kept[k].keys():
                print(f"report: {path}: {k}.{op}: not text, ignored", file=sys.stderr)
        else:
            print(f"report: {path}: {k}: expected text, or a table of operation = text; ignored",
                  file=sys.stderr)
    return kept, path


def md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def targets_section(size: str, meta: dict, rows: list[dict], notes_path: str | None, out_dir: str) -> list[str]:
    strata_debug = "/debug/" in meta["versions"].get("strata_bin", "")
    floors_debug = "/debug/" in (meta["versions"].get("floors") or "")
    lines = ["### Targets", ""]
    if size == TARGET_SIZE:
        lines += [f"The targets are defined for size {TARGET_SIZE}: these verdicts count.", ""]
    else:
        lines += [f"The targets are defined for size {TARGET_SIZE} ({SIZES[TARGET_SIZE]}) only: at size "
                  f"{size} these verdicts are for information and count for nothing.", ""]
    if strata_debug or floors_debug:
        which = " and ".join(x for x, d in (("Strata", strata_debug), ("the floors", floors_debug)) if d)
        lines += [f"**{which} {'were debug builds' if ' and ' in which else 'was a debug build'} in "
                  "this run: these verdicts say nothing about a release build.**", ""]
    lines += [
        "Times are the median in-process time over the measured runs and peak RSS the median "
        "`ru_maxrss`, as in the tables below; rows/s is rows / that time. Runs that failed, or whose "
        "output disagreed with the other engines', are not used: a target left without runs of an "
        "engine it needs is not measured.",
        "",
        "| target | goal | measured | ratio vs target | verdict | what stands in the way |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        tid = r["id"] + (f" ({r['op']})" if r["op"] else "")
        verdict = {"PASS": "PASS", "MISSED": "**MISSED**", "info": "for information",
                   "not measured": "not measured"}[r["verdict"]]
        lines.append(f"| {tid} | {md_cell(r['target'])} | {md_cell(r['measured']) or '–'} | {md_cell(r['ratio'])} | "
                     f"{verdict} | {md_cell(r['note'])} |")
    counted = [r for r in rows if not r["info"]]
    lines += ["", ", ".join(f"{sum(r['verdict'] == v for r in counted)} {v}"
                            for v in ("PASS", "MISSED", "not measured")) + "."]
    if notes_path:
        rel = os.path.relpath(os.path.abspath(notes_path), out_dir)
        lines.append(f"\"What stands in the way\" comes from `{rel}`.")
    else:
        lines.append(f"\"What stands in the way\" is read from `bench/{os.path.basename(NOTES_FILE)}` "
                     "(target id = text, or a table of operation = text); there was none.")
    return lines + [""]


def print_targets(size: str, meta: dict, rows: list[dict]) -> None:
    debug = "/debug/" in meta["versions"].get("strata_bin", "") or "/debug/" in (meta["versions"].get("floors") or "")
    head = f"targets at size {size}: " + ("they count" if size == TARGET_SIZE else
                                          f"for information only (the targets are defined for size {TARGET_SIZE})")
    if debug:
        head += "; a debug build: these verdicts say nothing"
    print(head)
    for r in rows:
        tid = r["id"] + (f" {r['op']}" if r["op"] else "")
        print(f"  {tid:<17} {r['verdict']:<12} {r['ratio']}" + (" (for information, no target)" if r["info"] else ""))
        if r["measured"]:
            print(f"  {'':<17} {'':<12} ({r['measured']})")
        if r["note"]:
            print(f"  {'':<17} {'':<12} in the way: {' '.join(r['note'].split())}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    p.add_argument("--charts", default=os.path.join(HERE, "charts"))
    p.add_argument("--notes", default=NOTES_FILE,
                   help="what stands in the way of each target: TOML (or .json), target id = text")
    a = p.parse_args()
    notes, notes_path = load_notes(a.notes)
    recs = load(a.results)
    if not recs:
        print("report: no results", file=sys.stderr)
        return 1
    # per size and workload, the latest run that measured it (a run of some workloads only
    # replaces those)
    latest_w: dict[tuple[str, str], str] = {}
    for r in recs:
        key = (r["size"], r["workload"])
        if r["bench_id"] > latest_w.get(key, ""):
            latest_w[key] = r["bench_id"]
    latest: dict[str, str] = {}
    for (size, _), bid in latest_w.items():
        latest[size] = max(latest.get(size, ""), bid)
    os.makedirs(a.charts, exist_ok=True)
    md = ["# Strata benchmark results", "",
          f"Written by `bench/report.py` on {dt.date.today().isoformat()} from "
          f"{', '.join('`' + os.path.relpath(x, os.path.dirname(a.out)) + '`' for x in a.results)}. "
          "How the benchmark works: [README.md](README.md).", "", METHOD]
    order = sorted(latest, key=lambda s: (list(SIZES).index(s) if s in SIZES else 99, s))
    for size in order:
        rs = [r for r in recs if r["size"] == size and r["bench_id"] == latest_w[(size, r["workload"])]]
        meta = next(r for r in rs if r["bench_id"] == latest[size])
        runs_used = sorted({(r["bench_id"], r["workload"]) for r in rs})
        by_run: dict[str, list[str]] = defaultdict(list)
        for bid, w in runs_used:
            by_run[bid].append(w)
        m = meta["machine"]
        runs = max((r["run"] for r in rs), default=0)
        warm = any(r.get("warmup") for r in rs)
        md += [f"## Size {size}: {SIZES.get(size, size)}, seed {meta['seed']}", ""]
        if len(by_run) > 1:
            md += ["Workloads come from more than one run (each from the latest run that measured it): "
                   + "; ".join(f"`{bid}`: {', '.join(sorted(ws))}" for bid, ws in sorted(by_run.items()))
                   + ". The details below are the latest run's.", ""]
        md += [f"- run `{meta['bench_id']}`, {min(r['time'] for r in rs if 'time' in r and r['bench_id'] == meta['bench_id'])} (UTC)",
               f"- command: `{meta['command']}`",
               f"- git revision: `{meta['git_rev']}`{' (with uncommitted changes)' if meta.get('git_dirty') else ''}",
               f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, {m['os']} {m['kernel']}",
               "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items())
                                          if k not in ("strata_bin", "floors")),
               f"- strata binary: `{meta['versions'].get('strata_bin', '?')}`"
               + (f"; floors: `{meta['versions']['floors']}`" if meta["versions"].get("floors") else "; no floors"),
               f"- runs: {runs} measured" + (", after one warm-up" if warm else ", no warm-up (smoke test)"),
               ""]
        for note in meta.get("notes", []):
            md += [f"Note: {note}.", ""]
        if "/debug/" in meta["versions"].get("strata_bin", ""):
            md += ["**The strata binary was a debug build: its times say nothing about a release "
                   "build.**", ""]
        if meta.get("rusage") and meta["rusage"] != "rusage.c launcher":
            md += ["Peak RSS was read without the rusage launcher (no C compiler): each value "
                   "includes the harness's own resident size at the fork.", ""]
        failures = [r for r in rs if "error" in r or r.get("agree") is False]
        if failures:
            md += ["**This run failed its checks:**", ""]
            for r in failures:
                md.append(f"- {r['workload']}/{r['op']} {r['engine']} run {r['run']}: "
                          + (r.get("error", "result differs").splitlines()[0]))
            md.append("")
        target_rows = evaluate_targets(rs, notes)
        md += targets_section(size, meta, target_rows, notes_path, os.path.dirname(os.path.abspath(a.out)))
        print_targets(size, meta, target_rows)
        summary = summarise(rs)
        for w in sorted({k[0] for k in summary}):
            md += [f"### {w}: {WORKLOADS.get(w, w)}", ""]
            panels = []
            rss_rows: list = []
            ops = sorted((k[1] for k in summary if k[0] == w), key=lambda o: list(OPS).index(o) if o in OPS else 99)
            for op in ops:
                stats = summary[(w, op)]
                md += [f"**{op}**: {OPS.get(op, op)}", ""]
                md += table(w, op, stats)
                md.append("")
                if op == "append":
                    for e in engine_order(stats):
                        commits = (stats[e]["extra"] or {}).get("commits")
                        if stats[e]["op_s"] and commits:
                            md.append(f"- {label(w, e)}: {commits / stats[e]['op_s']:.1f} commits/s "
                                      f"({commits} commits / median in-process time)")
                    md.append("")
                if w == "g":
                    for e in engine_order(stats):
                        rep = (stats[e]["extra"] or {}).get("load") or {}
                        if rep:
                            md.append(f"- {label(w, e)}: {fmt_rate(rep['requests_per_s'])} requests/s, latency "
                                      f"p50 {rep['p50_ms']:.1f} ms, p99 {rep['p99_ms']:.1f} ms "
                                      f"({rep['concurrency']} connections; first measured run); CPU and peak "
                                      "RSS are the server's")
                    md.append("")
                if op.startswith("rss"):
                    rss_rows += [(e, f"{label(w, e)}, version {op[5:]}", stats[e]["rss_mib"], None)
                                 for e in engine_order(stats)]
                else:
                    panels.append((f"{op}: {OPS.get(op, op)}",
                                   [(e, label(w, e), stats[e]["op_s"], stats[e]["wall_s"])
                                    for e in engine_order(stats)]))
            if rss_rows:
                panels.append(("rss: peak RSS of SELECT count(*) .. VERSION AS OF N", rss_rows))
            if w == "f" and (w, "rss_v100") in summary and (w, "rss_v1200") in summary:
                lo = summary[(w, "rss_v100")]["strata"]["rss_mib"]
                hi = summary[(w, "rss_v1200")]["strata"]["rss_mib"]
                if lo and hi:
                    verdict = "within" if hi <= 1.10 * lo else "**not within**"
                    md += [f"Strata's peak RSS reading version 1200 is {hi:.0f} MiB against {lo:.0f} MiB for "
                           f"version 100: {hi / lo:.2f}×, {verdict} the target of 10%.", ""]
            chart = f"{size}-{w}.svg"
            with open(os.path.join(a.charts, chart), "w") as fh:
                fh.write(svg_chart(f"Size {size}, workload {w}: {WORKLOADS.get(w, w)}", panels))
            rel = os.path.relpath(os.path.join(a.charts, chart), os.path.dirname(os.path.abspath(a.out)))
            md += [f"![workload {w} at size {size}]({rel})", ""]
    # The log of changes made to speed Strata up, each with its measured effect, kept by hand.
    changes = os.path.join(HERE, "changes.md")
    if os.path.exists(changes):
        md += ["", open(changes, encoding="utf-8").read().rstrip(), ""]
    with open(a.out, "w") as fh:
        fh.write("\n".join(md).rstrip() + "\n")
    print(f"report: wrote {a.out} and {len(order)} size(s) of charts in {a.charts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
