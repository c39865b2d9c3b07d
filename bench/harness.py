#!/usr/bin/env python3
"""Strata's benchmark harness: runs each workload with Strata and its peers on the same files,
checks that every engine produced the same result, and appends one JSON line per measurement.

Normally started by bench/run.sh, which makes the venv and the data. See bench/README.md.

Every engine is one child process per run. For each the harness records
  op_s        the operation's time inside the process, after start-up: Strata's `--timing` line
              (`Time: X ms` on stderr), a peer's time.perf_counter() around the operation, a
              floor's own `op_s`;
  wall_s      the whole process, fork to exit;
  cpu_s       user + system CPU time of the process (wait4's rusage);
  maxrss_kib  its peak resident set size (ru_maxrss, KiB on Linux).
The last three come from rusage.c, a launcher every measured process is started through (see
there why).
Runs alternate the engines' order (run r starts at engine r mod n); run 0 is the warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import check  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "peers"))
import expectations  # noqa: E402

PEERS = os.path.join(HERE, "peers")
# Workload b runs the shipped example pipeline's bronze-to-silver flow.
PIPELINE = os.path.join(os.path.dirname(HERE), "examples", "events.pipeline.toml")
PIPELINE_FLOW = "silver_events"
PEER_SCRIPT = {"deltalake": "deltalake_py.py", "polars": "polars_peer.py", "duckdb": "duckdb_peer.py",
               "gx": "gx_peer.py"}
# silver.events, typed (workload c's checksum covers all of these)
SILVER_COLS = ["event_id", "user_id", "event_type", "ts", "session_id", "amount", "country", "device"]
GOLD_COLS = {"low": ["hour", "country", "event_type", "events", "amount"],
             "high": ["user_id", "events", "amount"]}
APPENDS = 1200
APPEND_ROWS = 1000
TRAVEL_VERSION = 537
RSS_VERSIONS = (100, 1200)
# Workload g: requests per operation (lookups, registrations, pushes) and records per push.
G_REQUESTS = {"xs": {"lookup": 1000, "register": 50, "push": 8},
              "s": {"lookup": 20000, "register": 1000, "push": 100}}
G_PUSH_RECORDS = 1000
G_CONCURRENCY = {"lookup": 8, "register": 8, "push": 4}
# Sizes at which the 1M-row MERGE runs too.
BIG_MERGE_SIZES = {"s", "m"}

TIME_LINE = re.compile(r"^Time: ([0-9]+(?:\.[0-9]+)?) ms\s*$")


class BenchError(Exception):
    pass


def parse_timing(stderr: str) -> float | None:
    """Seconds from Strata's `--timing` line, the last non-empty line on stderr."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    if not lines:
        return None
    m = TIME_LINE.match(lines[-1])
    return float(m.group(1)) / 1e3 if m else None


def last_json_line(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def delta_version(table_dir: str) -> int:
    log = os.path.join(table_dir, "_delta_log")
    versions = [int(f[:20]) for f in os.listdir(log) if re.fullmatch(r"[0-9]{20}\.json", f)]
    return max(versions)


def machine() -> dict:
    mem_kib = 0
    cpu = platform.processor()
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "cpu": cpu,
            "kernel": platform.release(), "os": platform.system()}


def git_rev() -> tuple[str, bool]:
    repo = os.path.dirname(HERE)
    try:
        rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True).stdout.strip())
        return rev, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


class Harness:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.size = a.size
        self.data = os.path.abspath(a.data)
        self.work = os.path.abspath(a.work)
        self.strata_bin = os.path.abspath(a.strata)
        self.floors = os.path.abspath(a.floors) if a.floors else None
        self.logs = os.path.join(self.work, "logs")
        self.lake = os.path.join(self.work, "lake")
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.ck = check.Checker()
        self.bench_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
        self.seq = 0
        rmtree(self.work)
        os.makedirs(self.logs)
        self.launcher = self.build_launcher()
        if not self.launcher:
            self.notes.append("no C compiler: processes are waited for directly, and their peak RSS "
                              "includes the harness's own (Linux carries it into a forked child)")
        self.has_timing = "--timing" in self.proc([self.strata_bin, "--help"], "strata-help")["stdout"]
        if not self.has_timing:
            self.notes.append("this strata binary has no --timing flag: Strata's op_s is its wall time")
        if not self.floors:
            self.notes.append("STRATA_BENCH_FLOORS is not set: floors skipped")
        rev, dirty = git_rev()
        self.meta = {
            "bench_id": self.bench_id,
            "size": self.size,
            "seed": a.seed,
            "git_rev": rev,
            "git_dirty": dirty,
            "command": a.command,
            "machine": machine(),
            "versions": self.versions(),
            "strata_timing": self.has_timing,
            "rusage": "rusage.c launcher" if self.launcher else "os.wait4 from the harness",
            "notes": list(self.notes),
        }

    # ------------------------------------------------------------ processes

    def build_launcher(self) -> str | None:
        """Compiles rusage.c (see there why the measured processes are started through it)."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            return None
        exe = os.path.join(self.work, "rusage")
        r = subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "rusage.c")], capture_output=True,
                           text=True)
        if r.returncode != 0:
            self.notes.append(f"cannot compile rusage.c: {r.stderr.strip()[:300]}")
            return None
        return exe

    def proc(self, cmd: list[str], tag: str, env: dict | None = None) -> dict:
        """Runs one child process through the rusage launcher, which forks, execs and waits for it
        with wait4 and writes its wall time, CPU time and peak RSS to a file."""
        self.seq += 1
        base = os.path.join(self.logs, f"{self.seq:04d}-{tag}")
        with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
            t0 = time.perf_counter()
            full = [self.launcher, base + ".rusage"] + cmd if self.launcher else cmd
            p = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                 cwd=self.work)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        m = {"rc": p.returncode, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
             "maxrss_kib": ru.ru_maxrss}
        if self.launcher:
            try:
                r = json.load(open(base + ".rusage"))
                m = {"rc": r["rc"], "wall_s": r["wall_s"], "cpu_s": r["utime_s"] + r["stime_s"],
                     "maxrss_kib": r["maxrss_kib"]}
            except (OSError, ValueError, KeyError) as e:
                raise BenchError(f"no rusage record for {' '.join(cmd)}: {e}") from e
        m["stdout"] = open(base + ".out", encoding="utf-8", errors="replace").read()
        m["stderr"] = open(base + ".err", encoding="utf-8", errors="replace").read()
        m["cmd"] = cmd
        m["log"] = base
        return m

    def strata_env(self) -> dict:
        # the defaults a user gets: no STRATA_* setting from this shell reaches Strata
        return {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}

    def strata(self, args: list[str], tag: str, timed: bool = False, json_out: bool = True,
               lake: str | None = None) -> dict:
        cmd = [self.strata_bin]
        if timed and self.has_timing:
            cmd.append("--timing")
        if args[0] != "init":
            cmd += ["--lakehouse", lake or self.lake]
        if json_out:
            cmd += ["--format", "json"]
        cmd += args
        m = self.proc(cmd, tag, env=self.strata_env())
        if m["rc"] != 0:
            raise BenchError(f"strata failed (exit {m['rc']}): {' '.join(cmd)}\n{m['stderr'][-2000:]}")
        if timed:
            t = parse_timing(m["stderr"])
            m["op_s"], m["op_source"] = (t, "strata --timing") if t is not None else (m["wall_s"], "wall")
        return m

    def sql(self, statement: str, tag: str, timed: bool = False, lake: str | None = None):
        m = self.strata(["sql", statement], tag, timed=timed, lake=lake)
        try:
            m["json"] = json.loads(m["stdout"]) if m["stdout"].strip() else None
        except ValueError:
            m["json"] = None
        return m

    def peer(self, engine: str, args: list[str], tag: str) -> dict:
        cmd = [sys.executable, os.path.join(PEERS, PEER_SCRIPT[engine])] + args
        m = self.proc(cmd, tag)
        line = last_json_line(m["stdout"])
        if m["rc"] != 0 or line is None or "op_s" not in line:
            raise BenchError(f"{engine} failed (exit {m['rc']}): {' '.join(cmd)}\n{m['stderr'][-2000:]}")
        m["op_s"], m["op_source"], m["report"] = line["op_s"], "perf_counter in the process", line
        return m

    def floor(self, args: list[str], tag: str) -> dict:
        cmd = [self.floors] + args
        m = self.proc(cmd, tag)
        line = last_json_line(m["stdout"])
        if m["rc"] != 0 or line is None or "op_s" not in line:
            raise BenchError(f"floor failed (exit {m['rc']}): {' '.join(cmd)}\n{m['stderr'][-2000:]}")
        m["op_s"], m["op_source"], m["report"] = line["op_s"], "the floor's own op_s", line
        return m

    def versions(self) -> dict:
        v = {"python": platform.python_version()}
        out = subprocess.run([self.strata_bin, "--version"], capture_output=True, text=True)
        text = (out.stdout.strip() or out.stderr.strip()).splitlines()
        v["strata"] = text[0].removeprefix("strata ").strip() if text else "unknown"
        v["strata_bin"] = self.strata_bin
        for pkg in ["deltalake", "duckdb", "duckdb-extension-delta", "polars", "polars-runtime-32",
                    "pyarrow", "great-expectations", "pandas"]:
            try:
                v[pkg] = md.version(pkg)
            except md.PackageNotFoundError:
                pass
        if self.floors:
            v["floors"] = self.floors
        return v

    # -------------------------------------------------------------- records

    def record(self, workload: str, op: str, engine: str, run: int, m: dict, rows: int,
               result: dict | None, order: list[str], extra: dict | None = None) -> dict:
        rec = {
            **self.meta,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "workload": workload, "op": op, "engine": engine, "run": run, "warmup": run == 0,
            "order": order,
            "op_s": m["op_s"], "op_source": m["op_source"], "wall_s": m["wall_s"],
            "cpu_s": m["cpu_s"], "maxrss_kib": m["maxrss_kib"], "rows": rows,
            "result": result, "agree": None, "cmd": m["cmd"],
        }
        if extra:
            rec["extra"] = extra
        print(f"  [{workload} {op:<12} run {run}{' (warm-up)' if run == 0 else ''}] {engine:<10} "
              f"op {m['op_s']:8.3f} s  wall {m['wall_s']:8.3f} s  cpu {m['cpu_s']:8.3f} s  "
              f"rss {m['maxrss_kib'] / 1024:7.1f} MiB", flush=True)
        return rec

    def failed(self, workload: str, op: str, engine: str, run: int, err: Exception, order) -> dict:
        text = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
        msg = f"{workload}/{op} {engine} run {run}: {text}"
        print("  FAILED " + msg, flush=True)
        self.problems.append(msg.splitlines()[0])
        return {**self.meta, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "workload": workload, "op": op, "engine": engine, "run": run, "warmup": run == 0,
                "order": order, "error": text[-3000:], "agree": False}

    def write(self, recs: list[dict]) -> None:
        with open(self.a.results, "a") as fh:
            for r in recs:
                fh.write(json.dumps(r, sort_keys=True) + "\n")

    def runs(self) -> list[int]:
        first = 0 if self.a.warmup else 1
        return list(range(first, self.a.runs + 1))

    @staticmethod
    def rotate(engines: list[str], run: int) -> list[str]:
        k = run % len(engines)
        return engines[k:] + engines[:k]

    def each(self, workload: str, op: str, engines: list[str], run: int, fn, recs: list[dict]) -> None:
        order = self.rotate(engines, run)
        for engine in order:
            try:
                recs.append(fn(engine, run, order))
            except Exception as e:  # noqa: BLE001 - any failure of one engine is recorded, the rest go on
                recs.append(self.failed(workload, op, engine, run, e, order))

    def agree(self, recs: list[dict], label: str, key, expected=None, skip=("floor",)) -> None:
        """Marks each record: its key(result) must equal `expected`, or else every other's."""
        checked = [r for r in recs if r.get("engine") not in skip and "error" not in r]
        values = {json.dumps(key(r["result"]), sort_keys=True) for r in checked}
        if expected is not None:
            want = json.dumps(expected, sort_keys=True)
            ok = values == {want}
        else:
            want = next(iter(values)) if values else None
            ok = len(values) == 1
        for r in recs:
            if r.get("engine") in skip or "error" in r:
                continue
            # a record that failed an earlier check stays failed
            r["agree"] = (r.get("agree") is not False and ok
                          and json.dumps(key(r["result"]), sort_keys=True) == want)
        engines = sorted({r["engine"] for r in checked})
        if ok:
            print(f"agreement {label}: {', '.join(engines)} agree: {want}", flush=True)
        else:
            detail = "; ".join(f"{r['engine']} run {r['run']}: {json.dumps(key(r['result']))}"
                               for r in checked)
            msg = f"agreement {label}: MISMATCH (expected {want}): {detail}"
            print(msg, flush=True)
            self.problems.append(msg)

    # ------------------------------------------------------------ workload a

    def workload_a(self) -> None:
        ref = self.ck.reference(self.data)
        print(f"workload a: {ref['lines']} lines in {ref['files']} files, {ref['malformed']} not a JSON "
              f"object (counted by check.py)", flush=True)
        engines = ["strata", "deltalake", "polars", "duckdb"] + (["floor"] if self.floors else [])
        recs: list[dict] = []
        rows = ref["lines"]

        def one(engine: str, run: int, order: list[str]) -> dict:
            out = os.path.join(self.work, "a", f"{engine}-r{run}")
            rmtree(out)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            try:
                if engine == "strata":
                    self.strata(["init", out], f"a-init-r{run}", json_out=False)
                    m = self.strata(["ingest", self.data, "--into", "bronze.events"], f"a-strata-r{run}",
                                    timed=True, lake=out)
                    report = json.loads(m["stdout"])
                    res = self.ck.bronze("delta", os.path.join(out, "lakehouse", "bronze", "events"), True)
                    res["reported_corrupt"] = report.get("records_corrupt")
                    res["reported_read"] = report.get("records_read")
                    rec = self.record("a", "ingest", engine, run, m, rows, res, order,
                                      {"strata_report": report})
                    if "b" in self.a.workloads:
                        # workload b starts from the bronze.events this run landed
                        self.keep_bronze(out, f"workload a's Strata ingest, run {run}")
                    return rec
                if engine == "floor":
                    m = self.floor(["ingest", "--data", self.data, "--out", out], f"a-floor-r{run}")
                    return self.record("a", "ingest", engine, run, m, rows, None, order,
                                       {"floor": m["report"]})
                m = self.peer(engine, ["--workload", "a", "--data", self.data, "--out", out],
                              f"a-{engine}-r{run}")
                kind = "parquet" if engine == "duckdb" else "delta"
                res = self.ck.bronze(kind, out, False)
                return self.record("a", "ingest", engine, run, m, rows, res, order, {"peer": m["report"]})
            finally:
                rmtree(out)

        for run in self.runs():
            self.each("a", "ingest", engines, run, one, recs)
        self.agree(recs, "a/ingest (good rows vs the source files)",
                   lambda r: {"rows": r["rows"], "checksum": r["checksum"]},
                   {"rows": ref["rows"], "checksum": ref["checksum"]})
        strata = [r for r in recs if r["engine"] == "strata" and "error" not in r]
        self.agree(strata, "a/ingest Strata's corrupt rows vs the malformed lines",
                   lambda r: {"corrupt": r["corrupt"], "reported_corrupt": r["reported_corrupt"],
                              "corrupt_checksum": r["corrupt_checksum"],
                              "corrupt_with_data": r["corrupt_with_data"]},
                   {"corrupt": ref["malformed"], "reported_corrupt": ref["malformed"],
                    "corrupt_checksum": ref["corrupt_checksum"], "corrupt_with_data": 0})
        self.agree(strata, "a/ingest Strata keeps the literal text",
                   lambda r: {"literal_checksum": r["literal_checksum"]},
                   {"literal_checksum": ref["literal_checksum"]})
        self.write(recs)

    # ------------------------------------------------------------ workload b

    def keep_bronze(self, lake: str, origin: str) -> None:
        """Keeps a lakehouse whose bronze.events workload b starts from (moved, not copied)."""
        dest = os.path.join(self.work, "b", "bronze-lake")
        rmtree(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.move(lake, dest)
        self.bronze_lake, self.bronze_origin = dest, origin

    def copy_lakehouse(self, src: str, dest: str, tag: str) -> None:
        """A copy of a lakehouse that owns its tables: the metastore records each table's absolute
        location, so after the copy `strata doctor --repair` points them at the copy's own folders
        (its documented fix for a managed table recorded outside the root)."""
        rmtree(dest)
        shutil.copytree(src, dest, symlinks=True)
        m = self.strata(["doctor", "--repair"], tag, lake=dest)
        report = json.loads(m["stdout"])
        unrepaired = [p for p in report.get("problems", []) if not p.get("repaired")]
        if unrepaired:
            raise BenchError(f"strata doctor --repair left problems in the copy {dest}: {unrepaired}")

    def bronze_for_b(self) -> str:
        """The lakehouse with bronze.events that workload b reads: workload a's (its last Strata
        run), or else a fresh one ingested here. Untimed. Every engine reads this one table."""
        if not getattr(self, "bronze_lake", None):
            lake = os.path.join(self.work, "b", "bronze-ingest")
            rmtree(lake)
            os.makedirs(os.path.dirname(lake), exist_ok=True)
            self.strata(["init", lake], "b-init", json_out=False)
            self.strata(["ingest", self.data, "--into", "bronze.events"], "b-ingest", lake=lake)
            self.keep_bronze(lake, "strata ingest for workload b (workload a did not run)")
        # the moved lakehouse's metastore still names the old folder: repair it in place
        m = self.strata(["doctor", "--repair"], "b-relocate", lake=self.bronze_lake)
        if any(not p.get("repaired") for p in json.loads(m["stdout"]).get("problems", [])):
            raise BenchError(f"strata doctor --repair could not relocate {self.bronze_lake}: {m['stdout']}")
        return self.bronze_lake

    def workload_b(self) -> None:
        lake = self.bronze_for_b()
        bronze = os.path.join(lake, "lakehouse", "bronze", "events")
        rows = self.ck.count("delta", bronze)
        log = os.path.join(bronze, "_delta_log")
        data_commits = [v for v in range(delta_version(bronze) + 1)
                        if '"add"' in open(os.path.join(log, f"{v:020d}.json")).read()]
        print(f"workload b: bronze.events from {self.bronze_origin}: {rows} rows, version "
              f"{delta_version(bronze)}", flush=True)
        engines = ["strata", "duckdb", "polars"]
        recs: list[dict] = []

        def one(engine: str, run: int, order: list[str]) -> dict:
            out = os.path.join(self.work, "b", f"{engine}-r{run}")
            rmtree(out)
            try:
                if engine == "strata":
                    # a fresh copy where bronze is landed and nothing else is (untimed)
                    self.copy_lakehouse(lake, out, f"b-copy-r{run}")
                    m = self.strata(["pipeline", "run", PIPELINE, "--select", PIPELINE_FLOW],
                                    f"b-strata-r{run}", timed=True, lake=out)
                    report = json.loads(m["stdout"])
                    flows = report.get("flows") or []
                    if report.get("status") != "succeeded" or [f.get("status") for f in flows] != ["succeeded"]:
                        raise BenchError(f"strata pipeline run did not succeed: {m['stdout'][-2000:]}")
                    silver = os.path.join(out, "lakehouse", "silver", "events")
                    quarantine = os.path.join(out, "lakehouse", "quarantine", "events")
                    res = self.ck.silver(silver)
                    res["quarantine"] = self.ck.quarantine(quarantine, strata=True)
                    res["reported"] = {"rows_read": flows[0].get("rows_read"),
                                       "rows_written": flows[0].get("rows_written"),
                                       "rows_quarantined": flows[0].get("rows_quarantined")}
                    return self.record("b", "silver", engine, run, m, rows, res, order,
                                       {"strata": report, "bronze": self.bronze_origin})
                m = self.peer(engine, ["--workload", "b", "--data", bronze, "--out", out],
                              f"b-{engine}-r{run}")
                res = self.ck.silver(os.path.join(out, "silver"))
                res["quarantine"] = self.ck.quarantine(os.path.join(out, "quarantine"), strata=False)
                return self.record("b", "silver", engine, run, m, rows, res, order,
                                   {"peer": m["report"], "bronze": self.bronze_origin})
            finally:
                rmtree(out)

        for run in self.runs():
            self.each("b", "silver", engines, run, one, recs)
        self.agree(recs, "b/silver (silver.events: columns, types, all 9 columns' checksum)",
                   lambda r: {k: r[k] for k in ("rows", "checksum", "table_columns")})
        self.agree(recs, "b/silver (quarantine: rows, event_id multiset, stages)",
                   lambda r: r["quarantine"])
        strata = [r for r in recs if r["engine"] == "strata" and "error" not in r]
        self.agree(strata, "b/silver Strata's run report vs its tables",
                   lambda r: r["reported"] == {"rows_read": rows, "rows_written": r["rows"],
                                               "rows_quarantined": r["quarantine"]["rows"]}, True)
        if len(data_commits) > 1:
            # the peers order arrivals by (_batch_id, _source_file, _source_line); Strata puts the
            # commit version first, which only matters across commits
            print(f"  note: bronze has {len(data_commits)} data commits; the peers' arrival order "
                  "leaves out the commit version", flush=True)
        self.write(recs)

    # ---------------------------------------------------------- shared setup

    def setup_lake(self) -> None:
        """Outside every timing: bronze, silver.events (version V), its template copy, the changes."""
        if hasattr(self, "silver_v"):
            return
        print("setup: lakehouse, bronze.events, silver.events, changes tables (untimed)", flush=True)
        self.strata(["init", self.lake], "setup-init", json_out=False)
        self.strata(["ingest", self.data, "--into", "bronze.events"], "setup-ingest")
        self.sql("""
            CREATE TABLE silver.events AS
            SELECT event_id, user_id, event_type,
                   TRY_CAST(ts AS TIMESTAMP) AS ts,
                   session_id,
                   TRY_CAST(amount AS DOUBLE) AS amount,
                   country, device
            FROM (
                SELECT *, row_number() OVER (PARTITION BY event_id
                          ORDER BY _batch_id DESC, _source_file DESC, _source_line DESC) AS rn
                FROM bronze.events
                WHERE _corrupt_record IS NULL
            ) AS b
            WHERE rn = 1
            ORDER BY event_id""", "setup-silver")
        self.silver = os.path.join(self.lake, "lakehouse", "silver", "events")
        self.silver_v = delta_version(self.silver)
        self.silver_rows = self.ck.count("delta", self.silver)
        self.template = os.path.join(self.work, "c", "template")
        shutil.copytree(self.silver, self.template)
        self.changes: dict[str, dict] = {}
        sizes = [("10k", 10_000)] + ([("1m", 1_000_000)] if self.size in BIG_MERGE_SIZES else [])
        for name, n in sizes:
            updates = n * 8 // 10
            inserts = n - updates
            if updates > self.silver_rows:
                raise BenchError(f"silver.events has {self.silver_rows} rows, fewer than the {updates} "
                                 f"updates of a {name} MERGE")
            step = max(1, self.silver_rows // updates)
            table = f"silver.changes_{name}"
            self.sql(f"""
                CREATE TABLE {table} AS
                WITH numbered AS (
                    SELECT *, row_number() OVER (ORDER BY event_id) AS rn FROM silver.events
                ), picked AS (
                    SELECT * FROM numbered WHERE (rn - 1) % {step} = 0 AND rn <= {updates * step}
                )
                SELECT event_id, user_id, event_type, ts, session_id,
                       round(coalesce(amount, 0) + 1.25, 2) AS amount, country, device
                FROM picked
                UNION ALL
                SELECT 'evx-' || substr(event_id, 5) AS event_id, user_id, event_type, ts, session_id,
                       round(coalesce(amount, 0) + 2.5, 2) AS amount, country, device
                FROM picked WHERE rn <= {inserts * step}""", f"setup-changes-{name}")
            path = os.path.join(self.lake, "lakehouse", "silver", f"changes_{name}")
            got = self.ck.count("delta", path)
            if got != n:
                raise BenchError(f"{table} has {got} rows, not {n}")
            self.changes[name] = {"table": table, "path": path, "rows": n, "updates": updates,
                                  "inserts": inserts}
        print(f"setup: silver.events version {self.silver_v}, {self.silver_rows} rows; changes "
              + ", ".join(f"{k} ({v['updates']} updates, {v['inserts']} inserts)" for k, v in self.changes.items()),
              flush=True)

    def restore_silver(self, tag: str) -> None:
        if delta_version(self.silver) != self.silver_v:
            self.strata(["table", "restore", "silver.events", "--version", str(self.silver_v)], tag,
                        json_out=False)

    # ------------------------------------------------------------ workload c

    def workload_c(self) -> None:
        self.setup_lake()
        engines = ["strata", "deltalake"] + (["floor"] if self.floors else [])
        recs: dict[str, list[dict]] = {name: [] for name in self.changes}

        def merge_op(name: str):
            ch = self.changes[name]
            op = f"merge_{name}"

            def one(engine: str, run: int, order: list[str]) -> dict:
                if engine == "strata":
                    self.restore_silver(f"c-restore-r{run}")
                    m = self.sql(f"""MERGE INTO silver.events AS t USING {ch['table']} AS s
                                     ON t.event_id = s.event_id
                                     WHEN MATCHED THEN UPDATE SET *
                                     WHEN NOT MATCHED THEN INSERT *""", f"c-{name}-strata-r{run}", timed=True)
                    res = self.ck.table("delta", self.silver, SILVER_COLS)
                    return self.record("c", op, engine, run, m, ch["rows"], res, order, {"strata": m["json"]})
                out = os.path.join(self.work, "c", f"{engine}-{name}-r{run}")
                rmtree(out)
                try:
                    if engine == "floor":
                        m = self.floor(["merge", "--table", self.template, "--changes", ch["path"],
                                        "--out", out], f"c-{name}-floor-r{run}")
                        return self.record("c", op, engine, run, m, ch["rows"], None, order,
                                           {"floor": m["report"]})
                    shutil.copytree(self.template, out)
                    m = self.peer(engine, ["--workload", "c", "--data", ch["path"], "--out", out],
                                  f"c-{name}-{engine}-r{run}")
                    res = self.ck.table("delta", out, SILVER_COLS)
                    return self.record("c", op, engine, run, m, ch["rows"], res, order, {"peer": m["report"]})
                finally:
                    rmtree(out)
            return op, one

        ops = [merge_op(name) for name in self.changes]
        for run in self.runs():
            for (op, fn), name in zip(ops, self.changes):
                self.each("c", op, engines, run, fn, recs[name])
        self.restore_silver("c-restore-end")
        for name, rs in recs.items():
            want_rows = self.silver_rows + self.changes[name]["inserts"]
            self.agree(rs, f"c/merge_{name} (merged table, all columns)",
                       lambda r: {"rows": r["rows"], "checksum": r["checksum"]})
            self.agree(rs, f"c/merge_{name} row count", lambda r: r["rows"], want_rows)
            self.write(rs)

    # ------------------------------------------------------------ workload d

    GOLD_SQL = {
        "low": """SELECT date_trunc('hour', ts) AS hour, country, event_type,
                         count(*) AS events, round(sum(amount), 2) AS amount
                  FROM silver.events
                  GROUP BY date_trunc('hour', ts), country, event_type""",
        "high": """SELECT user_id, count(*) AS events, round(sum(amount), 2) AS amount
                   FROM silver.events
                   GROUP BY user_id""",
    }

    def workload_d(self) -> None:
        self.setup_lake()
        self.restore_silver("d-restore")
        engines = ["strata", "duckdb", "polars"]
        recs: dict[str, list[dict]] = {q: [] for q in GOLD_SQL_KEYS}

        def agg_op(query: str):
            op = f"agg_{query}"

            def one(engine: str, run: int, order: list[str]) -> dict:
                if engine == "strata":
                    name = f"gold.agg_{query}_r{run}"
                    m = self.sql(f"CREATE TABLE {name} AS {self.GOLD_SQL[query]}", f"d-{query}-strata-r{run}",
                                 timed=True)
                    path = os.path.join(self.lake, "lakehouse", "gold", f"agg_{query}_r{run}")
                    try:
                        res = self.ck.table("delta", path, GOLD_COLS[query], digits=2)
                    finally:
                        self.sql(f"DROP TABLE {name} PURGE", f"d-drop-r{run}")
                    return self.record("d", op, engine, run, m, self.silver_rows, res, order,
                                       {"strata": m["json"]})
                out = os.path.join(self.work, "d", f"{engine}-{query}-r{run}.parquet")
                os.makedirs(os.path.dirname(out), exist_ok=True)
                try:
                    m = self.peer(engine, ["--workload", "d", "--data", self.silver, "--query", query,
                                           "--out", out], f"d-{query}-{engine}-r{run}")
                    res = self.ck.table("parquet", out, GOLD_COLS[query], digits=2)
                    return self.record("d", op, engine, run, m, self.silver_rows, res, order,
                                       {"peer": m["report"]})
                finally:
                    if os.path.exists(out):
                        os.remove(out)
            return op, one

        for run in self.runs():
            for query in GOLD_SQL_KEYS:
                op, fn = agg_op(query)
                self.each("d", op, engines, run, fn, recs[query])
        for query, rs in recs.items():
            self.agree(rs, f"d/agg_{query} (result rows, sums to 2 decimals)",
                       lambda r: {"rows": r["rows"], "checksum": r["checksum"]})
            self.write(rs)

    # ------------------------------------------------------------ workload e

    def workload_e(self) -> None:
        """30 expectations over silver.events in one pass (peers/expectations.py): Strata's
        `quality check`, Great Expectations on pandas, and one hand-written DuckDB SELECT."""
        self.setup_lake()
        self.restore_silver("e-restore")
        rules = os.path.join(self.work, "e-rules.toml")
        with open(rules, "w") as fh:
            fh.write(expectations.strata_rules())
        engines = ["strata", "gx", "duckdb"]
        recs: list[dict] = []

        def one(engine: str, run: int, order: list[str]) -> dict:
            if engine == "strata":
                m = self.strata(["quality", "check", "silver.events", "--rules", rules],
                                f"e-strata-r{run}", timed=True)
                rows = json.loads(m["stdout"])
                results = {r["rule"]: {"success": r["passed"] in ("yes", True),
                                       "failed": int(r["failed"]) if r["kind"] == "row" else None}
                           for r in rows}
                checked = max(int(r["checked"]) for r in rows)
                res = {"rows": checked, "expectations": expectations.key(results)}
                return self.record("e", "expectations", engine, run, m, self.silver_rows, res, order)
            out = os.path.join(self.work, "e", f"{engine}-r{run}.json")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            try:
                m = self.peer(engine, ["--workload", "e", "--data", self.silver, "--out", out],
                              f"e-{engine}-r{run}")
                got = json.load(open(out))
                res = {"rows": got["rows"], "expectations": expectations.key(got["results"])}
                return self.record("e", "expectations", engine, run, m, self.silver_rows, res, order,
                                   {"peer": m["report"]})
            finally:
                if os.path.exists(out):
                    os.remove(out)

        for run in self.runs():
            self.each("e", "expectations", engines, run, one, recs)
        self.agree(recs, "e/expectations (rows checked; per expectation: failed rows, or the verdict)",
                   lambda r: r)
        self.agree(recs, "e/expectations rows checked", lambda r: r["rows"], self.silver_rows)
        self.write(recs)

    # ------------------------------------------------------------ workload f

    def workload_f(self) -> None:
        self.setup_lake()
        recs: dict[str, list[dict]] = {}

        def bucket(op: str) -> list[dict]:
            return recs.setdefault(op, [])

        for run in self.runs():
            name = f"appends_r{run}"
            table = f"silver.{name}"
            path = os.path.join(self.lake, "lakehouse", "silver", name)
            sql_file = os.path.join(self.work, f"f-appends-r{run}.sql")
            with open(sql_file, "w") as fh:
                for k in range(1, APPENDS + 1):
                    # (Strata refuses table functions such as generate_series(..) in FROM: it reads
                    # a one-part name as a table missing its schema; unnest(range(..)) does the same.)
                    fh.write(f"INSERT INTO {table} SELECT {k} AS batch, {k * APPEND_ROWS} + value AS id, "
                             f"'append {k}' AS note FROM (SELECT unnest(range(0, {APPEND_ROWS})) AS value) AS g;\n")
            built = {}

            def append(engine: str, run: int, order: list[str]) -> dict:
                if engine == "strata":
                    self.sql(f"CREATE TABLE {table} (batch BIGINT, id BIGINT, note STRING)", f"f-create-r{run}")
                    m = self.strata(["sql", "--file", sql_file], f"f-append-strata-r{run}", timed=True,
                                    json_out=False)
                    v = delta_version(path)
                    counts = check.delta_log_counts(path, [0, TRAVEL_VERSION, *RSS_VERSIONS, v])
                    res = {"version": v, "log_counts": counts, "rows": self.ck.count("delta", path)}
                    built.update(res)
                    return self.record("f", "append", engine, run, m, APPENDS * APPEND_ROWS, res, order,
                                       {"commits": APPENDS, "commits_per_s": APPENDS / m["op_s"]})
                out = os.path.join(self.work, "f", f"floor-r{run}")
                rmtree(out)
                os.makedirs(out)
                try:
                    m = self.floor(["commits", "--n", str(APPENDS), "--dir", out], f"f-floor-r{run}")
                    return self.record("f", "append", engine, run, m, APPENDS * APPEND_ROWS, None, order,
                                       {"floor": m["report"], "commits": APPENDS,
                                        "commits_per_s": APPENDS / m["op_s"]})
                finally:
                    rmtree(out)

            self.each("f", "append", ["strata"] + (["floor"] if self.floors else []), run, append,
                      bucket("append"))
            if "version" not in built:
                continue

            def counter(op: str, version):
                expected = built["log_counts"].get(str(version if version is not None else built["version"]))

                def one(engine: str, run: int, order: list[str]) -> dict:
                    if engine == "strata":
                        travel = "" if version is None else f" VERSION AS OF {version}"
                        m = self.sql(f"SELECT count(*) AS n FROM {table}{travel}", f"f-{op}-strata-r{run}",
                                     timed=True)
                        n = int(m["json"][0]["n"])
                    else:
                        args = ["--workload", "f", "--data", path]
                        if version is not None:
                            args += ["--version", str(version)]
                        m = self.peer(engine, args, f"f-{op}-{engine}-r{run}")
                        n = int(m["report"]["count"])
                    return self.record("f", op, engine, run, m, n, {"count": n, "expected": expected}, order)
                return op, one

            for op, version, engines in [("count_latest", None, ["strata", "deltalake", "polars"]),
                                         (f"count_v{TRAVEL_VERSION}", TRAVEL_VERSION,
                                          ["strata", "deltalake", "polars"])] + [
                                         (f"rss_v{v}", v, ["strata"]) for v in RSS_VERSIONS]:
                op, fn = counter(op, version)
                self.each("f", op, engines, run, fn, bucket(op))
            # this run's table is no longer needed
            try:
                self.sql(f"DROP TABLE {table} PURGE", f"f-drop-r{run}")
            except BenchError as e:
                print(f"  note: {e}", flush=True)

        ap = bucket("append")
        strata_ap = [r for r in ap if r["engine"] == "strata" and "error" not in r]
        if strata_ap:
            v0 = strata_ap[0]["result"]["log_counts"]
            note = (f"f: version 0 holds {v0.get('0')} rows, version {TRAVEL_VERSION} holds "
                    f"{v0.get(str(TRAVEL_VERSION))}, the latest ({strata_ap[0]['result']['version']}) holds "
                    f"{strata_ap[0]['result']['rows']}")
            print(note, flush=True)
        self.agree(ap, "f/append (rows in the table, by DuckDB)", lambda r: r["rows"], APPENDS * APPEND_ROWS)
        for op in ["count_latest", f"count_v{TRAVEL_VERSION}"] + [f"rss_v{v}" for v in RSS_VERSIONS]:
            rs = bucket(op)
            ok = [r for r in rs if "error" not in r]
            self.agree(rs, f"f/{op} (vs the Delta log's numRecords)", lambda r: r["count"] == r["expected"],
                       True)
            if ok and op == f"count_v{TRAVEL_VERSION}":
                print(f"  version {TRAVEL_VERSION} holds {ok[0]['result']['count']} rows", flush=True)
        for op, rs in recs.items():
            self.write(rs)
        rss = {v: sorted(r["maxrss_kib"] for r in bucket(f"rss_v{v}") if "error" not in r and not r["warmup"])
               for v in RSS_VERSIONS}
        if all(rss.values()):
            lo, hi = (rss[v][len(rss[v]) // 2] for v in RSS_VERSIONS)
            note = (f"f: Strata's peak RSS reading version {RSS_VERSIONS[1]}: {hi / 1024:.1f} MiB, version "
                    f"{RSS_VERSIONS[0]}: {lo / 1024:.1f} MiB (ratio {hi / lo:.3f}; target <= 1.10)")
            print(note, flush=True)

    # ------------------------------------------------------------ workload g

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    @staticmethod
    def proc_usage(pid: int) -> tuple[float, int]:
        """A live process's CPU seconds so far and its peak RSS (KiB), from /proc."""
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm = 0
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return cpu, hwm

    def start_server(self, cmd: list[str], port: int, tag: str, env: dict | None = None):
        self.seq += 1
        base = os.path.join(self.logs, f"{self.seq:04d}-{tag}")
        out, err = open(base + ".out", "wb"), open(base + ".err", "wb")
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=self.work)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise BenchError(f"{' '.join(cmd)} exited with {p.returncode}: "
                                 f"{open(base + '.err', errors='replace').read()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if c.recv(64).startswith(b"HTTP/1.1 200"):
                        return p
            except OSError:
                time.sleep(0.1)
        p.kill()
        raise BenchError(f"{' '.join(cmd)} did not answer /health within 60 s")

    @staticmethod
    def stop_server(p) -> None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise BenchError("the server did not stop within 120 s of SIGTERM")
        if p.returncode != 0:
            raise BenchError(f"the server exited with {p.returncode} after SIGTERM")

    def workload_g(self) -> None:
        """The registry and push ingest over HTTP: `strata serve` and the floors' minimal axum
        server, driven by the same load generator (floors load, one thread, keep-alive
        connections): schema lookups by id, registrations of new schemas, NDJSON pushes of
        1 000 records. The measured time is the load generator's; CPU and peak RSS are the
        server's, read from /proc around each operation."""
        if not self.floors:
            self.notes.append("g: skipped, the load generator is in the floors binary")
            print("  g skipped: no floors binary (it holds the load generator)", flush=True)
            return
        counts = G_REQUESTS.get(self.size, G_REQUESTS["s"])
        first = sorted(f for f in os.listdir(self.data) if f.endswith(".ndjson"))[0]
        with open(os.path.join(self.data, first), "rb") as fh:
            lines = [next(fh) for _ in range(G_PUSH_RECORDS)]
        body = os.path.join(self.work, "g-push.ndjson")
        with open(body, "wb") as fh:
            fh.writelines(lines)
        schema_file = os.path.join(self.work, "g-schema.avsc")
        with open(schema_file, "w") as fh:
            json.dump({"type": "record", "name": "Event", "namespace": "bench", "fields": [
                {"name": "event_id", "type": "string"}, {"name": "user_id", "type": "long"},
                {"name": "amount", "type": ["null", "double"], "default": None}]}, fh)
        new_schema = json.dumps({"schema": json.dumps(
            {"type": "record", "name": "R{n}", "fields": [{"name": "f{n}", "type": "long"}]})})
        engines = ["strata", "floor"]
        recs: dict[str, list[dict]] = {op: [] for op in counts}

        def ops(base: str) -> list[tuple[str, list[str]]]:
            return [
                ("lookup", ["--url", f"{base}/schemas/ids/1"]),
                ("register", ["--url", f"{base}/subjects/bench-{{n}}-value/versions", "--method", "POST",
                              "--body-template", new_schema]),
                ("push", ["--url", f"{base}/api/v1/tables/bronze.pushed/records", "--method", "POST",
                          "--body", body, "--content-type", "application/x-ndjson", "--warmup", "0"]),
            ]

        def serve_once(engine: str, run: int, order: list[str]) -> None:
            port = self.free_port()
            lake = os.path.join(self.work, "g", f"{engine}-r{run}")
            rmtree(lake)
            if engine == "strata":
                self.strata(["init", lake], f"g-init-r{run}", json_out=False)
                self.strata(["registry", "register", "bench-value", schema_file], f"g-schema-r{run}",
                            json_out=False, lake=lake)
                cmd = [self.strata_bin, "--lakehouse", lake, "serve", "--port", str(port)]
                server = self.start_server(cmd, port, f"g-serve-strata-r{run}", env=self.strata_env())
            else:
                cmd = [self.floors, "serve", "--port", str(port), "--dir", lake]
                server = self.start_server(cmd, port, f"g-serve-floor-r{run}")
            try:
                for op, args in ops(f"http://127.0.0.1:{port}"):
                    n = counts[op]
                    try:
                        cpu0, _ = self.proc_usage(server.pid)
                        m = self.floor(["load", *args, "--requests", str(n), "--concurrency",
                                        str(G_CONCURRENCY[op])], f"g-{op}-{engine}-r{run}")
                        cpu1, hwm = self.proc_usage(server.pid)
                        rep = m["report"]
                        if rep["ok"] != n:
                            raise BenchError(f"{n - rep['ok']} of {n} requests failed: {rep['statuses']}; "
                                             f"first: {rep['first_error']}")
                        m.update({"cpu_s": cpu1 - cpu0, "maxrss_kib": hwm, "cmd": cmd,
                                  "op_source": "the load generator's time"})
                        if op == "push":
                            rows = n * G_PUSH_RECORDS
                            res = {"records": rep["landed"] + rep["quarantined"]}
                        else:
                            rows = n
                            res = {"ok": rep["ok"]} if op == "lookup" else {"ok": rep["ok"],
                                                                             "distinct_ids": rep["distinct_ids"]}
                        extra = {"load": rep, "requests": n,
                                 "requests_per_s": rep["requests_per_s"]}
                        recs[op].append(self.record("g", op, engine, run, m, rows, res, order, extra))
                    except Exception as e:  # noqa: BLE001
                        recs[op].append(self.failed("g", op, engine, run, e, order))
            finally:
                self.stop_server(server)
            if engine == "strata":
                # every landed record is in bronze.pushed after the server stopped
                pushed = [r for r in recs["push"] if r["engine"] == "strata" and r["run"] == run
                          and "error" not in r]
                if pushed:
                    got = self.sql("SELECT count(*) AS n FROM bronze.pushed", f"g-count-r{run}", lake=lake)
                    n = int(got["json"][0]["n"])
                    landed = pushed[0]["extra"]["load"]["landed"]
                    if n != landed:
                        pushed[0]["agree"] = False
                        self.problems.append(f"g/push run {run}: bronze.pushed holds {n} rows, the answers "
                                             f"said {landed} landed")
            rmtree(lake)

        for run in self.runs():
            for engine in self.rotate(engines, run):
                try:
                    serve_once(engine, run, self.rotate(engines, run))
                except Exception as e:  # noqa: BLE001
                    for op in counts:
                        recs[op].append(self.failed("g", op, engine, run, e, self.rotate(engines, run)))
        self.agree(recs["lookup"], "g/lookup (answers 200)", lambda r: r, {"ok": counts["lookup"]}, skip=())
        self.agree(recs["register"], "g/register (answers 200, each a new id)", lambda r: r,
                   {"ok": counts["register"], "distinct_ids": counts["register"]}, skip=())
        self.agree(recs["push"], "g/push (records landed or quarantined)", lambda r: r,
                   {"records": counts["push"] * G_PUSH_RECORDS}, skip=())
        for op in counts:
            self.write(recs[op])

    # ------------------------------------------------------------------ main

    def run(self) -> int:
        print(f"bench {self.bench_id}: size {self.size}, runs {self.a.runs}"
              f"{' + 1 warm-up' if self.a.warmup else ' (no warm-up)'}, data {self.data}", flush=True)
        for n in self.notes:
            print("note: " + n, flush=True)
        steps = {"a": self.workload_a, "b": self.workload_b, "d": self.workload_d, "c": self.workload_c,
                 "e": self.workload_e, "f": self.workload_f, "g": self.workload_g}
        for w in [w for w in "abdcefg" if w in self.a.workloads]:
            print(f"workload {w}", flush=True)
            try:
                steps[w]()
            except Exception as e:  # noqa: BLE001
                msg = f"workload {w} stopped: {type(e).__name__}: {e}"
                print(msg, flush=True)
                self.problems.append(msg.splitlines()[0])
        if self.problems:
            print(f"FAILED: {len(self.problems)} problem(s):", flush=True)
            for p in self.problems:
                print("  - " + p, flush=True)
            return 1
        print("all engines agree", flush=True)
        return 0


GOLD_SQL_KEYS = ["low", "high"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", required=True)
    p.add_argument("--data", required=True, help="the generated NDJSON folder")
    p.add_argument("--work", required=True, help="scratch folder (wiped first)")
    p.add_argument("--strata", required=True, help="the strata binary")
    p.add_argument("--floors", default=os.environ.get("STRATA_BENCH_FLOORS") or None)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--warmup", type=int, choices=[0, 1], default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workloads", default="abcdefg")
    p.add_argument("--results", required=True, help="JSON lines are appended here")
    p.add_argument("--command", default=" ".join(sys.argv))
    a = p.parse_args()
    a.warmup = bool(a.warmup)
    if not a.workloads or set(a.workloads) - set("abcdefg"):
        p.error("--workloads takes letters among a, b, c, d, e, f and g")
    if a.runs < 1:
        p.error("--runs must be at least 1")
    return Harness(a).run()


if __name__ == "__main__":
    sys.exit(main())
