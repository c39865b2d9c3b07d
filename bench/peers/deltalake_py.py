#!/usr/bin/env python3
"""Peer: pyarrow + the Python deltalake package (delta-rs).

  --workload a --data NDJSON_DIR --out TABLE_DIR    NDJSON -> all-string table -> write_deltalake
  --workload c --data CHANGES_TABLE --out TABLE_DIR MERGE the changes into the table (in place)
  --workload f --data TABLE_DIR [--version N]       count the rows of the latest (or version N)

Prints one JSON line; `op_s` is time.perf_counter() around the operation only (after imports
and argument parsing).

Workload a: pyarrow's JSON reader cannot skip a malformed line (one fails the whole read) and
refuses a number where the schema says string. So the lines are read as text first (pyarrow's
CSV reader with a delimiter that never occurs), lines that are not one JSON object are dropped
(common.JSON_OBJECT_LINE, a regular expression run by RE2: pyarrow has no JSON validity test), bare
numbers after a key are quoted (`"amount":12.50` -> `"amount":"12.50"`, vectorised RE2), and the
rest is parsed with an explicit string schema. `props` (a nested object) cannot be a string in
pyarrow: it is inferred as a struct.
"""

import argparse
import glob
import os
import sys
import time

from common import FIELDS, JSON_OBJECT_LINE, emit, fail

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pj
from deltalake import DeltaTable, __version__ as deltalake_version, write_deltalake

SCALARS = [f for f in FIELDS if f != "props"]


def read_lines(path: str) -> pa.ChunkedArray:
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=["line"], block_size=16 << 20),
        parse_options=pacsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False),
        convert_options=pacsv.ConvertOptions(column_types={"line": pa.large_string()},
                                             strings_can_be_null=False),
    )
    return table.column("line")


def parse_objects(lines: pa.ChunkedArray) -> pa.Table:
    lines = pc.filter(lines, pc.match_substring_regex(lines, pattern=JSON_OBJECT_LINE))
    if len(lines) == 0:
        return pa.table({f: pa.array([], pa.string()) for f in FIELDS})
    lines = pc.replace_substring_regex(lines, pattern=r'":\s*(-?[0-9][0-9.eE+\-]*)',
                                       replacement=r'":"\1"')
    empty, newline = pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string())
    lines = pc.binary_join_element_wise(lines, empty, newline).combine_chunks()
    offsets = memoryview(lines.buffers()[1]).cast("q")  # int64 offsets of a large_string array
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    data = lines.buffers()[2].slice(start, end - start)
    schema = pa.schema([(f, pa.string()) for f in SCALARS])
    return pj.read_json(
        pa.BufferReader(data),
        read_options=pj.ReadOptions(block_size=16 << 20),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
    )


def without_null_types(t: pa.DataType) -> pa.DataType:
    """Delta has no type for a field that was only ever null: make such fields strings."""
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, without_null_types(f.type)) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(without_null_types(t.value_type))
    return t


def ingest(data: str, out: str) -> None:
    files = sorted(glob.glob(os.path.join(data, "*.ndjson")))
    if not files:
        fail(f"no *.ndjson files in {data}")
    t0 = time.perf_counter()
    lines_read = 0
    tables = []
    for f in files:
        lines = read_lines(f)
        lines_read += len(lines)
        tables.append(parse_objects(lines))
    table = pa.concat_tables(tables, promote_options="permissive")
    table = table.cast(pa.schema([pa.field(f.name, without_null_types(f.type)) for f in table.schema]))
    write_deltalake(out, table)
    op_s = time.perf_counter() - t0
    emit("deltalake", "a", "ingest", op_s, lines_read, rows_out=table.num_rows,
         reader="pyarrow.csv lines -> JSON object regex -> quote numbers -> pyarrow.json",
         writer=f"deltalake {deltalake_version} write_deltalake")


def merge(changes: str, target: str) -> None:
    t0 = time.perf_counter()
    source = DeltaTable(changes).to_pyarrow_table()
    metrics = (
        DeltaTable(target)
        .merge(source=source, predicate="t.event_id = s.event_id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    op_s = time.perf_counter() - t0
    emit("deltalake", "c", "merge", op_s, source.num_rows,
         updated=metrics.get("num_target_rows_updated"), inserted=metrics.get("num_target_rows_inserted"))


def count(path: str, version) -> None:
    t0 = time.perf_counter()
    dt = DeltaTable(path) if version is None else DeltaTable(path, version=version)
    n = dt.to_pyarrow_dataset().count_rows()
    op_s = time.perf_counter() - t0
    emit("deltalake", "f", "count_latest" if version is None else f"count_v{version}", op_s, n,
         count=n, table_version=dt.version())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["a", "c", "f"])
    p.add_argument("--data", required=True)
    p.add_argument("--out")
    p.add_argument("--version", type=int)
    a = p.parse_args()
    if a.workload == "a":
        ingest(a.data, a.out)
    elif a.workload == "c":
        merge(a.data, a.out)
    else:
        count(a.data, a.version)


if __name__ == "__main__":
    main()
    # deltalake's native threads can abort the interpreter as it tears down, after the work is
    # done and reported; leave without that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
