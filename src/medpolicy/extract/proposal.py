"""Extracted facts on their way into a case: marked ``source: extracted`` wherever they go, and never
the sole ground of an automatic approval unless the plan says so.

* :func:`case_and_sources` reads an extraction record (the JSON ``medpolicy extract --json`` prints)
  as a raw case plus the source of each fact, so ``medpolicy decide`` takes the record as it is.
* :func:`merge_extracted` adds extracted facts to a case without overriding what was given.
* :func:`rests_on_unconfirmed` says whether a determination used a fact still marked extracted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["EXTRACTED", "case_and_sources", "extracted_facts", "merge_extracted", "rests_on_unconfirmed"]

#: The source of a fact read from a document by :func:`medpolicy.extract.extract`, not yet confirmed.
EXTRACTED = "extracted"


def is_extraction_record(raw: Any) -> bool:
    return (
        isinstance(raw, Mapping) and raw.get("source") == EXTRACTED and isinstance(raw.get("facts"), Mapping)
    )


def case_and_sources(raw: Any) -> tuple[Any, dict[str, str] | None]:
    """An extraction record -> (its known facts as a raw case, each marked extracted); anything else is
    returned unchanged with no sources."""
    if not is_extraction_record(raw):
        return raw, None
    facts = {k: v for k, v in raw["facts"].items() if v is not None}
    return facts, dict.fromkeys(facts, EXTRACTED)


def merge_extracted(
    case: Mapping[str, Any], extracted: Mapping[str, Any], *, known: set[str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``case`` with the extracted facts it lacks (a given fact always wins); returns the merged case and
    the names of the facts taken from extraction, each marked extracted."""
    merged = dict(case)
    sources: dict[str, str] = {}
    for name, value in extracted.items():
        if value is None or (known is not None and name not in known):
            continue
        if merged.get(name) in (None, [], ""):
            merged[name] = value
            sources[name] = EXTRACTED
    return merged, sources


def extracted_facts(determination: Mapping[str, Any]) -> list[str]:
    """The facts of a determination (as JSON) whose source is still ``extracted``."""
    facts = determination.get("facts")
    if not isinstance(facts, Mapping):
        return []
    return [k for k, f in facts.items() if isinstance(f, Mapping) and f.get("source") == EXTRACTED]


def rests_on_unconfirmed(determination: Mapping[str, Any]) -> bool:
    """Whether a determination (as JSON) holds a fact whose source is still ``extracted``: nobody has
    confirmed it, so an approval must not rest on it alone."""
    facts = determination.get("facts")
    if not isinstance(facts, Mapping):
        return False
    return any(isinstance(f, Mapping) and f.get("source") == EXTRACTED for f in facts.values())
