"""FHIR R4 resources -> raw medpolicy case (pure translation, no I/O, no web framework).

This module turns an order (the draft ``ServiceRequest`` of a CDS Hooks call, a PAS ``Claim`` item, an
``Appointment``...) and the patient's supporting resources (``Condition``, ``Observation``, ``Procedure``,
``Coverage``, ``Patient``; loose or inside Bundles) into the raw case mapping that
:func:`medpolicy.decide` takes, and records where every fact came from.

Public API (used by the CRD, DTR and PAS faces)::

    extracted = extract_case(order, resources)           # -> ExtractedCase
    extracted.case        # {"procedure_codes": [...], "diagnosis_codes": [...], "t_stage": [...], ...}
    extracted.sources     # {"diagnosis_codes": ("Condition/123",), "t_stage": ("Observation/9",), ...}
    flatten_resources(prefetch.values())                 # Bundles -> list of resources
    order_codes(order) / order_date(order) / coverage_reference(resources)

Rules (documented in docs/api-cds.md, "FHIR -> case"):

* Procedure codes: codings of ``ServiceRequest.code`` (and its Da Vinci ``ext-billing-options``
  alternatives, and the ``code`` elements of other order types) whose system is CPT
  (``http://www.ama-assn.org/go/cpt``) or HCPCS Level II. Other systems (SNOMED, LOINC, local) are not
  billing codes and are not case facts.
* Diagnosis codes: ICD-10-CM (``http://hl7.org/fhir/sid/icd-10-cm``) codings of ``Condition.code`` and of
  the order's ``reasonCode``. Conditions whose ``verificationStatus`` is ``refuted`` or
  ``entered-in-error`` (they assert nothing) or whose ``clinicalStatus`` is ``resolved`` or ``inactive``
  (a past problem) are ignored; every other one counts.
* T stage: Observations coded LOINC 21905-5 (primary tumor, clinical: prefix ``c``) or 21899-0 (primary
  tumor, pathologic: prefix ``p``). The value (string or CodeableConcept text/display/code) is parsed
  for an AJCC T category; a value that already carries a prefix (``ypT3``, ``rT2``) keeps it.
* Distant metastasis: LOINC 21907-1 (cM) / 21901-4 (pM); ``M1*`` -> ``metastatic: true``,
  ``M0`` -> ``false``. Secondary-neoplasm ICD-10-CM codes are *not* read as metastasis (C77 is regional
  nodes; C78.5 is a frequent miscode of local recurrence).
* Margins: LOINC 21939-4 (surgical margins cancer involvement) -> ``margin_status``; LOINC 81184-4 /
  81176-0 (distance of tumor from circumferential resection margin, microscopic / macroscopic) and
  81175-2 (distance from closest margin) -> ``margin_distance_mm`` (the smallest distance; mm or cm).
* Recurrence: a primary malignant neoplasm Condition with ``clinicalStatus`` ``recurrence`` ->
  ``recurrent: true``. Absence of evidence never sets ``false``.
* Treatment intent: the mCODE ``procedure-intent`` extension (SNOMED 373808002 curative,
  363676003 palliative) on the order.
* Date of service: ``occurrenceDateTime`` / ``occurrencePeriod.start`` / ``occurrenceTiming.event[0]``
  (``Appointment.start``, ``Claim.item.servicedDate``), else ``authoredOn``; only full dates count.

A fact with no evidence stays absent (unknown). A value that is present but cannot be understood
(an unparseable T category, an unknown margin status, a distance in an unknown unit) raises
:class:`medpolicy.CaseError` naming the field and the resource; nothing is silently dropped. Code
*validity* (ICD-10-CM billable, CPT shape) is checked by :func:`medpolicy.decide`, which raises
``CaseError`` too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medpolicy.errors import CaseError, FieldError

__all__ = [
    "CPT_SYSTEMS",
    "HCPCS_SYSTEMS",
    "ICD10CM_SYSTEMS",
    "LOINC_CLOSEST_MARGIN_DISTANCE",
    "LOINC_CRM_DISTANCE",
    "LOINC_MARGIN_STATUS",
    "LOINC_M_CLINICAL",
    "LOINC_M_PATHOLOGIC",
    "LOINC_SYSTEM",
    "LOINC_T_CLINICAL",
    "LOINC_T_PATHOLOGIC",
    "ORDER_RESOURCE_TYPES",
    "ExtractedCase",
    "coverage_reference",
    "coverage_routing",
    "extract_case",
    "flatten_resources",
    "order_codes",
    "order_date",
    "patient_facts",
    "reference_of",
]

CPT_SYSTEMS = frozenset({"http://www.ama-assn.org/go/cpt", "urn:oid:2.16.840.1.113883.6.12"})
HCPCS_SYSTEMS = frozenset(
    {
        "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.285",
        "https://bluebutton.cms.gov/resources/codesystem/hcpcs",
    }
)
ICD10CM_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10-cm", "urn:oid:2.16.840.1.113883.6.90"})
LOINC_SYSTEM = "http://loinc.org"
SNOMED_SYSTEM = "http://snomed.info/sct"

LOINC_T_CLINICAL = "21905-5"  # Primary tumor.clinical [Class] Cancer
LOINC_T_PATHOLOGIC = "21899-0"  # Primary tumor.pathology [Class] Cancer
LOINC_M_CLINICAL = "21907-1"  # Distant metastases.clinical [Class] Cancer
LOINC_M_PATHOLOGIC = "21901-4"  # Distant metastases.pathology [Class] Cancer
LOINC_MARGIN_STATUS = "21939-4"  # Surgical margins cancer involvement (NAACCR)
LOINC_CRM_DISTANCE = frozenset({"81184-4", "81176-0"})  # tumor to circumferential resection margin
LOINC_CLOSEST_MARGIN_DISTANCE = "81175-2"  # tumor to closest margin
_DISTANCE_CODES = LOINC_CRM_DISTANCE | {LOINC_CLOSEST_MARGIN_DISTANCE}

MCODE_PROCEDURE_INTENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-procedure-intent"
BILLING_OPTIONS_EXT = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"
_INTENT_CODES = {"373808002": "curative", "363676003": "palliative"}

ORDER_RESOURCE_TYPES = frozenset(
    {
        "ServiceRequest",
        "DeviceRequest",
        "MedicationRequest",
        "NutritionOrder",
        "CommunicationRequest",
        "VisionPrescription",
        "Appointment",
        "Encounter",
        "Claim",
    }
)

_IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
_IGNORED_CLINICAL = frozenset(
    {"resolved", "inactive"}
)  # past problems; active, recurrence, relapse, remission count
_IGNORED_OBS_STATUS = frozenset({"entered-in-error", "cancelled"})
_FULL_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")
# T category, alone or inside a TNM string ("pT3N1M0"); a lowercase letter or digit may not follow
_T_CATEGORY = re.compile(r"(?<![A-Za-z])(yc|yp|c|p|r|a)?T(X|x|0|is|IS|Is|[1-4][a-d]?)(?![a-z0-9])")
_M_CATEGORY = re.compile(r"(?<![A-Za-z])(yc|yp|c|p|r|a)?M(0|1[a-d]?|X|x)(?![a-z0-9])")
_R_CLASS = re.compile(r"(?<![A-Za-z0-9])R([012])(?![0-9])")

# margin value vocabulary (lower-cased text, display or code) -> medpolicy margin_status value
_MARGIN_WORDS: tuple[tuple[str, str], ...] = (
    ("gross residual", "gross_residual"),
    ("gross_residual", "gross_residual"),
    ("macroscopic", "gross_residual"),
    ("no tumor at", "negative"),
    ("uninvolved", "negative"),
    ("not involved", "negative"),
    ("negative", "negative"),
    ("free", "negative"),
    ("clear", "negative"),
    ("close", "close"),
    ("involved", "positive"),
    ("positive", "positive"),
)


@dataclass(frozen=True)
class ExtractedCase:
    """A raw case for :func:`medpolicy.decide` and the provenance of each fact.

    Attributes:
        case: raw case mapping (keys of docs/architecture.md "Case facts"); unknown facts are absent.
        sources: fact name -> the FHIR references (``"Condition/123"``) the fact was read from, in order.
        order: reference of the order the case was built for (``"ServiceRequest/1357"``), or ``None``.
        notes: human-readable notes about skipped resources (never contain case values).
    """

    case: dict[str, Any]
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    order: str | None = None
    notes: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------------------- helpers


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

    def walk(item: Any) -> None:
        if not isinstance(item, Mapping):
            return
        rtype = item.get("resourceType")
        if rtype == "Bundle":
            for entry in item.get("entry") or []:
                if isinstance(entry, Mapping):
                    walk(entry.get("resource"))
            return
        if rtype == "OperationOutcome" or not isinstance(rtype, str):
            return
        out.append(dict(item))

    for item in items:
        walk(item)
    return out


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


# ----------------------------------------------------------------------------------------------- orders


def _billing_concepts(resource: Mapping[str, Any]) -> list[Any]:
    """CodeableConcepts of an order that may carry billing codes."""
    rtype = resource.get("resourceType")
    concepts: list[Any] = []
    if rtype in {"ServiceRequest", "CommunicationRequest", "Encounter"}:
        concepts.append(resource.get("code"))
        concepts.extend(resource.get("type") or [])
    elif rtype == "DeviceRequest":
        concepts.append(resource.get("codeCodeableConcept"))
    elif rtype == "MedicationRequest":
        concepts.append(resource.get("medicationCodeableConcept"))
    elif rtype == "Appointment":
        concepts.extend(resource.get("serviceType") or [])
        concepts.append(resource.get("appointmentType"))
    elif rtype == "Claim":
        concepts.extend(
            item.get("productOrService") for item in resource.get("item") or [] if isinstance(item, Mapping)
        )
    more: list[Any] = []
    for concept in concepts:
        if isinstance(concept, Mapping):
            for ext in concept.get("extension") or []:
                if isinstance(ext, Mapping) and ext.get("url") == BILLING_OPTIONS_EXT:
                    more.append(ext.get("valueCodeableConcept"))
    return concepts + more


def order_codes(order: Mapping[str, Any]) -> list[str]:
    """CPT and HCPCS Level II codes an order asks for (its code, and CRD billing-option alternatives).

    Order of first appearance, without duplicates. Codes of other systems are not billing codes.
    """
    codes: list[str] = []
    for concept in _billing_concepts(order):
        codes.extend(_codes_in(concept, CPT_SYSTEMS | HCPCS_SYSTEMS))
    return _dedupe(codes)


def order_date(order: Mapping[str, Any]) -> str | None:
    """Planned date of service of an order as ``YYYY-MM-DD``, or ``None`` when it has no full date.

    ServiceRequest-like orders: ``occurrenceDateTime``, ``occurrencePeriod.start``,
    ``occurrenceTiming.event[0]``, then ``authoredOn``. Appointment: ``start``, then ``requestedPeriod``.
    Encounter: ``period.start``. Claim: first ``item.servicedDate`` / ``servicedPeriod.start``, then
    ``billablePeriod.start``. Partial dates (``2026`` or ``2026-05``) do not count.
    """
    candidates: list[Any] = []
    period = order.get("occurrencePeriod")
    timing = order.get("occurrenceTiming")
    candidates.append(order.get("occurrenceDateTime"))
    if isinstance(period, Mapping):
        candidates.append(period.get("start"))
    if isinstance(timing, Mapping) and timing.get("event"):
        candidates.append((timing.get("event") or [None])[0])
    candidates.append(order.get("start"))
    for rp in order.get("requestedPeriod") or []:
        if isinstance(rp, Mapping):
            candidates.append(rp.get("start"))
    if isinstance(order.get("period"), Mapping):
        candidates.append(order["period"].get("start"))
    for item in order.get("item") or []:
        if isinstance(item, Mapping):
            candidates.append(item.get("servicedDate"))
            if isinstance(item.get("servicedPeriod"), Mapping):
                candidates.append(item["servicedPeriod"].get("start"))
    if isinstance(order.get("billablePeriod"), Mapping):
        candidates.append(order["billablePeriod"].get("start"))
    candidates.append(order.get("authoredOn"))
    candidates.append(order.get("dateTime"))  # NutritionOrder
    for value in candidates:
        d = _full_date(value)
        if d:
            return d
    return None


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


# ----------------------------------------------------------------------------------------------- values


def _value_texts(obs: Mapping[str, Any]) -> list[str]:
    """Every human/machine text of an Observation's value: string, CodeableConcept text/display/code."""
    texts: list[str] = []
    if isinstance(obs.get("valueString"), str):
        texts.append(obs["valueString"])
    concept = obs.get("valueCodeableConcept")
    if isinstance(concept, Mapping):
        if isinstance(concept.get("text"), str):
            texts.append(concept["text"])
        for coding in _codings(concept):
            for key in ("display", "code"):
                if isinstance(coding.get(key), str):
                    texts.append(coding[key])
    return texts


def _has_value(obs: Mapping[str, Any]) -> bool:
    return any(k.startswith("value") for k in obs)


def _parse_t(texts: Sequence[str], default_prefix: str) -> str | None:
    for text in texts:
        m = _T_CATEGORY.search(text.strip())
        if m:
            prefix = m.group(1) or default_prefix
            cat = m.group(2)
            cat = "is" if cat.lower() == "is" else cat.upper() if cat.lower() == "x" else cat
            return f"{prefix}T{cat}"
    return None


def _parse_m(texts: Sequence[str]) -> bool | None:
    for text in texts:
        m = _M_CATEGORY.search(text.strip())
        if m:
            cat = m.group(2).upper()
            if cat == "X":
                return None
            return cat.startswith("1")
    return None


def _parse_margin(texts: Sequence[str]) -> str | None:
    for text in texts:
        r_class = _R_CLASS.search(text)
        if r_class:
            return f"R{r_class.group(1)}"
        low = text.strip().lower()
        for word, value in _MARGIN_WORDS:
            if word in low:
                return value
    return None


def _distance_mm(obs: Mapping[str, Any]) -> float | None:
    """Distance in mm from a valueQuantity, or ``None`` if the unit is not mm or cm."""
    q = obs.get("valueQuantity")
    if not isinstance(q, Mapping) or not isinstance(q.get("value"), int | float):
        raise ValueError("no numeric valueQuantity")
    unit = str(q.get("code") or q.get("unit") or "mm").strip().lower()
    value = float(q["value"])
    if unit in {"mm", "millimeter", "millimeters", "millimetre", "millimetres"}:
        return value
    if unit in {"cm", "centimeter", "centimeters", "centimetre", "centimetres"}:
        return value * 10.0
    return None


def _intent(resource: Mapping[str, Any]) -> str | None:
    for ext in resource.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == MCODE_PROCEDURE_INTENT:
            for coding in _codings(ext.get("valueCodeableConcept")):
                code = coding.get("code")
                if coding.get("system") == SNOMED_SYSTEM and code in _INTENT_CODES:
                    return _INTENT_CODES[str(code)]
    return None


def _is_primary_malignancy(code: str) -> bool:
    """ICD-10-CM C00-C76 / C80-C96 (primary malignant neoplasms), not C77-C79 (secondary)."""
    m = re.match(r"^C(\d{2})", code)
    if not m:
        return code.startswith("C7A") or code.startswith("C4A")
    n = int(m.group(1))
    return not 77 <= n <= 79


# ----------------------------------------------------------------------------------------------- extract


def extract_case(
    order: Mapping[str, Any] | None,
    resources: Iterable[Mapping[str, Any]],
    *,
    procedure_codes: Sequence[str] | None = None,
    date_of_service: str | None = None,
) -> ExtractedCase:
    """Build the raw case for ``order`` from the patient's ``resources``.

    Args:
        order: the order being decided (ServiceRequest, Appointment, Claim, ...), or ``None`` when the
            caller supplies ``procedure_codes`` itself (e.g. a PAS Claim item).
        resources: supporting resources (already flattened; see :func:`flatten_resources`). Other
            orders in the list are ignored; only Condition, Observation and the order itself are read.
        procedure_codes: overrides the codes read from ``order``.
        date_of_service: overrides the date read from ``order`` (``YYYY-MM-DD``).

    Returns:
        :class:`ExtractedCase` with the case and the provenance of each fact.

    Raises:
        medpolicy.CaseError: a present value could not be understood (field, value and the resource
            reference are named); code validity itself is left to :func:`medpolicy.decide`.
    """
    case: dict[str, Any] = {}
    sources: dict[str, list[str]] = {}
    errors: list[FieldError] = []
    notes: list[str] = []
    order_ref = reference_of(order) if order is not None else None

    def note_source(fact: str, ref: str | None) -> None:
        if ref is not None and ref not in sources.setdefault(fact, []):
            sources[fact].append(ref)

    # procedure codes and date
    if procedure_codes is not None:
        codes = _dedupe(c.strip() for c in procedure_codes if c.strip())
    else:
        codes = order_codes(order) if order is not None else []
    if codes:
        case["procedure_codes"] = codes
        note_source("procedure_codes", order_ref)
    dos = date_of_service or (order_date(order) if order is not None else None)
    if dos:
        case["date_of_service"] = dos
        note_source("date_of_service", order_ref)

    diagnosis: list[str] = []
    if order is not None:
        for concept in order.get("reasonCode") or []:
            found = _codes_in(concept, ICD10CM_SYSTEMS)
            if found:
                diagnosis.extend(found)
                note_source("diagnosis_codes", order_ref)
        for dx in order.get("diagnosis") or []:  # Claim.diagnosis
            if isinstance(dx, Mapping):
                found = _codes_in(dx.get("diagnosisCodeableConcept"), ICD10CM_SYSTEMS)
                if found:
                    diagnosis.extend(found)
                    note_source("diagnosis_codes", order_ref)
        intent = _intent(order)
        if intent:
            case["treatment_intent"] = intent
            note_source("treatment_intent", order_ref)

    t_stages: list[str] = []
    m_values: list[bool] = []
    margin_statuses: list[str] = []
    distances: list[float] = []
    recurrent = False

    for res in resources:
        rtype = res.get("resourceType")
        ref = reference_of(res)
        if rtype == "Condition":
            if _status_code(res.get("verificationStatus")) in _IGNORED_VERIFICATION:
                notes.append(f"{ref} ignored: verificationStatus")
                continue
            if _status_code(res.get("clinicalStatus")) in _IGNORED_CLINICAL:
                notes.append(f"{ref} ignored: clinicalStatus")
                continue
            found = _codes_in(res.get("code"), ICD10CM_SYSTEMS)
            if found:
                diagnosis.extend(found)
                note_source("diagnosis_codes", ref)
                if _status_code(res.get("clinicalStatus")) == "recurrence" and any(
                    _is_primary_malignancy(c) for c in found
                ):
                    recurrent = True
                    note_source("recurrent", ref)
        elif rtype == "Observation":
            if res.get("status") in _IGNORED_OBS_STATUS:
                notes.append(f"{ref} ignored: status")
                continue
            code = res.get("code")
            t_code = _has_code(code, LOINC_SYSTEM, {LOINC_T_CLINICAL, LOINC_T_PATHOLOGIC})
            if t_code and _has_value(res):
                t = _parse_t(_value_texts(res), "c" if t_code == LOINC_T_CLINICAL else "p")
                if t is None:
                    errors.append(_field_error("invalid_t_category", "t_stage", ref, res))
                else:
                    t_stages.append(t)
                    note_source("t_stage", ref)
                continue
            if _has_code(code, LOINC_SYSTEM, {LOINC_M_CLINICAL, LOINC_M_PATHOLOGIC}) and _has_value(res):
                texts = _value_texts(res)
                mval = _parse_m(texts)
                if mval is None and not any(re.search(r"M[Xx]", t) for t in texts):
                    errors.append(_field_error("invalid_value", "metastatic", ref, res))
                elif mval is not None:
                    m_values.append(mval)
                    note_source("metastatic", ref)
                continue
            if _has_code(code, LOINC_SYSTEM, LOINC_MARGIN_STATUS) and _has_value(res):
                status = _parse_margin(_value_texts(res))
                if status is None:
                    errors.append(_field_error("invalid_value", "margin_status", ref, res))
                else:
                    margin_statuses.append(status)
                    note_source("margin_status", ref)
                continue
            if _has_code(code, LOINC_SYSTEM, _DISTANCE_CODES) and _has_value(res):
                try:
                    mm = _distance_mm(res)
                except ValueError:
                    errors.append(_field_error("invalid_type", "margin_distance_mm", ref, res))
                    continue
                if mm is None:
                    errors.append(_field_error("invalid_value", "margin_distance_mm", ref, res))
                else:
                    distances.append(mm)
                    note_source("margin_distance_mm", ref)
                continue
        elif (
            rtype == "Procedure"
            and "treatment_intent" not in case
            and res.get("status")
            in {
                "preparation",
                "in-progress",
            }
        ):
            intent = _intent(res)
            if intent:
                case["treatment_intent"] = intent
                note_source("treatment_intent", ref)

    if errors:
        raise _case_error(errors)

    if diagnosis:
        case["diagnosis_codes"] = _dedupe(diagnosis)
    if t_stages:
        uniq = _dedupe(t_stages)
        case["t_stage"] = uniq[0] if len(uniq) == 1 else uniq
    if m_values:
        case["metastatic"] = any(m_values)
    if margin_statuses:
        case["margin_status"] = _worst_margin(margin_statuses)
    if distances:
        case["margin_distance_mm"] = min(distances)
    if recurrent:
        case["recurrent"] = True
    return ExtractedCase(
        case=case,
        sources={k: tuple(v) for k, v in sources.items()},
        order=order_ref,
        notes=tuple(notes),
    )


_MARGIN_RANK = {"negative": 0, "R0": 0, "close": 1, "positive": 2, "R1": 2, "gross_residual": 3, "R2": 3}


def _worst_margin(values: Sequence[str]) -> str:
    """The most involved of several margin statuses (a resection is judged by its worst margin)."""
    return max(values, key=lambda v: _MARGIN_RANK.get(v, 0))


def _field_error(code: str, fact: str, ref: str, obs: Mapping[str, Any]) -> FieldError:
    texts = _value_texts(obs)
    value: Any = texts[0] if texts else obs.get("valueQuantity")
    return FieldError(
        code=code,
        field=fact,
        value=value,
        message=f"{ref}: the value of this Observation cannot be read as {fact}",
    )


def _case_error(errors: list[FieldError]) -> CaseError:
    return CaseError(errors)
