#!/usr/bin/env bash
# Runs Strata's whole test suite. Installs what the tests need (Python deltalake, DuckDB with
# its delta extension, pyarrow, fastavro; scripts/python-env.sh) into a cached virtual
# environment first.
#
#   ./test.sh                 everything: cargo test, then the benchmark's xs smoke test
#   ./test.sh -p strata-sql   extra arguments go to `cargo test` (no smoke test)
set -euo pipefail
cd "$(dirname "$0")"

# The metastore tests read the SQLite file with the sqlite3 shell.
if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "test.sh: installing sqlite3" >&2
  (apt-get update -qq && apt-get install -y -qq sqlite3) >/dev/null
fi

# Pinned versions of the third-party readers the interoperability tests use.
. scripts/python-env.sh

export STRATA_TEST_PYTHON="$venv/bin/python"
# The DuckDB delta extension ships inside its package; tests load it by path.
STRATA_DUCKDB_DELTA="$("$STRATA_TEST_PYTHON" - <<'PY'
import glob, os, duckdb_extension_delta as m
paths = glob.glob(os.path.join(os.path.dirname(m.__file__), "**", "*.duckdb_extension"), recursive=True)
print(paths[0] if paths else "")
PY
)"
export STRATA_DUCKDB_DELTA
if [ -z "$STRATA_DUCKDB_DELTA" ]; then
  echo "test.sh: the duckdb-extension-delta package has no .duckdb_extension file" >&2
  exit 1
fi

full=0
if [ $# -eq 0 ]; then
  full=1
  set -- --workspace
fi
cargo test "$@"

# The whole suite also runs the benchmark at size xs as a correctness smoke test: every engine
# must produce the same tables (no timing is asserted). It uses the binaries the tests built.
if [ "$full" -eq 1 ]; then
  target="${CARGO_TARGET_DIR:-target}"
  STRATA_BIN="$target/debug/strata" STRATA_BENCH_FLOORS="$target/debug/floors" \
    STRATA_BENCH_RESULTS="${STRATA_BENCH_RESULTS:-$(mktemp -d)}" bench/run.sh xs
fi
