#!/usr/bin/env python3
"""Peer: Great Expectations (GX 1.x) on pandas.

  --workload e --data SILVER_TABLE --out FILE.json     the 30 expectations of expectations.py over
                                                        the Delta table read into a pandas DataFrame

Prints one JSON line; `op_s` is time.perf_counter() around the operation: reading the table into
pandas (deltalake's to_pandas) and validating the suite, after imports and after the ephemeral
context, data source, asset and suite are made. `read_s` and `validate_s` give the two parts.

Each expectation is GX's own (ExpectColumnValuesToNotBeNull, ...ToBeInSet, ...ToBeBetween,
...ToMatchRegex, ...ToBeUnique, ExpectTableRowCountToBeBetween, ExpectColumnMean/Min/Max/Stdev
ToBeBetween, ExpectColumnPairValuesAToBeGreaterThanB with ignore_row_if
"either_value_is_missing"), with result_format SUMMARY so unexpected and missing counts come back.
expectations.py says how its counts map to Strata's.
"""

import argparse
import datetime as dt
import json
import time

from common import emit, fail
from expectations import EXPECTATIONS

import deltalake
import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def expectation(name: str, kind: str, a: dict):
    if kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=a["column"])
    if kind == "in":
        return gxe.ExpectColumnValuesToBeInSet(column=a["column"], value_set=a["values"])
    if kind == "between":
        lo, hi = a["min"], a.get("max")
        if isinstance(lo, str):
            lo, hi = when(lo), (when(hi) if hi is not None else None)
        return gxe.ExpectColumnValuesToBeBetween(column=a["column"], min_value=lo, max_value=hi)
    if kind == "regex":
        return gxe.ExpectColumnValuesToMatchRegex(column=a["column"], regex=a["regex"])
    if kind == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=a["column"])
    if kind == "row_count":
        return gxe.ExpectTableRowCountToBeBetween(min_value=a["min"], max_value=a["max"])
    if kind == "agg":
        cls = {"mean": gxe.ExpectColumnMeanToBeBetween, "min": gxe.ExpectColumnMinToBeBetween,
               "max": gxe.ExpectColumnMaxToBeBetween, "stdev": gxe.ExpectColumnStdevToBeBetween}[a["fn"]]
        return cls(column=a["column"], min_value=a["min"], max_value=a["max"])
    if kind == "pair":
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a["a"], column_B=a["b"], ignore_row_if="either_value_is_missing")
    raise ValueError(kind)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True, choices=["e"])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("silver")
    batch_def = asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name="silver"))
    kinds = {}
    for name, kind, args in EXPECTATIONS:
        e = expectation(name, kind, args)
        e.meta = {"name": name}
        suite.add_expectation(e)
        kinds[name] = kind

    t0 = time.perf_counter()
    df = deltalake.DeltaTable(a.data).to_pandas()
    t1 = time.perf_counter()
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    res = batch.validate(suite, result_format="SUMMARY")
    t2 = time.perf_counter()

    results = {}
    for r in res.results:
        name = r.expectation_config.meta["name"]
        if r.exception_info and r.exception_info.get("raised_exception"):
            fail(f"expectation {name}: {r.exception_info.get('exception_message')}")
        out = r.result or {}
        kind = kinds[name]
        if kind in ("not_null", "in", "between", "regex"):
            failed = int(out.get("unexpected_count") or 0) + (
                0 if kind == "not_null" else int(out.get("missing_count") or 0))
        elif kind == "pair":
            failed = int(out.get("unexpected_count") or 0)
        else:
            failed = None
        observed = out.get("observed_value")
        if isinstance(observed, (pd.Timestamp, dt.datetime)):
            observed = observed.isoformat()
        results[name] = {"success": bool(r.success), "failed": failed, "observed": observed}
    if len(results) != len(EXPECTATIONS):
        fail(f"{len(results)} results for {len(EXPECTATIONS)} expectations")
    with open(a.out, "w") as fh:
        json.dump({"rows": len(df), "results": results}, fh, default=str)
    emit("gx", "e", "expectations", t2 - t0, len(df), read_s=t1 - t0, validate_s=t2 - t1)


if __name__ == "__main__":
    main()
