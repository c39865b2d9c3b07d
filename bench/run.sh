#!/usr/bin/env bash
# Strata's benchmark: Strata and its peers on the same generated files, results checked for
# agreement before any time is compared. See bench/README.md.
#
#   bench/run.sh xs               10k rows in 4 files: a correctness smoke test (1 run, no warm-up)
#   bench/run.sh s                1M rows in 16 files: 1 warm-up + 5 runs
#   bench/run.sh m                10M rows in 64 files: 1 warm-up + 3 runs
#   bench/run.sh s --runs 7       another number of runs (1 run means no warm-up)
#   bench/run.sh s --workloads ad only some workloads (a ingest, b bronze to silver, c merge,
#                                 d gold, e expectations, f appends, g registry and push over
#                                 HTTP; default abcdefg)
#
# Environment: STRATA_BIN (the strata binary; default the release build in
# ${CARGO_TARGET_DIR:-~/.cache/strata-target}), STRATA_BENCH_FLOORS (the `floors` binary of
# bench/floors; default beside the strata binary, skipped when missing), STRATA_BENCH_DIR
# (data and scratch, default ~/.cache/strata/bench), STRATA_CACHE (where the Python venv
# lives, default ~/.cache/strata; scripts/python-env.sh), STRATA_BENCH_RESULTS (where
# results/, RESULTS.md and charts/ go; default bench/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command="bench/run.sh $*"

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

size="${1:-}"
[ $# -gt 0 ] && shift
seed=42
case "$size" in
  xs) rows=10000 files=4 runs=1 ;;
  s) rows=1000000 files=16 runs=5 ;;
  m) rows=10000000 files=64 runs=3 ;;
  *) usage ;;
esac
workloads=abcdefg
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
    --runs=*) runs="${1#--runs=}"; shift ;;
    --workloads) workloads="${2:?--workloads needs letters such as abcdefg}"; shift 2 ;;
    --workloads=*) workloads="${1#--workloads=}"; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
done
case "$runs" in '' | *[!0-9]* | 0) echo "run.sh: --runs takes a number of at least 1" >&2; exit 2 ;; esac
case "$workloads" in '' | *[!abcdefg]*) echo "run.sh: --workloads takes letters among a, b, c, d, e, f and g" >&2; exit 2 ;; esac
warmup=1
[ "$runs" -eq 1 ] && warmup=0

# The Python side: pinned peers in the cached venv the tests use too.
. "$here/../scripts/python-env.sh"
py="$venv/bin/python"

target="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
strata="${STRATA_BIN:-$target/release/strata}"
if [ ! -x "$strata" ]; then
  echo "run.sh: no strata binary at $strata. Build it with" >&2
  echo "  CARGO_TARGET_DIR=$target cargo build --release --workspace --bins" >&2
  echo "or point STRATA_BIN at one." >&2
  exit 1
fi
floors="${STRATA_BENCH_FLOORS:-$(dirname "$strata")/floors}"
if [ ! -x "$floors" ]; then
  if [ -n "${STRATA_BENCH_FLOORS:-}" ]; then
    echo "run.sh: STRATA_BENCH_FLOORS=$floors is not an executable" >&2
    exit 1
  fi
  echo "run.sh: no floors binary beside $strata: floors skipped (build bench/floors too)" >&2
  floors=""
fi

# The data: generated once per size and seed (strata generate is deterministic), and again when
# this binary's generator makes different bytes (its fingerprint: a 500-row sample's checksum).
bench_dir="${STRATA_BENCH_DIR:-$HOME/.cache/strata/bench}"
data="$bench_dir/data/$size"
sample="$(mktemp -d)"
"$strata" generate events --rows 500 --files 1 --seed "$seed" --out "$sample" >/dev/null 2>&1
fingerprint="$(cat "$sample"/*.ndjson | sha256sum | cut -d' ' -f1)"
rm -rf "$sample"
if [ "$(cat "$data/.generator" 2>/dev/null)" != "$fingerprint" ] ||
  ! "$py" - "$data/_generate.json" "$rows" "$files" "$seed" <<'PY' 2>/dev/null; then
import json, sys
o = json.load(open(sys.argv[1]))["options"]
sys.exit(0 if [o["rows"], o["files"], o["seed"]] == [int(x) for x in sys.argv[2:]] else 1)
PY
  echo "run.sh: generating $rows rows in $files files (seed $seed) into $data" >&2
  rm -rf "$data"
  mkdir -p "$(dirname "$data")"
  "$strata" generate events --rows "$rows" --files "$files" --seed "$seed" --out "$data" >&2
  echo "$fingerprint" > "$data/.generator"
fi

# Results, RESULTS.md and charts: in bench/ unless STRATA_BENCH_RESULTS names another folder
# (the test suite's smoke run keeps the repository's results untouched).
out="${STRATA_BENCH_RESULTS:-$here}"
mkdir -p "$out/results"
set +e
"$py" "$here/harness.py" --size "$size" --data "$data" --work "$bench_dir/work/$size" \
  --strata "$strata" ${floors:+--floors "$floors"} --runs "$runs" --warmup "$warmup" --seed "$seed" \
  --workloads "$workloads" --results "$out/results/$size.jsonl" --command "$command"
rc=$?
set -e
"$py" "$here/report.py" "$out"/results/*.jsonl --out "$out/RESULTS.md" --charts "$out/charts"
if [ "$rc" -ne 0 ]; then
  echo "run.sh: the benchmark failed its checks (see above); RESULTS.md marks the failures" >&2
fi
exit "$rc"
