"""What the peer programs share: the schema they read the events with, a JSON object test for
readers that have none, and the one line a peer prints."""

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


def emit(engine: str, workload: str, op: str, op_s: float, rows: int, **extra) -> None:
    """The one JSON line a peer prints: its own time around the operation, after imports."""
    line = {"engine": engine, "workload": workload, "op": op, "op_s": op_s, "rows": rows, **extra}
    print(json.dumps(line), flush=True)


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)
