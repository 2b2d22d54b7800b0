"""A validated case and its notes: the types ``medpolicy.case`` builds, and how an offending value
is shown back in an error (short, finite, valid Unicode). Import them from ``medpolicy.case``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medpolicy.limits import LIMITS

__all__ = ["CONFLICT", "Case", "Note"]

CONFLICT = "conflicting_facts"


@dataclass(frozen=True, slots=True)
class Note:
    """A note on a case or determination. A ``conflicting_facts`` note names the ``fact`` and the
    ``alternative`` value the other facts point to (``None``: they leave it unknown); ``letter``: the
    note bears on the member's rights and letters show it."""

    code: str
    message: str
    cite: tuple[str, ...] = ()
    fact: str | None = None
    alternative: Any = None
    letter: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.cite:
            d["cite"] = list(self.cite)
        if self.fact is not None:
            d["fact"] = self.fact
            d["alternative"] = self.alternative
        if self.letter:
            d["letter"] = True
        return d


class Case:
    """A validated case. ``values`` holds the decision-ready value of each known fact (enums as their
    canonical value, codes as frozen sets, staging as a frozen set of T categories); ``display`` the
    normalised value as a person reads it; ``sources`` says where each value came from.

    Treat a case as immutable: determinations and caches share its parts. (A plain slotted class
    rather than a frozen dataclass, which costs a microsecond per case to build.)"""

    __slots__ = ("display", "metadata", "notes", "sources", "values")

    def __init__(
        self,
        values: Mapping[str, Any],
        display: Mapping[str, Any],
        sources: Mapping[str, str],
        notes: tuple[Note, ...] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.values = values
        self.display = display
        self.sources = sources
        self.notes = notes
        self.metadata: Mapping[str, Any] = metadata if metadata is not None else {}

    def __repr__(self) -> str:
        return f"Case({dict(self.display)!r})"

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The normalised case as JSON (known facts only), with metadata."""
        return {**self.metadata, **{k: v for k, v in self.display.items() if self.sources.get(k) == "given"}}


#: Integers beyond this magnitude are not numbers a case can carry (no float, store or JSON holds them).
_INT_BOUND = 2**63


def _show(value: Any) -> Any:
    """The offending value as JSON can show it: short (long strings and lists are clipped), finite
    (NaN and infinities as strings), valid Unicode."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT_BOUND < value < _INT_BOUND else f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, list | tuple):
        n = LIMITS.max_errors_listed
        shown = [_show(v) for v in value[:n]]
        return shown if len(value) <= n else [*shown, f"... ({len(value)} items)"]
    return _clip(type(value).__name__)


def _clip(text: str) -> str:
    """A string as an error may echo it: at most ``max_echo_chars`` characters, valid Unicode."""
    n = LIMITS.max_echo_chars
    if len(text) > n:
        text = f"{text[:n]}... ({len(text)} characters)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
