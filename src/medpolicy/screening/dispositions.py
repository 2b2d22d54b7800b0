"""What a claims system does with a screened line: a disposition and the adjustment codes to suggest.

The engine never denies. Each outcome maps to a disposition (``pass``, ``pend_for_records``,
``refer_to_review``) and to the claim adjustment reason code (CARC) and remark codes (RARC) a payer would
use for the edit: code values only (the X12 description texts are licensed). The policy id and version
go beside them (an 835 carries the policy reference in REF*0K).
"""

from __future__ import annotations

from dataclasses import dataclass

from medpolicy.policy import Outcome

__all__ = ["DISPOSITIONS", "Disposition", "disposition_for"]

#: The dispositions, in the order a summary lists them.
DISPOSITIONS = ("pass", "pend_for_records", "refer_to_review")


@dataclass(frozen=True, slots=True)
class Disposition:
    disposition: str
    carc: str | None
    rarc: str | None  # remark codes, comma-separated


_PASS = Disposition("pass", None, None)
_BY_OUTCOME = {
    Outcome.MEDICALLY_NECESSARY: _PASS,
    Outcome.NOT_APPLICABLE: _PASS,
    Outcome.INFORMATION_NEEDED: Disposition("pend_for_records", "252", "M127,N706"),
    Outcome.INVESTIGATIONAL: Disposition("refer_to_review", "55", None),
    Outcome.NOT_MEDICALLY_NECESSARY: Disposition("refer_to_review", "50", None),
}
#: Information needed on a line that carries no diagnosis at all: the diagnosis is missing (CARC 16, RARC M76).
_NO_DIAGNOSIS = Disposition("pend_for_records", "16", "M76")


def disposition_for(outcome: Outcome, *, diagnosis_missing: bool = False) -> Disposition:
    """The disposition of a line with this outcome; ``diagnosis_missing``: the line has no diagnosis code."""
    if outcome is Outcome.INFORMATION_NEEDED and diagnosis_missing:
        return _NO_DIAGNOSIS
    return _BY_OUTCOME[outcome]
