"""The line of business of a claim line, from the payer code its format carries.

The table is data (``mappings/line-of-business.yaml``): ASC X12 837 claim filing indicator codes
(SBR09) and Source of Payment Typology prefixes (a FHIR ``Coverage.type``), each mapped to one of
``medpolicy.routing.LINES_OF_BUSINESS``. A code not in the table gives ``None`` (a NULL column): the
claim names no line of business the plan routes (Medicare fee-for-service MA/MB among them).

A CSV/Parquet column mapped to ``line_of_business`` may hold either a line of business or a claim filing
indicator code: ``sql_case`` turns both into the line of business in SQL (an empty value or a code that
names no routed line: NULL; anything else is kept as given, and routing reports the line in error as
``decide`` refuses an unknown line of business).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml

from medpolicy.routing import LINES_OF_BUSINESS

__all__ = [
    "LOB_SYSTEM",
    "SOPT_SYSTEM",
    "filing_indicator_table",
    "from_coverage",
    "from_filing_indicator",
    "sql_case",
]

#: Source of Payment Typology, and medpolicy's own line-of-business code system (as ``decide``'s FHIR
#: face reads a Coverage: ``medpolicy.interop.fhir_case``).
SOPT_SYSTEM = "urn:oid:2.16.840.1.113883.3.221.5"
LOB_SYSTEM = "https://medpolicy.dev/CodeSystem/line-of-business"


@cache
def _table() -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """(filing indicator code -> line, Source of Payment Typology prefixes longest first)."""
    text = resources.files("medpolicy.screening").joinpath("mappings/line-of-business.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    cfi = {str(k): str(v) for k, v in data["claim_filing_indicator"].items()}
    sopt = sorted(
        ((str(k), str(v)) for k, v in data["source_of_payment_typology"].items()), key=lambda kv: -len(kv[0])
    )
    bad = [v for v in (*cfi.values(), *(v for _, v in sopt)) if v not in LINES_OF_BUSINESS]
    if bad:  # pragma: no cover - the packaged table is checked by the tests
        raise ValueError(f"line-of-business.yaml maps to {bad}, not lines of business")
    return cfi, tuple(sopt)


def filing_indicator_table() -> dict[str, str]:
    """Claim filing indicator code (SBR09) -> line of business."""
    return dict(_table()[0])


def from_filing_indicator(code: str | None) -> str | None:
    return _table()[0].get(code) if code else None


def from_coverage(coverage: Mapping[str, Any]) -> str | None:
    """A Coverage resource's line of business: a ``type`` coding in :data:`LOB_SYSTEM` (one of the lines),
    else one in :data:`SOPT_SYSTEM` by its longest listed prefix."""
    codings = [c for c in ((coverage.get("type") or {}).get("coding") or ()) if isinstance(c, Mapping)]
    for c in codings:
        if c.get("system") == LOB_SYSTEM and c.get("code") in LINES_OF_BUSINESS:
            return str(c["code"])
    for c in codings:
        code = c.get("code")
        if c.get("system") == SOPT_SYSTEM and isinstance(code, str):
            for prefix, lob in _table()[1]:
                if code.startswith(prefix):
                    return lob
    return None


def sql_case(expr: str) -> str:
    """SQL (DuckDB and Spark) mapping ``expr`` (a text column: a line of business or a claim filing
    indicator code) to the line of business; NULL for an empty value or a code naming no routed line;
    anything else as given (routing then reports the line: an unknown line of business)."""
    whens = [f"WHEN '{lob}' THEN '{lob}'" for lob in LINES_OF_BUSINESS]
    whens += [f"WHEN '{code}' THEN '{lob}'" for code, lob in sorted(_table()[0].items())]
    whens += [f"WHEN '{code}' THEN CAST(NULL AS STRING)" for code in _without_line()]
    return f"CASE {expr} {' '.join(whens)} ELSE NULLIF({expr}, '') END"


@cache
def _without_line() -> tuple[str, ...]:
    text = resources.files("medpolicy.screening").joinpath("mappings/line-of-business.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return tuple(str(c) for c in data.get("claim_filing_indicator_without_line") or ())
