"""What the peer programs share: the schema they read the events with, a JSON object test for
readers that have none, workload b's columns, rules and cast grammars, and the one line a peer
prints."""

import json
import sys

# The fields of `strata generate events`, every one read as a string (the all-string
# schema; bronze keeps the same fields as text).
FIELDS = ["event_id", "user_id", "event_type", "ts", "session_id", "amount", "country", "device",
          "props", "coupon"]

# A regular expression that matches exactly the lines that are one JSON object (RFC 8259 strings,
# numbers, literals, objects and arrays, blanks around tokens), with values nested up to
# OBJECT_DEPTH levels counting the line's own object. The generated events nest 3 deep
# (event -> props -> pos). pyarrow and Polars have no test for valid JSON, and their NDJSON
# readers fail on the first malformed line; both run this pattern vectorised (RE2 in pyarrow,
# the regex crate in Polars). A deeper line would be dropped, and the checker's row count would
# then fail the run rather than let it pass.
OBJECT_DEPTH = 3
_STR = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_WS = r"[ \t]*"


def _members(inner: str) -> str:
    pair = f"{_STR}{_WS}:{_WS}{inner}{_WS}"
    return rf"\{{{_WS}(?:{pair}(?:,{_WS}{pair})*)?\}}"


def _value(depth: int) -> str:
    scalar = f"{_STR}|{_NUM}|true|false|null"
    if depth == 0:
        return f"(?:{scalar})"
    inner = _value(depth - 1)
    array = rf"\[{_WS}(?:{inner}{_WS}(?:,{_WS}{inner}{_WS})*)?\]"
    return f"(?:{scalar}|{_members(inner)}|{array})"


JSON_OBJECT_LINE = f"^{_WS}{_members(_value(OBJECT_DEPTH - 1))}{_WS}$"


# Workload b: the shipped example pipeline's silver_events flow (examples/events.pipeline.toml,
# docs/pipelines.md), written out by each peer. silver.events has exactly these columns:
SILVER_COLUMNS = ["event_id", "user_id", "event_type", "event_ts", "session_id", "amount", "event_date",
                  "country", "device"]
KNOWN_EVENT_TYPES = ["click", "purchase", "view", "signup"]
# The flow's row rules (action quarantine) in the file's order, then the merge's implicit rule on
# its key; a row failing any of them goes to quarantine with stage `expectation`.
RULES = ["event_id_present", "user_id_present", "event_ts_present", "known_event_type",
         "amount_not_negative", "key_not_null"]
# Bronze columns that give a row's arrival order (a later arrival wins a tie on event_ts). Strata
# sorts by (_commit_version, _batch_id, _source_file, _source_line); the benchmark's bronze is
# one ingest, one commit, so the last three decide.
ARRIVAL = ["_batch_id", "_source_file", "_source_line"]
# The strict TIMESTAMP cast: YYYY-MM-DD[T ]hh:mm[:ss[.f{1,9}]] then Z, +-hh, +-hh:mm or nothing
# (UTC). [0-9], not \d: the regex crate's \d is Unicode. Field ranges are checked apart.
TIMESTAMP_TEXT = (r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[T ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})"
                  r"(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?(?P<z>Z|[+-][0-9]{2}(?::[0-9]{2})?)?$")
TIMESTAMP_GROUPS = ["y", "mo", "d", "h", "mi", "s", "f", "z"]
# The DECIMAL(18,4) cast: a JSON number, exponent included, rounded half away from zero to 4
# places, failing past 18 digits. Text with at most 14 integer and 4 fraction digits and no
# exponent converts exactly with the engines' own casts; anything else goes through the digits.
AMOUNT_SIMPLE = r"^-?(0|[1-9][0-9]{0,13})(\.[0-9]{1,4})?$"
JSON_NUMBER = r"^(?P<neg>-?)(?P<i>0|[1-9][0-9]*)(?:\.(?P<f>[0-9]+))?(?:[eE](?P<e>[+-]?[0-9]+))?$"
JSON_NUMBER_GROUPS = ["neg", "i", "f", "e"]


def emit(engine: str, workload: str, op: str, op_s: float, rows: int, **extra) -> None:
    """The one JSON line a peer prints: its own time around the operation, after imports."""
    line = {"engine": engine, "workload": workload, "op": op, "op_s": op_s, "rows": rows, **extra}
    print(json.dumps(line), flush=True)


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)
