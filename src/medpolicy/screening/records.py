"""What the readers produce: staged claim lines (one CSV row each) and read errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["STAGED_COLUMNS", "Emit", "Progress", "ReadError", "Report"]

#: A staged line: the canonical fields, the modifiers (``:``-separated), where it was read, and the
#: line of business its payer code means (``lob.py``; None when the claim names none the plan routes).
STAGED_COLUMNS = (
    "claim_id",
    "line_number",
    "member_id",
    "procedure_code",
    "modifiers",
    "diagnosis_codes",
    "date_of_service",
    "billed_amount",
    "location",
    "line_of_business",
)


@dataclass(frozen=True, slots=True)
class ReadError:
    """Input that could not be screened: where (file and position), why (a stable code and a reason),
    and how many claim lines it held (counted as lines in error)."""

    source: str
    location: str
    code: str
    reason: str
    lines: int = 0
    claim_id: str | None = None
    line_number: int | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


Emit = Callable[[tuple[Any, ...]], Any]
Report = Callable[[ReadError], Any]
#: Told the number of bytes of an input just read (a progress bar's advance).
Progress = Callable[[int], Any]
