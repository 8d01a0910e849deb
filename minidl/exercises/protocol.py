"""What a grading worker may send the grader, and how the grader reads it — strictly.

The worker runs a student's code; everything it sends is therefore untrusted. It sends one
JSON object per line over an inherited pipe (never a file the student could reach by path):

    {"event": "ready"}                               minidl and the checks are imported
    {"event": "import", "file": "ex_sigmoid.py"}     before importing a kit file, and
    {"event": "imported", "file": "ex_sigmoid.py"}   after it
    {"event": "start", "id": "sigmoid_forward"}      before an exercise's probe
    {"event": "result", "id": ..., "outputs": {...}, "error": {...} or null, "seconds": ...}

``outputs`` holds *what the student's code returned* — never a verdict: the grader computes
the expected values itself and judges (``checks.py``). Each output is one of

    {"t": "<type name>", "a": {"dtype": "float64", "shape": [2, 3], "b64": "..."}}   numbers
    {"t": "<type name>", "bad": "<dtype or type>"}                                   not numbers
    {"t": "NoneType"}                                                                None
    {"t": "tuple", "items": [<output>, ...]}                                         several
    {"t": "raised", "exc": "FloatingPointError", "msg": "..."}                       an expected
                                                                                     exception
    {"t": "json", "v": <JSON value>}                                                 bools, lists

``decode_event`` checks every field (names, types, sizes, dtypes, that the bytes fit the shape)
and raises ``Malformed`` on anything else; the grader then fails *that exercise* and goes on.
"""
from __future__ import annotations

import base64
import json
import math
import re
from typing import Any, Dict, List, Optional

import numpy as np

MAX_LINE = 8 * 2 ** 20          # bytes in one event
MAX_ELEMENTS = 2 ** 20          # elements in one array
MAX_ITEMS = 32                  # values in one tuple
MAX_TEXT = 4000                 # characters of a message
MAX_KEYS = 400                  # outputs of one exercise
DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64"}
_KEY = re.compile(r"^[A-Za-z0-9_./:\-]{1,80}$")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9_\-]{1,80}\.py$")
_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,79}$")


class Malformed(ValueError):
    """An event the grader cannot accept; the message says what is wrong with it."""


# ============================================================================= worker side
def encode(value: Any, depth: int = 0) -> Dict[str, Any]:
    """One value the student's code returned, as the JSON the grader accepts."""
    type_name = type(value).__name__
    if value is None:
        return {"t": "NoneType"}
    if isinstance(value, (tuple, list)) and depth == 0 and not _is_numeric_list(value):
        return {"t": "tuple", "items": [encode(v, 1) for v in list(value)[:MAX_ITEMS]],
                "n": len(value)}
    data = getattr(value, "data", value) if type_name == "Tensor" else value
    try:
        array = np.asarray(data)
    except Exception:  # noqa: BLE001 - anything the student returns
        return {"t": _type(type_name), "bad": "not an array"}
    if array.dtype.kind not in "biuf" or array.dtype.name not in DTYPES:
        return {"t": _type(type_name), "bad": _type(str(array.dtype))}
    if array.size > MAX_ELEMENTS:
        return {"t": _type(type_name), "bad": f"too large ({array.size} elements)"}
    array = np.array(array, order="C", copy=True)  # (ascontiguousarray makes 0-d arrays 1-d)
    return {"t": _type(type_name),
            "a": {"dtype": array.dtype.name, "shape": list(array.shape),
                  "b64": base64.b64encode(array.tobytes()).decode("ascii")}}


def _is_numeric_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, (int, float, list)) for v in value)


def _type(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.]", "_", name)[:80] or "object"
    return name if name[0].isalpha() or name[0] == "_" else "_" + name


def raised(error: BaseException) -> Dict[str, Any]:
    return {"t": "raised", "exc": _type(type(error).__name__), "msg": str(error)[:MAX_TEXT]}


def plain(value: Any) -> Dict[str, Any]:
    """A JSON value (bools, numbers, nested lists of numbers, short strings)."""
    return {"t": "json", "v": value}


# ============================================================================= grader side
class Returned:
    """One decoded output: ``type`` (the Python type the student returned), ``array`` (a NumPy
    array of numbers, or None), ``bad`` (why it is not numbers), ``items`` (for a tuple),
    ``exc``/``msg`` (an exception the probe caught on purpose), ``value`` (a JSON value)."""

    def __init__(self, type_: str, array: Optional[np.ndarray] = None, bad: Optional[str] = None,
                 items: Optional[List["Returned"]] = None, exc: Optional[str] = None,
                 msg: str = "", value: Any = None, count: int = 0):
        self.type, self.array, self.bad, self.items = type_, array, bad, items
        self.exc, self.msg, self.value, self.count = exc, msg, value, count

    @property
    def is_none(self) -> bool:
        return self.type == "NoneType"

    def __repr__(self) -> str:
        return f"Returned({self.type}, shape={None if self.array is None else self.array.shape})"


def _decode_value(value: Any, depth: int = 0) -> Returned:
    if not isinstance(value, dict) or not isinstance(value.get("t"), str) or \
            not _TYPE.match(value["t"]):
        raise Malformed("an output is not an object with a type name")
    kind = value["t"]
    allowed = {"t", "a", "bad", "items", "n", "exc", "msg", "v"}
    if set(value) - allowed:
        raise Malformed(f"an output has unknown fields {sorted(set(value) - allowed)}")
    if kind == "NoneType":
        return Returned(kind)
    if kind == "tuple":
        items, count = value.get("items"), value.get("n")
        if depth or not isinstance(items, list) or len(items) > MAX_ITEMS or \
                type(count) is not int or not len(items) <= count < 10 ** 6:
            raise Malformed("a tuple output is malformed")
        return Returned(kind, items=[_decode_value(v, 1) for v in items], count=count)
    if kind == "raised":
        if not isinstance(value.get("exc"), str) or not _TYPE.match(value["exc"]) or \
                not isinstance(value.get("msg"), str):
            raise Malformed("a caught exception is malformed")
        return Returned(kind, exc=value["exc"], msg=value["msg"][:MAX_TEXT])
    if kind == "json":
        _check_json(value.get("v"))
        return Returned(kind, value=value.get("v"))
    if "bad" in value:
        if not isinstance(value["bad"], str) or len(value["bad"]) > 200:
            raise Malformed("a non-numeric output is malformed")
        return Returned(kind, bad=value["bad"])
    spec = value.get("a")
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "b64"}:
        raise Malformed("an array output is malformed")
    dtype, shape, data = spec["dtype"], spec["shape"], spec["b64"]
    if dtype not in DTYPES or not isinstance(shape, list) or len(shape) > 8 or \
            not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape) or \
            not isinstance(data, str):
        raise Malformed("an array output has a bad dtype or shape")
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise Malformed("an array output is too large")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise Malformed("an array output is not valid base64") from None
    if len(raw) != size * np.dtype(dtype).itemsize:
        raise Malformed("an array output's bytes do not fit its shape")
    return Returned(kind, array=np.frombuffer(raw, dtype=dtype).reshape(shape).copy())


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > 6:
        raise Malformed("a JSON output is nested too deeply")
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise Malformed("a JSON output holds too long a string")
        return
    if isinstance(value, list):
        if len(value) > 10000:
            raise Malformed("a JSON output holds too long a list")
        for v in value:
            _check_json(v, depth + 1)
        return
    raise Malformed(f"a JSON output holds a {type(value).__name__}")


def _decode_error(error: Any) -> Optional[Dict[str, str]]:
    if error is None:
        return None
    fields = {"type": str, "message": str, "where": (str, type(None)), "stub": (str, type(None)),
              "kind": str}
    if not isinstance(error, dict) or set(error) != set(fields) or \
            not all(isinstance(error[k], t) for k, t in fields.items()):
        raise Malformed("the error record is malformed")
    if error["kind"] not in ("error", "todo", "exit", "recursion") or \
            (error["stub"] is not None and not _ID.match(error["stub"])):
        raise Malformed("the error record is malformed")
    return {k: (v[:MAX_TEXT] if isinstance(v, str) else v) for k, v in error.items()}


def decode_event(line: str) -> Dict[str, Any]:
    """One line from the worker, validated; raises ``Malformed``."""
    if len(line) > MAX_LINE:
        raise Malformed("an event is too large")
    try:
        event = json.loads(line)
    except ValueError:
        raise Malformed("an event is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise Malformed("an event has no kind")
    kind = event["event"]
    shapes = {"ready": {"event"}, "import": {"event", "file"}, "imported": {"event", "file"},
              "start": {"event", "id"}, "result": {"event", "id", "outputs", "error", "seconds"}}
    if kind not in shapes:
        raise Malformed(f"unknown event {kind[:40]!r}")
    if set(event) != shapes[kind]:
        raise Malformed(f"a {kind} event has the wrong fields")
    if "file" in event and not (isinstance(event["file"], str) and _FILE.match(event["file"])):
        raise Malformed(f"a {kind} event names no kit file")
    if "id" in event and not (isinstance(event["id"], str) and _ID.match(event["id"])):
        raise Malformed(f"a {kind} event names no exercise")
    if kind == "result":
        outputs = event["outputs"]
        if not isinstance(outputs, dict) or len(outputs) > MAX_KEYS or \
                not all(isinstance(k, str) and _KEY.match(k) for k in outputs):
            raise Malformed("the outputs of a result are malformed")
        event["outputs"] = {k: _decode_value(v) for k, v in outputs.items()}
        event["error"] = _decode_error(event["error"])
        seconds = event["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
                not 0 <= seconds < 10 ** 6:
            raise Malformed("a result's time is malformed")
    return event
