# Sourced by test.sh and bench/run.sh: the one cached virtual environment with the pinned
# third-party clients and peers that Strata's tests and benchmark run against. Sets $venv.
# Reinstalled when the pins change.
cache="${STRATA_CACHE:-$HOME/.cache/strata}"
venv="$cache/venv"
pins=(deltalake==1.6.6 duckdb==1.5.5 duckdb-extension-delta==1.5.5 pyarrow==26.0.1 fastavro==1.13.1
      polars==2.1.0 great-expectations==1.24.1 "confluent-kafka[schemaregistry,avro]==2.16.1")
stamp="$venv/.strata-pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "installing ${pins[*]} into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" > "$stamp"
fi
