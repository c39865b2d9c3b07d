#!/usr/bin/env bash
# Strata's quickstart: a lakehouse in a folder (a new temporary one unless you name it), the
# medallion demo (raw events landed into bronze, refined by a pipeline into silver and gold with
# casts, expectations and quarantine), then SQL writes, a merge, history, time travel and the
# change feed, on the embedded default (a folder and a SQLite metastore; no servers).
#
#   ./quickstart.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${STRATA_BIN:-}" ]; then
  strata="$STRATA_BIN"
else
  cargo build --quiet -p strata-cli
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
  strata="$target/debug/strata"
fi
dir="${1:-$(mktemp -d)/lakehouse}"
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

step "create a lakehouse in $dir"
"$strata" init "$dir"
export STRATA_LAKEHOUSE="$dir"

step "land raw events into bronze (sample data with seeded defects)"
"$strata" generate events --rows 20000 --files 4 --seed 42 --out "$dir/landing/events"
"$strata" ingest "$dir/landing/events" --into bronze.events
"$strata" sql "SELECT event_type, count(*) AS events, count(_corrupt_record) AS corrupt,
  count(_rescued_data) AS rescued FROM bronze.events GROUP BY event_type ORDER BY events DESC"

step "ingest again: every file is in the ledger, nothing lands twice"
"$strata" ingest "$dir/landing/events" --into bronze.events
"$strata" ingest history bronze.events

step "validate the event pipeline (examples/events.pipeline.toml): bronze -> silver -> gold"
"$strata" pipeline validate examples/events.pipeline.toml

step "run it: typed silver.events (one row per event_id), gold.daily_totals, failures quarantined"
"$strata" pipeline run examples/events.pipeline.toml

step "what failed, and why (quarantine.events)"
"$strata" sql "SELECT _stage, _rules, count(*) AS rows FROM quarantine.events
  GROUP BY _stage, _rules ORDER BY rows DESC"
"$strata" sql "SELECT _reason, _source_pointer FROM quarantine.events WHERE _stage = 'cast'
  ORDER BY _source_pointer LIMIT 3"

step "gold: daily totals per user"
"$strata" sql "SELECT user_id, event_date, daily_total, event_count FROM gold.daily_totals
  ORDER BY daily_total DESC, user_id LIMIT 5"

step "every expectation's result is kept in system.quality_results"
"$strata" sql "SELECT flow, rule, action, rows_checked, rows_failed, passed
  FROM system.quality_results ORDER BY flow, rule"

step "run again with no new input: nothing is committed"
"$strata" pipeline run examples/events.pipeline.toml

step "new files with late and duplicate events: ingest, then the pipeline reads only the new rows"
"$strata" generate events --rows 5000 --files 1 --seed 43 --out "$dir/landing/events-2"
"$strata" ingest "$dir/landing/events-2" --into bronze.events
"$strata" pipeline run examples/events.pipeline.toml
"$strata" pipeline runs --pipeline events

step "a silver table (version 0) and two writes (versions 1, 2)"
"$strata" table create silver.customers \
  --columns "id BIGINT NOT NULL, name STRING, country STRING, updated_at TIMESTAMP" \
  --comment "one row per customer"
"$strata" sql "INSERT INTO silver.customers VALUES
  (1, 'Ada', 'UK', TIMESTAMP '2024-09-01 10:00:00'),
  (2, 'Grace', 'US', TIMESTAMP '2024-09-01 11:00:00')"
"$strata" sql "INSERT INTO silver.customers VALUES (3, 'Edsger', 'NL', TIMESTAMP '2024-09-02 09:30:00')"

step "a merge: update Grace, insert Barbara (version 3)"
"$strata" sql "CREATE TABLE silver.customer_updates AS
  SELECT * FROM (VALUES (2, 'Grace Hopper', 'US', TIMESTAMP '2024-09-03 08:00:00'),
                        (4, 'Barbara', 'US', TIMESTAMP '2024-09-03 08:05:00'))
  AS v(id, name, country, updated_at)"
"$strata" sql "MERGE INTO silver.customers AS t USING silver.customer_updates AS s ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET *
  WHEN NOT MATCHED THEN INSERT *"

step "history"
"$strata" table history silver.customers

step "time travel: the table as of version 1, beside the current one"
"$strata" sql "SELECT id, name FROM silver.customers VERSION AS OF 1 ORDER BY id"
"$strata" sql "SELECT a.id, a.name AS before, b.name AS now
  FROM silver.customers VERSION AS OF 1 AS a JOIN silver.customers AS b ON a.id = b.id ORDER BY a.id"

step "the change feed since version 3"
"$strata" sql "SELECT id, name, _change_type, _commit_version
  FROM table_changes('silver.customers', 3) ORDER BY id, _change_type"

step "a gold table built from silver"
"$strata" sql "CREATE TABLE gold.customers_by_country AS
  SELECT country, count(*) AS customers FROM silver.customers GROUP BY country"
"$strata" sql "SELECT * FROM gold.customers_by_country ORDER BY country"

step "a schema registry: register a producer's schema, then check a change before it ships"
cat > "$dir/user-v1.avsc" <<'AVSC'
{"type": "record", "name": "User", "fields": [
  {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]}
AVSC
cat > "$dir/user-v2.avsc" <<'AVSC'
{"type": "record", "name": "User", "fields": [
  {"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "age", "type": "int"}]}
AVSC
"$strata" registry register users-value "$dir/user-v1.avsc"
# a new field without a default breaks BACKWARD compatibility: refused, with the reason
"$strata" registry check users-value "$dir/user-v2.avsc" || true
echo "(strata serve offers the same registry to Kafka clients over Confluent's REST API)"

step "what the lakehouse knows"
"$strata" sql "SELECT full_name, layer, kind FROM system.tables ORDER BY full_name"
"$strata" sql "SELECT source_table, target_table, kind FROM system.lineage ORDER BY source_table"

printf '\nDone. Explore it with: STRATA_LAKEHOUSE=%s %s sql\n' "$dir" "$strata"
