#!/usr/bin/env bash
# Runs Strata's whole test suite. Installs what the tests need (Python deltalake, DuckDB with
# its delta extension, pyarrow, fastavro) into a cached virtual environment first.
#
#   ./test.sh                 everything
#   ./test.sh -p strata-sql   extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")"

# The metastore tests read the SQLite file with the sqlite3 shell.
if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "test.sh: installing sqlite3" >&2
  (apt-get update -qq && apt-get install -y -qq sqlite3) >/dev/null
fi

cache="${STRATA_CACHE:-$HOME/.cache/strata}"
venv="$cache/venv"
# Pinned versions of the third-party readers the interoperability tests use.
pins=(deltalake==1.6.6 duckdb==1.5.5 duckdb-extension-delta==1.5.5 pyarrow==26.0.1 fastavro==1.13.1)
stamp="$venv/.strata-pins"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "test.sh: installing ${pins[*]} into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" > "$stamp"
fi

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

if [ $# -eq 0 ]; then set -- --workspace; fi
cargo test "$@"
