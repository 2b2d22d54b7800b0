"""The member: their Coverage (its reference; line of business and group for routing) and the facts read
from the Patient."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from medpolicy.interop.fhir_case.resources import _codings, _full_date, reference_of


def coverage_reference(resources: Iterable[Mapping[str, Any]]) -> str | None:
    """Reference (``"Coverage/<id>"``) of the first active Coverage among ``resources``, or ``None``."""
    fallback: str | None = None
    for res in resources:
        if res.get("resourceType") != "Coverage":
            continue
        if res.get("status") == "active":
            return reference_of(res)
        if fallback is None and res.get("status") != "entered-in-error":
            fallback = reference_of(res)
    return fallback


#: Our own code system for a Coverage's line of business (codes: medpolicy.routing.LINES_OF_BUSINESS).
LINE_OF_BUSINESS_SYSTEM = "https://medpolicy.dev/CodeSystem/line-of-business"
#: PHDSC Source of Payment Typology (Coverage.type): 11x Medicare managed care (Medicare Advantage),
#: 2x Medicaid, 5x private insurance, 6x Blue Cross/Blue Shield.
SOPT_SYSTEM = "urn:oid:2.16.840.1.113883.3.221.5"
_SOPT_PREFIXES = (("11", "medicare_advantage"), ("2", "medicaid"), ("5", "commercial"), ("6", "commercial"))


def coverage_routing(resources: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``line_of_business`` and ``group`` of the member's Coverage (the one ``coverage_reference``
    picks), for routing a case to the plan's policy; keys absent when the Coverage does not say.

    Line of business: a ``Coverage.type`` coding in :data:`LINE_OF_BUSINESS_SYSTEM`, else one in the
    Source of Payment Typology (:data:`SOPT_SYSTEM`). Group: ``Coverage.class`` of type ``group``."""
    chosen = coverage_reference(resources)
    out: dict[str, str] = {}
    for res in resources:
        if res.get("resourceType") != "Coverage" or reference_of(res) != chosen:
            continue
        for coding in _codings(res.get("type")):
            code, system = coding.get("code"), coding.get("system")
            if not isinstance(code, str):
                continue
            if system == LINE_OF_BUSINESS_SYSTEM:
                out["line_of_business"] = code
                break
            if system == SOPT_SYSTEM and "line_of_business" not in out:
                lob = next((v for prefix, v in _SOPT_PREFIXES if code.startswith(prefix)), None)
                if lob is not None:
                    out["line_of_business"] = lob
        for cls in res.get("class") or []:
            if not isinstance(cls, Mapping) or not isinstance(cls.get("value"), str):
                continue
            if any(c.get("code") == "group" for c in _codings(cls.get("type"))):
                out["group"] = cls["value"]
                break
        break
    return out


def patient_facts(resources: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Facts read from the ``Patient``: ``date_of_birth`` from a full ``birthDate``. A face adds them
    only when the policy that decides the case declares the fact (ages are derived from it)."""
    for res in resources:
        if res.get("resourceType") == "Patient":
            born = _full_date(res.get("birthDate"))
            return {"date_of_birth": born} if born else {}
    return {}
