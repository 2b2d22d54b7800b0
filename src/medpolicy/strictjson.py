"""One strict JSON loader for every face (CLI and service): RFC 8259 JSON and nothing looser.

``loads(data)`` refuses, with a ``JsonInputError`` that says why and where:

* bytes that are not UTF-8, and strings holding a lone surrogate (``"\\ud800"``);
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers out of a double's range (``1e999``);
* integers outside -2^63 .. 2^64-1 (``10^400``): no store, driver or JSON writer carries them;
* duplicate keys in one object (clinical data must not be ambiguous: "last wins" is a guess);
* NUL characters in strings (no database stores them; no clinical text holds one);
* nesting deeper than ``LIMITS.max_json_depth``.

Pure: no I/O; the callers turn ``JsonInputError`` into their own answer (exit 2, 422 or 400).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from medpolicy.limits import LIMITS

__all__ = ["JsonInputError", "dumps_safe", "loads"]

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_orjson_loads, _DecodeError = orjson.loads, orjson.JSONDecodeError
# A \uD800-\uDFFF escape: only then can the decoded text hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonInputError(ValueError):
    """Input that is not strict JSON. ``message`` says why (lower case); ``position`` is the character
    offset when known."""

    code = "invalid_json"

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        super().__init__(message if position is None else f"{message} (at character {position})")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonInputError(f"duplicate key {_short(key)!r} in one object")
            seen.add(key)
    return d


def _constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonInputError(f"the number {_short(text)} is out of range")
    return value


def _int(text: str) -> int:
    if len(text) > 21:  # more digits than any integer in range: refuse before converting
        raise JsonInputError(f"the integer {_short(text)} is out of range (-2^63 to 2^64-1)")
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise JsonInputError(f"the integer {text} is out of range (-2^63 to 2^64-1)")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float, parse_int=_int
)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse strict JSON; raise ``JsonInputError`` for anything else.

    Fast path: orjson (itself strict about NaN, infinities, surrogates and UTF-8), then one pass over
    the result that checks what orjson lets through: a duplicate key (every ``:`` of the text is a key
    separator or inside a string, so the counts differ), an integer past 64 bits (orjson makes it a
    float), a NUL, deep nesting. Any doubt goes to the slow path, the standard library's parser with
    strict hooks, which says why."""
    raw = (
        data
        if type(data) is bytes
        else data.encode("utf-8", "surrogatepass")
        if isinstance(data, str)
        else bytes(data)
    )
    try:
        value = _orjson_loads(raw)
    except _DecodeError:
        return _slow(raw)
    if b"\\u0000" in raw:
        return _slow(raw)
    colons = raw.count(b":")
    if type(value) is dict and colons == len(value):
        for v in value.values():  # a flat object (see _flat), inline: most lines are one
            t = type(v)
            if t is str or t is bool or t is int or v is None:
                continue
            if t is list:
                for x in v:
                    if type(x) is not str:
                        break
                else:
                    continue
            elif t is float and not (v.is_integer() and abs(v) >= 2**63):
                continue
            break
        else:
            return value
    if not _plain(value, colons):
        return _slow(raw)
    return value


def _flat(value: dict[str, Any]) -> bool:
    """A case as most lines carry it: one object whose text has exactly one ``:`` per key it kept (so
    no key repeats, no nested object has a key, no string holds a colon), and whose values are
    scalars and lists of strings (so no depth to check). Its integers are exact, unless orjson made
    one a float (see ``_plain``)."""
    for v in value.values():
        t = type(v)
        if t is list:
            for x in v:
                if type(x) is not str:
                    return False
        elif t is float:
            if v.is_integer() and abs(v) >= 2**63:
                return False
        elif t is dict:
            return False
    return True


def _plain(value: Any, colons: int) -> bool:
    """Whether orjson's `value` is what the strict parser gives (see `loads`)."""
    t = type(value)
    if t is str:
        return bool(value.count(":") == colons)
    if t is not dict and t is not list:
        return colons == 0 and not (t is float and value.is_integer() and abs(value) >= 2**63)
    limit = LIMITS.max_json_depth
    seen = 0  # colons accounted for: key separators, and colons inside keys and strings
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if type(node) is dict:
            seen += len(node)
            for key in node:
                if ":" in key:
                    seen += key.count(":")
            children: Any = node.values()
        else:
            children = node
        for child in children:
            t = type(child)
            if t is str:
                if ":" in child:
                    seen += child.count(":")
            elif t is dict or t is list:
                stack.append((child, depth + 1))
            elif t is float and child.is_integer() and abs(child) >= 2**63:
                return False
    return seen == colons


def _slow(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInputError("the body is not valid UTF-8", exc.start) from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JsonInputError(exc.msg[:1].lower() + exc.msg[1:], exc.pos) from None
    except RecursionError:
        raise JsonInputError(f"nested deeper than {LIMITS.max_json_depth} levels") from None
    check_strings = "\\u" in text and (_SURROGATE_ESCAPE.search(text) is not None or "\\u0000" in text)
    deep = text.count("[") + text.count("{") > LIMITS.max_json_depth
    if check_strings or deep:
        _walk(value, check_strings)
    return value


def _walk(value: Any, check_surrogates: bool) -> None:
    """Depth and lone surrogates, without recursion."""
    limit = LIMITS.max_json_depth
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > limit:
                raise JsonInputError(f"nested deeper than {limit} levels")
            for k, v in node.items():
                if check_surrogates:
                    _text(k)
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            if depth > limit:
                raise JsonInputError(f"nested deeper than {limit} levels")
            stack.extend((v, depth + 1) for v in node)
        elif check_surrogates and isinstance(node, str):
            _text(node)


def _text(s: str) -> None:
    if "\x00" in s:
        raise JsonInputError("a string holds a NUL character (\\u0000), which no field may hold")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInputError(
            "a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode"
        ) from None


def _short(text: str) -> str:
    n = LIMITS.max_echo_chars
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def dumps_safe(value: Any, *, indent: int | None = None) -> str:
    """JSON text that any strict reader accepts: a non-finite float is written as a string, never as a
    bare ``NaN``/``Infinity``; a lone surrogate as ``\\ufffd``."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_finite(k) if isinstance(k, str) else k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
