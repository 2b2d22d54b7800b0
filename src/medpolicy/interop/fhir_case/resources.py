"""FHIR resource plumbing shared by the readers: references, Bundles flattened, codings, full dates."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_FULL_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def reference_of(resource: Mapping[str, Any]) -> str:
    """``"<resourceType>/<id>"`` of a resource (``"<resourceType>/#"`` when it has no id)."""
    rid = resource.get("id")
    return f"{resource.get('resourceType', 'Resource')}/{rid if isinstance(rid, str) and rid else '#'}"


def flatten_resources(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Resources from loose resources and Bundles (any depth), in order.

    ``None`` entries (a prefetch key the client resolved to nothing) and OperationOutcomes (a client's
    report that prefetching failed) are skipped. Non-mapping items are ignored.
    """
    out: list[dict[str, Any]] = []
    for item in items:
        _walk(item, out)
    return out


def _walk(item: Any, out: list[dict[str, Any]]) -> None:
    # A module function, not a closure: a closure that calls itself is a reference cycle (function,
    # cell, function) holding `out`, freed only by the garbage collector; one per CDS call made the
    # collector run every few dozen calls and a full collection every ~10 s under load.
    if not isinstance(item, Mapping):
        return
    rtype = item.get("resourceType")
    if rtype == "Bundle":
        for entry in item.get("entry") or []:
            if isinstance(entry, Mapping):
                _walk(entry.get("resource"), out)
        return
    if rtype == "OperationOutcome" or not isinstance(rtype, str):
        return
    out.append(dict(item))


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]


def _codes_in(concept: Any, systems: frozenset[str]) -> list[str]:
    codes: list[str] = []
    for coding in _codings(concept):
        code = coding.get("code")
        if coding.get("system") in systems and isinstance(code, str) and code.strip():
            codes.append(code.strip())
    return codes


def _has_code(concept: Any, system: str, codes: frozenset[str] | set[str] | str) -> str | None:
    wanted = {codes} if isinstance(codes, str) else codes
    for coding in _codings(concept):
        if coding.get("system") == system and coding.get("code") in wanted:
            return str(coding["code"])
    return None


def _status_code(concept: Any) -> str | None:
    for coding in _codings(concept):
        code = coding.get("code")
        if isinstance(code, str):
            return code
    return None


def _full_date(value: Any) -> str | None:
    if isinstance(value, str):
        m = _FULL_DATE.match(value)
        if m:
            return m.group(1)
    return None


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)
