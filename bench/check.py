#!/usr/bin/env python3
"""The benchmark's one checker.

DuckDB computes an order-independent checksum of every engine's output: the number of rows and
the sum of a 64-bit hash of each row's canonical text (a sum, not an XOR, so duplicate rows
count). Every engine's output goes through the same function, so two outputs agree exactly when
their row multisets agree (up to hash collisions).

Canonical text of a value, by the column's type as DuckDB reads it:
  - timestamps (with or without a zone, any unit): the UTC time as text, microseconds;
  - integers: their decimal text, whatever the width;
  - floating point and decimals: the shortest round-trip text of the double, or with
    `digits=2` the value rounded to 2 decimals (for aggregates, whose last bits depend on the
    order of summation);
  - everything else: CAST(.. AS VARCHAR); NULL stays NULL (it hashes apart from any text).

Workload a compares `amount` as a number with 2 decimals ("money"): Strata keeps a JSON
number's literal text (`12.50`), but the peers' JSON readers render the parsed number their own
way (`12.5`). A second, literal checksum keeps the text as landed; Strata's must also equal the
one computed from the source files.

Workload b compares silver.events over its nine columns with `scale=4`: decimals as exact text
at scale 4 (not through a double), and the quarantine by its row count, its event_id multiset
(NULL counted) and its (event_id, stage) pairs.

Also a command line tool:
    check.py reference DATA_DIR          the expected counts and checksums of an NDJSON folder
    check.py delta PATH [--digits N]     checksum of a Delta table (all columns)
    check.py parquet PATH [--digits N]   checksum of Parquet files (a file or a folder)
    check.py silver PATH                 workload b: a silver table's columns and checksum
    check.py quarantine PATH [--strata]  workload b: a quarantine table's event_id checksums
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys

import duckdb
import pyarrow as pa

# The four columns workload a compares (the choice), in this order.
BRONZE_KEY = ["event_id", "user_id", "ts", "amount"]
# Workload b: silver.events's columns, as the shipped example pipeline writes them.
SILVER_COLUMNS = ["event_id", "user_id", "event_type", "event_ts", "session_id", "amount", "event_date",
                  "country", "device"]


def delta_extension_path() -> str:
    """The DuckDB delta extension shipped inside the duckdb-extension-delta package."""
    import duckdb_extension_delta as m

    base = os.path.dirname(m.__file__)
    paths = sorted(glob.glob(os.path.join(base, "**", "*.duckdb_extension"), recursive=True))
    if not paths:
        raise RuntimeError(f"no .duckdb_extension file under {base}")
    return paths[0]


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def qident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Checker:
    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"LOAD {sql_str(delta_extension_path())}")
        self._n = 0
        self.readers: dict[str, str] = {}

    # ---------------------------------------------------------------- sources

    def source(self, kind: str, path: str) -> str:
        """A FROM clause reading a Delta table (`delta`) or Parquet files (`parquet`)."""
        if kind == "parquet":
            if os.path.isdir(path):
                return f"read_parquet({sql_str(os.path.join(path, '**', '*.parquet'))})"
            return f"read_parquet({sql_str(path)})"
        if kind != "delta":
            raise ValueError(kind)
        rel = f"delta_scan({sql_str(path)})"
        try:
            self.con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
            self.readers[path] = "duckdb delta_scan"
            return rel
        except duckdb.Error as e:
            # The checker stays DuckDB; only the file listing comes from delta-rs.
            from deltalake import DeltaTable

            self._n += 1
            name = f"delta_fallback_{self._n}"
            self.con.register(name, DeltaTable(path).to_pyarrow_dataset())
            self.readers[path] = f"deltalake dataset (delta_scan failed: {str(e).splitlines()[0]})"
            return name

    def columns(self, rel: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]

    # ------------------------------------------------------------- checksums

    @staticmethod
    def canon(name: str, typ: str, digits: int | None = None, money: bool = False,
              scale: int | None = None) -> str:
        c = qident(name)
        t = typ.upper()
        if money:
            return f"coalesce(CAST(TRY_CAST({c} AS DECIMAL(38,2)) AS VARCHAR), CAST({c} AS VARCHAR))"
        if scale is not None and (t.startswith("DECIMAL") or t in {"FLOAT", "DOUBLE", "REAL"}):
            # exact text at a fixed scale (workload b's DECIMAL(18,4) amounts)
            return f"CAST(CAST({c} AS DECIMAL(38,{scale})) AS VARCHAR)"
        if t.startswith("TIMESTAMP"):
            return f"CAST(CAST({c} AS TIMESTAMP) AS VARCHAR)"
        if t in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT"}:
            return f"CAST(CAST({c} AS HUGEINT) AS VARCHAR)"
        if t in {"FLOAT", "DOUBLE", "REAL"} or t.startswith("DECIMAL"):
            if digits is not None:
                # + 0.0 turns a -0.0 from rounding a tiny negative sum into 0.0
                return f"printf('%.{digits}f', round(CAST({c} AS DOUBLE), {digits}) + 0.0)"
            return f"CAST(CAST({c} AS DOUBLE) + 0.0 AS VARCHAR)"
        return f"CAST({c} AS VARCHAR)"

    def checksum(self, rel: str, cols: list[str] | None = None, where: str | None = None,
                 digits: int | None = None, money: tuple[str, ...] = (), scale: int | None = None) -> dict:
        """Row count and order-independent checksum of `cols` (default: every column, by name)."""
        types = dict(self.columns(rel))
        if cols is None:
            cols = sorted(types)
        missing = [c for c in cols if c not in types]
        if missing:
            raise ValueError(f"{rel}: no column(s) {missing}; it has {sorted(types)}")
        exprs = [self.canon(c, types[c], digits, c in money, scale) for c in cols]
        w = f"WHERE {where}" if where else ""
        n, s = self.con.execute(
            f"SELECT count(*), CAST(coalesce(sum(hash({', '.join(exprs)})), 0) AS VARCHAR) FROM {rel} {w}"
        ).fetchone()
        return {"rows": int(n), "checksum": s, "columns": cols,
                "types": [types[c] for c in cols]}

    # ------------------------------------------------------------ workloads

    def bronze(self, kind: str, path: str, strata: bool) -> dict:
        """Workload a: the good rows' count and checksums; for Strata also the corrupt rows."""
        rel = self.source(kind, path)
        where = "_corrupt_record IS NULL" if strata else None
        money = self.checksum(rel, BRONZE_KEY, where, money=("amount",))
        literal = self.checksum(rel, BRONZE_KEY, where)
        out = {"rows": money["rows"], "checksum": money["checksum"],
               "literal_checksum": literal["checksum"]}
        if strata:
            corrupt = self.checksum(rel, ["_corrupt_record"], "_corrupt_record IS NOT NULL")
            out["corrupt"] = corrupt["rows"]
            out["corrupt_checksum"] = corrupt["checksum"]
            data = [c for c, _ in self.columns(rel) if not c.startswith("_")]
            cond = " OR ".join(f"{qident(c)} IS NOT NULL" for c in data) or "false"
            out["corrupt_with_data"] = self.con.execute(
                f"SELECT count(*) FROM {rel} WHERE _corrupt_record IS NOT NULL AND ({cond})").fetchone()[0]
        return out

    def silver(self, path: str) -> dict:
        """Workload b's silver table: its columns (names and types, in order) and the checksum over
        all of SILVER_COLUMNS as text, decimals at scale 4 and timestamps as UTC text."""
        rel = self.source("delta", path)
        cols = self.columns(rel)
        out = self.checksum(rel, SILVER_COLUMNS, scale=4)
        out["table_columns"] = [f"{n} {t}" for n, t in cols]
        return out

    def quarantine(self, path: str, strata: bool) -> dict:
        """Workload b's quarantine rows: their count, the checksum of the event_id multiset (a NULL
        event_id counts), that of the (event_id, stage) pairs, and the count per stage. Strata keeps
        the row in `_record` (JSON) and the stage in `_stage`; the peers write `event_id` and
        `stage` columns."""
        rel = self.source("delta", path)
        if strata:
            rel = (f"(SELECT json_extract_string(_record, '$.event_id') AS event_id, _stage AS stage "
                   f"FROM {rel}) AS q")
        ids = self.checksum(rel, ["event_id"])
        pairs = self.checksum(rel, ["event_id", "stage"])
        stages = dict(self.con.execute(f"SELECT stage, count(*) FROM {rel} GROUP BY stage ORDER BY stage").fetchall())
        return {"rows": ids["rows"], "event_id_checksum": ids["checksum"],
                "event_id_stage_checksum": pairs["checksum"], "stages": stages,
                "null_event_ids": self.con.execute(
                    f"SELECT count(*) FROM {rel} WHERE event_id IS NULL").fetchone()[0]}

    def table(self, kind: str, path: str, cols: list[str] | None = None, digits: int | None = None) -> dict:
        return self.checksum(self.source(kind, path), cols, digits=digits)

    def count(self, kind: str, path: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {self.source(kind, path)}").fetchone()[0])

    # ------------------------------------------------------------ reference

    def reference(self, data_dir: str) -> dict:
        """Expected results of workload a, from the source files parsed in Python.

        Every non-blank line is a record; a line that json.loads does not turn into a JSON
        object is malformed. Numbers keep their literal text (parse_float/parse_int = str).
        Cached in DATA_DIR/_bench_reference.json, keyed by the generator's manifest and the
        DuckDB version (the hash function is DuckDB's).
        """
        manifest = os.path.join(data_dir, "_generate.json")
        files = sorted(glob.glob(os.path.join(data_dir, "*.ndjson")))
        if not files:
            raise RuntimeError(f"no *.ndjson files in {data_dir}")
        if os.path.exists(manifest):
            ident = open(manifest, "rb").read()
        else:
            ident = repr([(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]).encode()
        key = hashlib.sha256(ident).hexdigest() + "/" + duckdb.__version__
        cache = os.path.join(data_dir, "_bench_reference.json")
        if os.path.exists(cache):
            try:
                ref = json.load(open(cache))
                if ref.get("key") == key:
                    return ref
            except (OSError, ValueError):
                pass
        totals = {"lines": 0, "malformed": 0}
        sums = {"checksum": 0, "literal_checksum": 0, "corrupt_checksum": 0}

        def text(v):
            if v is None or isinstance(v, str):
                return v
            if v is True:
                return "true"
            if v is False:
                return "false"
            return json.dumps(v, separators=(",", ":"), ensure_ascii=False)

        for f in files:
            good = {c: [] for c in BRONZE_KEY}
            bad: list[str] = []
            with open(f, "rb") as fh:
                for raw in fh:
                    line = raw.rstrip(b"\n").rstrip(b"\r")
                    if not line.strip():
                        continue
                    totals["lines"] += 1
                    try:
                        obj = json.loads(line, parse_float=str, parse_int=str)
                    except ValueError:
                        obj = None
                    if isinstance(obj, dict):
                        for c in BRONZE_KEY:
                            good[c].append(text(obj.get(c)))
                    else:
                        bad.append(line.decode("utf-8", errors="replace"))
            totals["malformed"] += len(bad)
            t = pa.table({c: pa.array(v, pa.string()) for c, v in good.items()})
            self.con.register("ref_good", t)
            m = self.checksum("ref_good", BRONZE_KEY, money=("amount",))
            lit = self.checksum("ref_good", BRONZE_KEY)
            self.con.unregister("ref_good")
            b = pa.table({"_corrupt_record": pa.array(bad, pa.string())})
            self.con.register("ref_bad", b)
            cb = self.checksum("ref_bad", ["_corrupt_record"])
            self.con.unregister("ref_bad")
            sums["checksum"] += int(m["checksum"])
            sums["literal_checksum"] += int(lit["checksum"])
            sums["corrupt_checksum"] += int(cb["checksum"])
        ref = {"key": key, "files": len(files), "lines": totals["lines"],
               "malformed": totals["malformed"], "rows": totals["lines"] - totals["malformed"],
               **{k: str(v) for k, v in sums.items()}}
        tmp = cache + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(ref, fh, indent=1)
        os.replace(tmp, cache)
        return ref


def delta_log_counts(path: str, versions: list[int]) -> dict:
    """Rows of a Delta table at each given version, replayed from its JSON commits' add/remove
    actions and their numRecords statistics (independent of every engine's reader)."""
    log = os.path.join(path, "_delta_log")
    want = sorted(set(versions))
    active: dict[str, int] = {}
    out: dict[int, int | None] = {}
    v = 0
    while want and v <= want[-1]:
        f = os.path.join(log, f"{v:020d}.json")
        if not os.path.exists(f):
            break
        with open(f) as fh:
            for line in fh:
                if not line.strip():
                    continue
                a = json.loads(line)
                if "add" in a:
                    stats = json.loads(a["add"].get("stats") or "{}")
                    active[a["add"]["path"]] = stats.get("numRecords", -10**18)
                elif "remove" in a:
                    active.pop(a["remove"]["path"], None)
        if v in want:
            total = sum(active.values())
            out[v] = total if total >= 0 else None  # None: a file without numRecords
        v += 1
    return {str(k): out.get(k) for k in want}


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["reference", "delta", "parquet", "silver", "quarantine"])
    p.add_argument("path")
    p.add_argument("--digits", type=int)
    p.add_argument("--strata", action="store_true", help="quarantine: a Strata quarantine table")
    a = p.parse_args(argv)
    ck = Checker()
    if a.what == "reference":
        res = ck.reference(a.path)
    elif a.what == "silver":
        res = ck.silver(a.path)
    elif a.what == "quarantine":
        res = ck.quarantine(a.path, a.strata)
    else:
        res = ck.table(a.what, a.path, digits=a.digits)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # deltalake's native threads can abort the interpreter as it tears down, after the verdict is
    # printed; leave without that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
