"""The raw case of an order built from the patient's resources (:func:`extract_case`), with the provenance
of every fact, and the :class:`medpolicy.CaseError` for values that cannot be understood."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medpolicy.errors import CaseError, FieldError
from medpolicy.interop.fhir_case.orders import order_codes, order_date
from medpolicy.interop.fhir_case.resources import _codes_in, _dedupe, _has_code, _status_code, reference_of
from medpolicy.interop.fhir_case.values import (
    _distance_mm,
    _has_value,
    _intent,
    _is_primary_malignancy,
    _parse_m,
    _parse_margin,
    _parse_t,
    _value_texts,
    _worst_margin,
)
from medpolicy.interop.fhir_case.vocabulary import (
    _DISTANCE_CODES,
    ICD10CM_SYSTEMS,
    LOINC_M_CLINICAL,
    LOINC_M_PATHOLOGIC,
    LOINC_MARGIN_STATUS,
    LOINC_SYSTEM,
    LOINC_T_CLINICAL,
    LOINC_T_PATHOLOGIC,
)

_IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
_IGNORED_CLINICAL = frozenset(
    {"resolved", "inactive"}
)  # past problems; active, recurrence, relapse, remission count
_IGNORED_OBS_STATUS = frozenset({"entered-in-error", "cancelled"})


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
