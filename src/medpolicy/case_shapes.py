"""Straight-line parsers for the shapes cases come in: the same checks as ``_Parser.checked``, without
its loop.

A batch's cases have a handful of shapes (the keys a case carries, in order). For a shape seen twice,
``Shapes`` generates a function that reads each key by name and calls that fact's own handler (the
reference's checks and memos), builds the three dictionaries in the same order, and ends in ``finish``
or its replay (``medpolicy.case_finish``). It gives up, returning None so that the reference parser
runs and says why, on anything other than the common case: a null, an empty list, a value a handler
refuses, an id or label that is not a short string, a routing key, a key that is not a fact. Shapes
with such keys are not compiled at all; at most ``_MAX_SHAPES`` are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from medpolicy.limits import LIMITS

if TYPE_CHECKING:
    from medpolicy.case import Case, _Parser

__all__ = ["Shapes"]

#: Shapes compiled per policy, and shapes counted before compiling (a shape is compiled when seen twice).
_MAX_SHAPES = 256
_MAX_COUNTED = 4096

Parse = Callable[[dict[str, Any]], "Case | None"]

_METADATA = frozenset({"id", "label"})


def _UNSEEN(raw: dict[str, Any]) -> Case | None:  # noqa: N802 -- a sentinel: a shape not compiled yet
    return None


class Shapes:
    """The straight-line parsers of one policy's parser, by the tuple of a case's keys."""

    def __init__(self, parser: _Parser) -> None:
        self.parser = parser
        self.table: dict[tuple[str, ...], Parse | None] = {}
        self.seen: dict[tuple[str, ...], int] = {}

    def parse(self, raw: dict[str, Any]) -> Case | None:
        """The case, or None: the reference must parse it."""
        try:
            shape = tuple(raw)
            fn = self.table.get(shape, _UNSEEN)
        except TypeError:  # an unhashable key (not from JSON)
            return None
        if fn is _UNSEEN:
            if len(self.table) >= _MAX_SHAPES or len(shape) > LIMITS.max_case_fields:
                return None
            known = self.parser.specs
            if not all(k in known or k in _METADATA for k in shape):
                return (
                    None  # an unknown key (any length, any number): never remembered, the reference says why
                )
            n = self.seen.get(shape, 0) + 1
            if n < 2:
                if len(self.seen) < _MAX_COUNTED:
                    self.seen[shape] = n
                return None
            fn = self.table[shape] = self._compile(shape)
        return None if fn is None or fn is _UNSEEN else fn(raw)

    def _compile(self, shape: tuple[str, ...]) -> Parse | None:
        p = self.parser
        env: dict[str, Any] = {"_max_chars": LIMITS.max_string_chars, "_parser": p}
        lines = [
            "def parse(raw):",
            "    errors = []",
            "    values = {}",
            "    display = {}",
            "    metadata = {}",
        ]
        for i, key in enumerate(shape):
            if type(key) is not str:
                return None
            if key in ("id", "label"):
                lines += [
                    f"    x = raw[{key!r}]",
                    "    if type(x) is not str or len(x) > _max_chars:",
                    "        return None",
                    f"    metadata[{key!r}] = x",
                ]
                continue
            spec = p.specs.get(key)
            if spec is None:
                return None  # a routing key or an unknown key: the reference checks those
            env[f"_h{i}"] = p.handlers[key]
            lines += [f"    x = raw[{key!r}]", "    if x is None:", "        return None"]
            if spec.type in ("codes", "staging"):
                lines += ["    if type(x) is list and not x:", "        return None"]
            lines += [
                f"    r = _h{i}(x, errors)",
                "    if r is None:",
                "        return None",
                f"    values[{key!r}], display[{key!r}] = r",
            ]
        lines += [
            "    src = dict.fromkeys(values, 'given')",
            "    f = _parser.finishes",
            "    if f is not None:",
            "        return f.finish(raw, values, display, src, metadata)",
            "    return _parser.finish(raw, values, display, src, metadata)",
        ]
        exec(compile("\n".join(lines) + "\n", "<medpolicy case shape>", "exec"), env)  # noqa: S102 -- keys are repr()'d literals; the code is built from the policy's facts
        fn: Parse = env["parse"]
        return fn
