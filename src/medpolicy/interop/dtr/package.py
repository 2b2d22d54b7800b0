"""DTR ``Questionnaire/$questionnaire-package``: a PackageBundle per policy governing an order
(Questionnaire, then a draft QuestionnaireResponse pre-populated from the order)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from medpolicy import CaseError, Policy, PolicySet, parse_case
from medpolicy.errors import NoPolicyApplies
from medpolicy.interop import fhir_case
from medpolicy.interop.dtr.canonical import (
    DTR_ADAPT,
    DTR_PACKAGE_BUNDLE,
    DTR_PACKAGE_OUTPUT,
    DTR_QR_PROFILE,
    INFORMATION_ORIGIN_EXT,
    QR_CONTEXT_EXT,
    SDC_QR_ADAPT,
    adaptive_questionnaire_url,
    fact_code_system,
    policy_for_questionnaire,
    questionnaire_url,
)
from medpolicy.interop.dtr.facts import _fact_options, _facts_by_name
from medpolicy.interop.dtr.questionnaire import (
    build_adaptive_questionnaire,
    build_questionnaire,
    questionnaire_date,
)
from medpolicy.interop.dtr.validation import (
    FhirInputError,
    Problem,
    _invalid,
    _params_by_name,
    trim_codes,
    validate_fhir,
)

#: Order resource types DTR allows in $questionnaire-package (dtr-qpackage-input-parameters).
PACKAGE_ORDER_TYPES = frozenset(
    {
        "Appointment",
        "Encounter",
        "CommunicationRequest",
        "DeviceRequest",
        "ImmunizationRecommendation",
        "MedicationRequest",
        "NutritionOrder",
        "ServiceRequest",
        "SupplyRequest",
        "VisionPrescription",
        "Claim",
    }
)


@dataclass(frozen=True)
class PackageResult:
    """Output of :func:`questionnaire_package`: the Parameters to answer and the policies packaged."""

    parameters: dict[str, Any]
    policies: tuple[str, ...]
    warnings: tuple[str, ...]


def questionnaire_package(params: Any, policies: PolicySet, *, as_of: date | None = None) -> PackageResult:
    """DTR ``Questionnaire/$questionnaire-package``.

    Input: Parameters (``dtr-qpackage-input-parameters``): ``coverage`` 1..*, and at least one of
    ``order``, ``questionnaire`` (canonical), ``context``; ``referenced`` resources help pre-populate.
    Output: Parameters with a ``PackageBundle`` per questionnaire (static or adaptive, as requested or
    as the governed orders need) and an ``outcome`` OperationOutcome carrying warnings (orders no
    policy governs, canonicals not served, an unknown ``context``).
    """
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    params = trim_codes(params)
    validate_fhir(params, expected="Parameters", path="Parameters")
    by = _params_by_name(params)
    problems: list[Problem] = []
    coverages = by.get("coverage", [])
    if not coverages:
        problems.append(
            Problem(
                "missing_parameter",
                "Parameters.parameter.where(name='coverage')",
                "a coverage parameter (the member's Coverage) is required",
            )
        )
    for i, p in coverages:
        res = p.get("resource")
        if not isinstance(res, Mapping) or res.get("resourceType") != "Coverage":
            problems.append(
                Problem(
                    "wrong_resource_type",
                    f"Parameters.parameter[{i}].resource",
                    "the coverage parameter must carry a Coverage resource",
                )
            )
    orders = by.get("order", [])
    for i, p in orders:
        res = p.get("resource")
        if not isinstance(res, Mapping) or res.get("resourceType") not in PACKAGE_ORDER_TYPES:
            rtype = res.get("resourceType") if isinstance(res, Mapping) else None
            problems.append(
                Problem(
                    "wrong_resource_type",
                    f"Parameters.parameter[{i}].resource",
                    f"an order must be one of {sorted(PACKAGE_ORDER_TYPES)}",
                    rtype,
                )
            )
    canonicals = [(i, p.get("valueCanonical")) for i, p in by.get("questionnaire", [])]
    for i, value in canonicals:
        if not isinstance(value, str) or not value:
            problems.append(
                Problem(
                    "invalid_parameter",
                    f"Parameters.parameter[{i}].valueCanonical",
                    "a questionnaire parameter carries valueCanonical",
                )
            )
    contexts = by.get("context", [])
    if not (orders or canonicals or contexts):
        problems.append(
            Problem(
                "missing_parameter",
                "Parameters.parameter",
                "dtr-1: at least one order, questionnaire or context parameter is required",
            )
        )
    if problems:
        message = problems[0].message if len(problems) == 1 else f"{len(problems)} problems in the request"
        raise FhirInputError(
            422, problems[0].code if len(problems) == 1 else "invalid_parameters", message, problems
        )

    when = as_of or datetime.now(UTC).date()
    warnings: list[str] = []
    wanted: dict[str, tuple[Policy, bool]] = {}
    for _i, canonical in canonicals:
        assert isinstance(canonical, str)
        match = policy_for_questionnaire(canonical, policies)
        if match is None:
            warnings.append(f"questionnaire {canonical} is not served by this payer")
        else:
            key = (adaptive_questionnaire_url if match[1] else questionnaire_url)(match[0])
            wanted[key] = match
    referenced = fhir_case.flatten_resources(
        p.get("resource") for _i, p in by.get("referenced", []) if isinstance(p.get("resource"), Mapping)
    )
    order_resources = [dict(p["resource"]) for _i, p in orders]
    # The plan's routing: the member's Coverage (line of business, group) picks among the policies.
    routing = fhir_case.coverage_routing([dict(c[1]["resource"]) for c in coverages[:1]])
    for order in order_resources:
        codes = fhir_case.order_codes(order)
        dos = fhir_case.order_date(order)
        try:
            routed = policies.for_order(codes, dos, **routing)
        except NoPolicyApplies as exc:
            warnings.append(f"{fhir_case.reference_of(order)}: {exc}")
            continue
        governing = [routed] if routed is not None else []
        if not governing:
            label = fhir_case.reference_of(order)
            warnings.append(
                f"{label}: no medical policy of this payer governs "
                + (", ".join(codes) if codes else "this order (it names no CPT/HCPCS code)")
                + "; no documentation is required"
            )
        for pol in governing:
            if not any(m[0].id == pol.id for m in wanted.values()):
                wanted[questionnaire_url(pol)] = (pol, False)
    for _i, p in contexts:
        warnings.append(
            f"context {p.get('valueString')!r} is not known to this payer; orders decide the questionnaires"
        )

    coverage = dict(coverages[0][1]["resource"])
    bundles: list[dict[str, Any]] = []
    since = _changed_since(by)
    for policy, adaptive in wanted.values():
        if since is not None and questionnaire_date(policy, when) < since:
            continue  # unchanged since the client's copy
        questionnaire = (
            build_adaptive_questionnaire(policy, as_of=when)
            if adaptive
            else build_questionnaire(policy, policies, as_of=when)
        )
        governed_orders = [
            o
            for o in order_resources
            if policy.governs_order(fhir_case.order_codes(o), fhir_case.order_date(o))
        ]
        draft = _draft_response(
            questionnaire, policy, coverage, governed_orders, referenced, adaptive=adaptive
        )
        bundles.append(
            {
                "resourceType": "Bundle",
                "meta": {"profile": [DTR_PACKAGE_BUNDLE]},
                "type": "collection",
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "entry": [
                    {"fullUrl": f"{questionnaire['url']}", "resource": questionnaire},
                    {"fullUrl": f"urn:uuid:{_uuid()}", "resource": draft},
                ],
            }
        )
    out_params: list[dict[str, Any]] = [{"name": "PackageBundle", "resource": b} for b in bundles]
    if warnings:
        out_params.append(
            {
                "name": "outcome",
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-found" if "not served" in w else "informational",
                            "diagnostics": w,
                        }
                        for w in warnings
                    ],
                },
            }
        )
    result: dict[str, Any] = {"resourceType": "Parameters", "meta": {"profile": [DTR_PACKAGE_OUTPUT]}}
    if out_params:
        result["parameter"] = out_params
    return PackageResult(result, tuple(p.id for p, _ in wanted.values()), tuple(warnings))


def _changed_since(by: Mapping[str, list[tuple[int, Mapping[str, Any]]]]) -> date | None:
    for i, p in by.get("changedsince", []):
        value = p.get("valueInstant") or p.get("valueDateTime")
        if isinstance(value, str) and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        raise _invalid(
            "changedsince carries an instant (valueInstant)",
            f"Parameters.parameter[{i}]",
            code="invalid_parameter",
            value=value if isinstance(value, str) else None,
        )
    return None


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _draft_response(
    questionnaire: Mapping[str, Any],
    policy: Policy,
    coverage: Mapping[str, Any],
    orders: Sequence[Mapping[str, Any]],
    referenced: Sequence[Mapping[str, Any]],
    *,
    adaptive: bool,
) -> dict[str, Any]:
    """Initial draft QuestionnaireResponse for the package: context extensions for the Coverage and the
    orders; answers the payer can take from the orders, marked ``information-origin`` ``auto``."""
    canonical = questionnaire["url"] + (
        f"|{questionnaire['version']}" if questionnaire.get("version") else ""
    )
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "meta": {"profile": [SDC_QR_ADAPT if adaptive else DTR_QR_PROFILE]},
        "status": "in-progress",
        "authored": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    contexts = [coverage, *orders]
    qr["extension"] = [
        {
            "url": QR_CONTEXT_EXT,
            "valueReference": {"reference": fhir_case.reference_of(r), "type": r.get("resourceType")},
        }
        for r in contexts
        if r.get("id")
    ] or []
    if not qr["extension"]:
        del qr["extension"]
    subject = None
    for r in [*orders, coverage]:
        ref = r.get("subject") or r.get("patient") or r.get("beneficiary")
        if isinstance(ref, Mapping) and ref.get("reference"):
            subject = {"reference": ref["reference"]}
            break
    if subject:
        qr["subject"] = subject
    if adaptive:
        contained = dict(questionnaire)
        contained["id"] = "adaptive"
        contained["meta"] = {"profile": [DTR_ADAPT]}
        qr["contained"] = [contained]
        qr["questionnaire"] = "#adaptive"
        return qr
    qr["questionnaire"] = canonical
    try:
        extracted = fhir_case.extract_case(orders[0] if orders else None, referenced)
    except CaseError:
        return qr
    known = {k: v for k, v in extracted.case.items() if k in _facts_by_name(policy)}
    try:
        parsed = parse_case(known, policy)
    except CaseError:
        parsed = None
    if parsed is not None:  # derived facts (the tumour site from the diagnoses...) are answered too
        for fact in policy.facts:
            value = parsed.get(fact.name)
            if fact.derive is not None and fact.name not in known and isinstance(value, str | bool):
                if fact.type == "enum" and value not in (fact.values or ()):
                    continue  # e.g. an ambiguous site: left for the clinician
                known[fact.name] = value
    items: list[dict[str, Any]] = []
    asked = {str(i.get("linkId")): i for i in questionnaire.get("item") or []}
    for fact in policy.facts:
        if fact.name not in asked or fact.name not in known:
            continue
        value = known[fact.name]
        values = value if isinstance(value, list) else [value]
        answers = [_answer_for(fact, v) for v in values]
        items.append(
            {"linkId": fact.name, "text": asked[fact.name].get("text"), "answer": [a for a in answers if a]}
        )
    items = [i for i in items if i["answer"]]
    if items:
        qr["item"] = items
    return qr


def _answer_for(fact: Any, value: Any) -> dict[str, Any] | None:
    origin = {"url": INFORMATION_ORIGIN_EXT, "extension": [{"url": "source", "valueCode": "auto"}]}
    answer: dict[str, Any]
    if fact.type == "boolean" and isinstance(value, bool):
        answer = {"valueBoolean": value}
    elif fact.type == "number" and isinstance(value, int | float):
        answer = {"valueDecimal": value}
    elif fact.type == "date" and isinstance(value, str):
        answer = {"valueDate": value[:10]}
    elif fact.type == "enum" and isinstance(value, str):
        labels = dict(_fact_options(fact))
        answer = {
            "valueCoding": {
                "system": fact_code_system(fact.name),
                "code": value,
                "display": labels.get(value, value),
            }
        }
    elif isinstance(value, str):
        answer = {"valueString": value}
    else:
        return None
    answer["extension"] = [origin]
    return answer
