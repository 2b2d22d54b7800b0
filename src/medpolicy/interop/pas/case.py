"""A PAS request as a medpolicy case (:func:`claim_case`), and which of its items a policy governs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medpolicy import CaseError, FieldError, NoPolicyApplies, Policy, PolicySet
from medpolicy.interop import dtr, fhir_case
from medpolicy.interop.dtr.facts import all_facts
from medpolicy.interop.pas.profiles import _ICD10CM, CASE_FACT_SYSTEM
from medpolicy.interop.pas.request import PasRequest, _codings


def _policies(policies: PolicySet) -> list[Policy]:
    return list(policies)


def _supporting_resources(request: PasRequest) -> list[dict[str, Any]]:
    return fhir_case.flatten_resources(request.resources)


def _fact_value(fact: Any, info: Mapping[str, Any]) -> Any:
    for key, value in info.items():
        if not key.startswith("value") or key == "valueReference":
            continue
        if key == "valueCodeableConcept":
            codes = [c.get("code") for c in _codings(value) if c.get("code")]
            return (
                codes
                if getattr(fact, "multiple", False) or fact.type == "codes"
                else (codes[0] if codes else None)
            )
        if key == "valueQuantity" and isinstance(value, Mapping):
            return value.get("value")
        if key == "valueString" and fact.type == "codes" and isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()]
        return value
    return None


def claim_case(request: PasRequest, policy: Policy | None, policies: PolicySet) -> dict[str, Any]:
    """The raw case of the whole Claim under ``policy`` (keys limited to the policy's facts).

    Precedence, lowest first: Claim and supporting resources (fhir_case), a DTR QuestionnaireResponse
    in the Bundle, ``supportingInfo`` coded with :data:`CASE_FACT_SYSTEM`.
    """
    codes = [c for item in request.items for c in item.codes]
    dos = next((i.date_of_service for i in request.items if i.date_of_service), None)
    resources = _supporting_resources(request)
    extracted = fhir_case.extract_case(
        request.claim, resources, procedure_codes=list(dict.fromkeys(codes)), date_of_service=dos
    )
    case = dict(extracted.case)
    diagnoses = list(case.get("diagnosis_codes") or [])
    for dx in request.claim.get("diagnosis") or []:
        if isinstance(dx, Mapping):
            for coding in _codings(dx.get("diagnosisCodeableConcept")):
                if coding.get("system") in _ICD10CM and isinstance(coding.get("code"), str):
                    diagnoses.append(coding["code"])
            ref = dx.get("diagnosisReference")
            if isinstance(ref, Mapping):
                condition = request.resolve(ref.get("reference"))
                if condition is not None:
                    for coding in _codings(condition.get("code")):
                        if coding.get("system") in _ICD10CM and isinstance(coding.get("code"), str):
                            diagnoses.append(coding["code"])
    if diagnoses:
        case["diagnosis_codes"] = list(dict.fromkeys(diagnoses))
    if "procedure_codes" not in case:
        case["procedure_codes"] = []
    facts = {f.name: f for f in policy.facts} if policy is not None else all_facts(policies)
    for res in resources:
        if res.get("resourceType") == "QuestionnaireResponse":
            answers, _ = dtr.questionnaire_response_to_case(res, policy, known_facts=facts)
            for key, value in answers.items():
                if key in ("procedure_codes", "diagnosis_codes"):
                    continue  # the Claim names what is requested and why
                case[key] = value
    errors: list[FieldError] = []
    for i, info in enumerate(request.claim.get("supportingInfo") or []):
        if not isinstance(info, Mapping):
            continue
        for coding in _codings(info.get("category")):
            if coding.get("system") != CASE_FACT_SYSTEM:
                continue
            name = str(coding.get("code"))
            fact = facts.get(name)
            if fact is None:
                errors.append(
                    FieldError(
                        "unknown_field",
                        name,
                        name,
                        f"Claim.supportingInfo[{i}]: no policy fact is called {name!r}",
                    )
                )
                continue
            case[name] = _fact_value(fact, info)
    if errors:
        raise CaseError(errors)
    if policy is not None:
        # Facts of the Patient resource the policy declares (the date of birth), lowest precedence.
        case = {**fhir_case.patient_facts(resources), **case}
        case = {k: v for k, v in case.items() if k in facts}
    case.update(fhir_case.coverage_routing(resources))  # the member's line of business and group
    return case


def governed_items(request: PasRequest, policies: PolicySet) -> tuple[Policy | None, dict[int, bool]]:
    """The policy that governs the Claim (that of its first governed item; ``None``: no item is
    governed) and, for each item by its index in ``Claim.item``, whether that policy governs it."""
    chosen: Policy | None = None
    routing = fhir_case.coverage_routing(_supporting_resources(request))
    for item in request.items:
        # The plan's routing: the member's Coverage (line of business, group) picks among the policies
        # governing the item; an item no policy in force governs is not governed.
        try:
            chosen = policies.for_order(item.codes, item.date_of_service, **routing)
        except NoPolicyApplies:
            chosen = None
        if chosen is not None:
            break
    governed = {
        index: chosen is not None and chosen.governs_order(item.codes, item.date_of_service)
        for index, item in enumerate(request.items)
    }
    return chosen, governed
