"""Da Vinci PAS (Prior Authorization Support, STU 2.0.1 and 2.2.1) <-> medpolicy (pure, no web framework).

* :func:`parse_request_bundle` validates a PAS request Bundle (``Claim/$submit``) or inquiry Bundle
  (``Claim/$inquire``) and reads it: the Claim, its identifiers, items (CPT/HCPCS codes, serviced
  date, trace numbers), diagnoses, urgency, and the supporting resources in the Bundle.
* :func:`claim_case` builds the raw case: procedure codes of every item, ICD-10-CM diagnoses
  (``Claim.diagnosis`` and Conditions), the date of service (``item.serviced[x]``, else the requested
  ServiceRequest), and clinical facts from supporting resources (Conditions and Observations through
  :mod:`medpolicy.interop.fhir_case`, a DTR QuestionnaireResponse through
  :mod:`medpolicy.interop.dtr`, or ``supportingInfo`` coded with :data:`CASE_FACT_SYSTEM`).
* :func:`response_bundle` answers with a PAS response Bundle: a ClaimResponse whose items carry the
  ``reviewAction`` extension with an X12 306 code, ``processNote`` with the reason, and the facts
  still missing; one more ``processNote`` per reviewer's correction of the request's facts (old value,
  new value, who, when, why), in words and in the :data:`FACT_CORRECTION_EXT` extension.

Review actions (X12 306), per item:

=========================================  ====  ===================================================
state of the prior-authorization request   code  meaning here
=========================================  ====  ===================================================
approved (engine or reviewer)              A1    certified in total
denied (only ever by a physician)          A3    not certified; the physician's reason is noted
information_needed                         A4    pended: the missing facts are listed
pending_physician_review / received        A4    pended: a physician must review the engine's
                                                 recommendation (investigational / not med. nec.)
withdrawn                                  C     cancelled
item no policy governs (request open)      NA    no action required: no medical policy of this
                                                 payer asks for prior authorization of the item
=========================================  ====  ===================================================

Validated with ``fhir.resources.R4B`` (no R4 package exists in fhir.resources 8; R4B is the nearest).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from medpolicy import CaseError, FieldError, NoPolicyApplies, Policy, PolicySet
from medpolicy.interop import dtr, fhir_case
from medpolicy.interop.dtr import CANONICAL_BASE, FhirInputError, Problem
from medpolicy.interop.dtr.facts import all_facts

__all__ = [
    "CASE_FACT_SYSTEM",
    "DENIAL_REASON_SYSTEM",
    "FACT_CORRECTION_EXT",
    "MISSING_FACT_EXT",
    "REVIEW_ACTION_CODE_EXT",
    "REVIEW_ACTION_EXT",
    "X12_306",
    "FactCorrection",
    "ItemAction",
    "PasItem",
    "PasRequest",
    "RequestState",
    "claim_case",
    "correction_extension",
    "correction_text",
    "governed_items",
    "idempotency_key",
    "item_actions",
    "parse_request_bundle",
    "response_bundle",
    "review_action_extension",
]

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition"
REVIEW_ACTION_EXT = f"{PAS}/extension-reviewAction"
REVIEW_ACTION_CODE_EXT = f"{PAS}/extension-reviewActionCode"
ITEM_TRACE_NUMBER_EXT = f"{PAS}/extension-itemTraceNumber"
LEVEL_OF_SERVICE_EXT = f"{PAS}/extension-levelOfServiceCode"
REQUESTED_SERVICE_EXT = f"{PAS}/extension-requestedService"
REVIEWER_EXT = f"{PAS}/extension-claimResponseReviewer"
PAS_REQUEST_BUNDLE = f"{PAS}/profile-pas-request-bundle"
PAS_RESPONSE_BUNDLE = f"{PAS}/profile-pas-response-bundle"
PAS_INQUIRY_RESPONSE_BUNDLE = f"{PAS}/profile-pas-inquiry-response-bundle"
PAS_CLAIM_RESPONSE = f"{PAS}/profile-claimresponse"
PAS_INQUIRY_RESPONSE = f"{PAS}/profile-claiminquiryresponse"
X12_306 = "https://codesystem.x12.org/005010/306"
ADJUDICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication"
#: ``Claim.supportingInfo.category`` system whose codes are medpolicy fact names (value[x] = the fact).
CASE_FACT_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/case-fact"
#: ``reviewAction.reasonCode`` system of a physician's structured denial reason (see web/denials.py)
DENIAL_REASON_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/denial-reason"
#: Extension on ``ClaimResponse.item``: one per fact still needed (valueString = fact name).
MISSING_FACT_EXT = f"{CANONICAL_BASE}/StructureDefinition/missing-fact"
#: Extension on a ``ClaimResponse.processNote`` stating one reviewer's correction of a request's fact:
#: ``fact`` (code), ``from`` / ``to`` (the values in words; absent: no value), ``derived``, ``author``
#: (the registered reviewer), ``role``, ``date``, ``reason``. The note's text says the same in words.
FACT_CORRECTION_EXT = f"{CANONICAL_BASE}/StructureDefinition/fact-correction"

REVIEW_ACTION_DISPLAY = {
    "A1": "Certified in total",
    "A3": "Not Certified",
    "A4": "Pended",
    "C": "Cancelled",
    "NA": "No Action Required",
}
_ICD10CM = fhir_case.ICD10CM_SYSTEMS | {"http://terminology.hl7.org/CodeSystem/icd10CM"}
_BILLING = fhir_case.CPT_SYSTEMS | fhir_case.HCPCS_SYSTEMS
_EXPEDITED_PRIORITY = frozenset({"stat", "urgent"})
_EXPEDITED_LEVEL = frozenset({"U", "03"})  # X12 1338: U urgent, 03 emergency (E elective is standard)


# ------------------------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class PasItem:
    sequence: int
    codes: tuple[str, ...]
    other_codes: tuple[str, ...]
    label: str
    date_of_service: str | None
    trace_numbers: tuple[dict[str, Any], ...]
    diagnosis_sequences: tuple[int, ...]


@dataclass(frozen=True)
class PasRequest:
    """A PAS request (or inquiry) Bundle, read."""

    bundle: dict[str, Any]
    claim: dict[str, Any]
    claim_full_url: str | None
    bundle_identifier: dict[str, Any] | None
    claim_identifiers: tuple[dict[str, Any], ...]
    items: tuple[PasItem, ...]
    urgency: str
    patient_reference: str | None
    resources: tuple[dict[str, Any], ...] = field(default=())

    def resolve(self, reference: str | None) -> dict[str, Any] | None:
        return _resolve(self.bundle, reference)


def _resolve(bundle: Mapping[str, Any], reference: str | None) -> dict[str, Any] | None:
    """The Bundle entry a reference points at: by fullUrl, or by ``Type/id`` (a fullUrl ending so)."""
    if not reference:
        return None
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, Mapping):
            continue
        res = entry.get("resource")
        if not isinstance(res, Mapping):
            continue
        full = str(entry.get("fullUrl") or "")
        if full == reference or (full.endswith("/" + reference) and "/" in reference):
            return dict(res)
        if f"{res.get('resourceType')}/{res.get('id')}" == reference:
            return dict(res)
    return None


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]


def _full_date(value: Any) -> str | None:
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        return value[:10]
    return None


def parse_request_bundle(body: Any, *, inquiry: bool = False) -> PasRequest:
    """Validate and read a PAS request Bundle (``inquiry``: an inquiry Bundle).

    A Parameters wrapper (``resource`` parameter) is unwrapped. Raises :class:`FhirInputError`:
    400 for a body that is not a FHIR resource, 422 naming each rule broken (R4 structure; the PAS
    rules: Bundle identifier and timestamp, at least one entry, the Claim first, entries with fullUrl
    and resource, ``Claim.use`` = ``preauthorization``, Claim identifier, at least one item).
    """
    if not isinstance(body, Mapping):
        raise FhirInputError(400, "not_a_resource", "the body must be a FHIR Bundle (a JSON object)")
    if body.get("resourceType") == "Parameters":
        params = [
            p for p in body.get("parameter") or [] if isinstance(p, Mapping) and p.get("name") == "resource"
        ]
        if len(params) != 1 or not isinstance(params[0].get("resource"), Mapping):
            raise FhirInputError(
                422,
                "missing_parameter",
                "a Parameters body must carry exactly one 'resource' parameter (the Bundle)",
                [
                    Problem(
                        "missing_parameter",
                        "Parameters.parameter.where(name='resource')",
                        "exactly one 'resource' parameter is required",
                    )
                ],
            )
        body = params[0]["resource"]
    bundle = dtr.trim_codes(body)
    dtr.validate_fhir(bundle, expected="Bundle", path="Bundle")
    kind = "inquiry" if inquiry else "request"
    problems: list[Problem] = []
    if not isinstance(bundle.get("identifier"), Mapping) or not bundle["identifier"].get("value"):
        problems.append(
            Problem(
                "missing_element",
                "Bundle.identifier",
                f"a PAS {kind} Bundle needs an identifier (the submitter's transaction id)",
            )
        )
    if not bundle.get("timestamp"):
        problems.append(
            Problem("missing_element", "Bundle.timestamp", f"a PAS {kind} Bundle needs a timestamp")
        )
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, Mapping)]
    if not entries:
        problems.append(
            Problem(
                "missing_claim",
                "Bundle.entry",
                f"a PAS {kind} Bundle needs at least one entry, the Claim first",
            )
        )
    for i, entry in enumerate(entries):
        if not entry.get("fullUrl"):
            problems.append(
                Problem("missing_element", f"Bundle.entry[{i}].fullUrl", "every entry needs a fullUrl")
            )
        if not isinstance(entry.get("resource"), Mapping):
            problems.append(
                Problem("missing_element", f"Bundle.entry[{i}].resource", "every entry needs a resource")
            )
        for key in ("request", "response", "search"):
            if key in entry:
                problems.append(
                    Problem(
                        "not_allowed",
                        f"Bundle.entry[{i}].{key}",
                        f"entry.{key} is not allowed in a PAS Bundle",
                    )
                )
    claim: dict[str, Any] = {}
    if entries:
        first = entries[0].get("resource")
        if not isinstance(first, Mapping) or first.get("resourceType") != "Claim":
            rtype = first.get("resourceType") if isinstance(first, Mapping) else None
            problems.append(
                Problem(
                    "claim_not_first",
                    "Bundle.entry[0].resource",
                    "the first entry of a PAS Bundle must be the Claim",
                    rtype,
                )
            )
        else:
            claim = dict(first)
    if claim:
        root = "Bundle.entry[0].resource"
        if claim.get("use") != "preauthorization":
            problems.append(
                Problem(
                    "invalid_value",
                    f"{root}.use",
                    "Claim.use must be 'preauthorization' for prior authorization",
                    claim.get("use"),
                )
            )
        idents = [i for i in claim.get("identifier") or [] if isinstance(i, Mapping) and i.get("value")]
        if not idents:
            problems.append(
                Problem(
                    "missing_element",
                    f"{root}.identifier",
                    "the Claim needs an identifier (the patient event trace number)",
                )
            )
        if not isinstance(claim.get("insurer"), Mapping):
            problems.append(Problem("missing_element", f"{root}.insurer", "the Claim needs an insurer (PAS)"))
        if not inquiry and not claim.get("item"):
            problems.append(Problem("missing_element", f"{root}.item", "the Claim needs at least one item"))
        if not inquiry and claim.get("status") != "active":
            problems.append(
                Problem(
                    "invalid_value",
                    f"{root}.status",
                    "a new prior-authorization Claim has status 'active'",
                    claim.get("status"),
                )
            )
    if problems:
        message = (
            problems[0].message
            if len(problems) == 1
            else f"{len(problems)} problems in the PAS {kind} Bundle"
        )
        if len(problems) == 1 and problems[0].field:
            message = f"{problems[0].field}: {message}"
        raise FhirInputError(
            422, problems[0].code if len(problems) == 1 else "invalid_bundle", message, problems
        )

    items = tuple(_item(claim, bundle, i) for i in range(len(claim.get("item") or [])))
    patient = claim.get("patient")
    reference = patient.get("reference") if isinstance(patient, Mapping) else None
    if reference is not None and (not isinstance(reference, str) or not 0 < len(reference) <= 200):
        shown = reference[:64] if isinstance(reference, str) else None
        raise FhirInputError(
            422,
            "invalid_reference",
            "Claim.patient.reference must be a reference of 1 to 200 characters",
            [Problem("invalid_reference", "Claim.patient.reference", "must be 1 to 200 characters", shown)],
        )
    return PasRequest(
        bundle=bundle,
        claim=claim,
        claim_full_url=str(entries[0].get("fullUrl")) if entries else None,
        bundle_identifier=dict(bundle["identifier"]),
        claim_identifiers=tuple(dict(i) for i in claim.get("identifier") or [] if isinstance(i, Mapping)),
        items=items,
        urgency=_urgency(claim),
        patient_reference=reference,
        resources=tuple(dict(e["resource"]) for e in entries[1:] if isinstance(e.get("resource"), Mapping)),
    )


def _item(claim: Mapping[str, Any], bundle: Mapping[str, Any], index: int) -> PasItem:
    item = claim["item"][index]
    codes: list[str] = []
    other: list[str] = []
    labels: list[str] = []
    for coding in _codings(item.get("productOrService")):
        code = coding.get("code")
        if not isinstance(code, str):
            continue
        (codes if coding.get("system") in _BILLING else other).append(code)
        display = coding.get("display")
        labels.append(f"{display} ({code})" if isinstance(display, str) and display else code)
    dos = _full_date(item.get("servicedDate"))
    if dos is None and isinstance(item.get("servicedPeriod"), Mapping):
        dos = _full_date(item["servicedPeriod"].get("start"))
    traces: list[dict[str, Any]] = []
    for ext in item.get("extension") or []:
        if not isinstance(ext, Mapping):
            continue
        if ext.get("url") == ITEM_TRACE_NUMBER_EXT and isinstance(ext.get("valueIdentifier"), Mapping):
            traces.append(dict(ext))
        if ext.get("url") == REQUESTED_SERVICE_EXT and isinstance(ext.get("valueReference"), Mapping):
            requested = _resolve(bundle, ext["valueReference"].get("reference"))
            if requested is not None:
                dos = dos or fhir_case.order_date(requested)
                for code in fhir_case.order_codes(requested):
                    if code not in codes:
                        codes.append(code)
                        labels.append(code)
    seq = item.get("sequence")
    return PasItem(
        sequence=int(seq) if isinstance(seq, int) else index + 1,
        codes=tuple(dict.fromkeys(codes)),
        other_codes=tuple(dict.fromkeys(other)),
        label=", ".join(dict.fromkeys(labels)),
        date_of_service=dos,
        trace_numbers=tuple(traces),
        diagnosis_sequences=tuple(int(s) for s in item.get("diagnosisSequence") or [] if isinstance(s, int)),
    )


def _urgency(claim: Mapping[str, Any]) -> str:
    """``expedited`` when Claim.priority is stat/urgent or the X12 level of service is urgent or
    emergency; ``standard`` otherwise."""
    if any(c.get("code") in _EXPEDITED_PRIORITY for c in _codings(claim.get("priority"))):
        return "expedited"
    for ext in claim.get("extension") or []:
        if (
            isinstance(ext, Mapping)
            and ext.get("url") == LEVEL_OF_SERVICE_EXT
            and any(c.get("code") in _EXPEDITED_LEVEL for c in _codings(ext.get("valueCodeableConcept")))
        ):
            return "expedited"
    return "standard"


def idempotency_key(request: PasRequest) -> str:
    """Stable key of a submission: the Claim's first identifier (system|value), else the Bundle's.

    A resubmission of the same Claim finds the request created the first time.
    """
    ident = request.claim_identifiers[0] if request.claim_identifiers else request.bundle_identifier or {}
    raw = f"{ident.get('system') or ''}|{ident.get('value') or ''}"
    key = f"pas:{raw}"
    if len(key) > 200:
        key = "pas:sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    return key


# --------------------------------------------------------------------------------------------- case


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


# ----------------------------------------------------------------------------------------- response


@dataclass(frozen=True)
class RequestState:
    """What the response needs from the stored prior-authorization request."""

    id: str
    state: str
    recommendation: str | None
    summary: str
    missing: tuple[tuple[str, str], ...]  # (fact name, question)
    decision_reason: str | None
    human_reviewed: bool
    denial_code: str | None = None  # the structured denial reason (DENIAL_REASON_SYSTEM)
    #: Reviewers' corrections of the request's facts, oldest first (each a ``processNote``).
    corrections: tuple[FactCorrection, ...] = ()


@dataclass(frozen=True)
class FactCorrection:
    """A reviewer's correction of a fact the provider submitted (or the policy derived from them):
    the store's audited correction event, as the PAS response states it."""

    fact: str
    old: Any  # the value before (None: it had none)
    new: Any  # the corrected value (None: made unknown)
    derived: bool  # the value before was derived by the policy, not submitted
    by: str  # the registered reviewer
    role: str  # nurse or physician
    at: datetime
    reason: str | None


_ROLE_WORDS = {"nurse": "nurse reviewer", "physician": "physician reviewer"}


def _shown(value: Any) -> str:
    """A fact's value in words: codes comma-separated, yes/no, ``unknown`` for no value."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _utc(at: datetime) -> str:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def correction_text(correction: FactCorrection) -> str:
    """The correction in words, as the letter and the workbench say it ("corrected by ... from ...")."""
    c = correction
    was = "derived by the policy as" if c.derived else "submitted as"
    return (
        f"Correction of {c.fact.replace('_', ' ')}: {_shown(c.new)}, corrected by {c.by} "
        f"({_ROLE_WORDS.get(c.role, c.role)}) on {_utc(c.at)[:10]} from {_shown(c.old)} ({was} that). "
        f"Reason: {c.reason or 'not given'}."
    )


def correction_extension(correction: FactCorrection) -> dict[str, Any]:
    """The :data:`FACT_CORRECTION_EXT` extension of a correction's ``processNote``."""
    c = correction
    subs: list[dict[str, Any]] = [{"url": "fact", "valueCode": c.fact}]
    if c.old is not None:
        subs.append({"url": "from", "valueString": _shown(c.old)})
    if c.new is not None:
        subs.append({"url": "to", "valueString": _shown(c.new)})
    subs += [
        {"url": "derived", "valueBoolean": c.derived},
        {"url": "author", "valueString": c.by},
        {"url": "role", "valueCode": c.role},
        {"url": "date", "valueDateTime": _utc(c.at)},
    ]
    if c.reason:
        subs.append({"url": "reason", "valueString": c.reason})
    return {"url": FACT_CORRECTION_EXT, "extension": subs}


@dataclass(frozen=True)
class ItemAction:
    sequence: int
    code: str
    note: str
    missing: tuple[str, ...]
    trace_numbers: tuple[dict[str, Any], ...] = ()


def item_actions(request: PasRequest, state: RequestState, governed: Mapping[int, bool]) -> list[ItemAction]:
    """The X12 306 review action of each item (see the module table); ``governed`` by item index."""
    actions: list[ItemAction] = []
    for index, item in enumerate(request.items or (PasItem(1, (), (), "", None, (), ()),)):
        is_governed = governed.get(index, False)
        codes = item.label or "this item"
        missing: tuple[str, ...] = ()
        if state.state == "approved":
            code = "A1"
            note = f"Certified: {state.decision_reason or state.summary}"
        elif state.state == "denied":
            code = "A3"
            note = f"Not certified after physician review: {state.decision_reason or state.summary}"
        elif state.state == "withdrawn":
            code, note = "C", "Cancelled: the request was withdrawn by its submitter."
        elif state.state == "closed_not_governed" or not is_governed:
            code = "NA"
            note = f"No action required: no policy of this payer requires prior authorization of {codes}."
        elif state.state == "information_needed":
            code = "A4"
            missing = tuple(name for name, _ in state.missing)
            asks = "; ".join(f"{name}: {question}" for name, question in state.missing)
            note = f"Pended, information needed: {state.summary}" + (
                f" Please provide {asks}" if asks else ""
            )
        else:
            code = "A4"
            rec = (state.recommendation or "review").replace("_", " ")
            note = (
                "Pended for physician review: the policy's criteria are not met "
                f"(engine recommendation: {rec}). "
                f"{state.summary} Only a physician reviewer may deny."
            )
        actions.append(ItemAction(item.sequence, code, note.strip(), missing, item.trace_numbers))
    return actions


def review_action_extension(code: str, number: str | None, reason: str | None = None) -> dict[str, Any]:
    subs: list[dict[str, Any]] = []
    if number:
        subs.append({"url": "number", "valueString": number})
    if reason:
        subs.append(
            {
                "url": "reasonCode",
                "valueCodeableConcept": {"coding": [{"system": DENIAL_REASON_SYSTEM, "code": reason}]},
            }
        )
    subs.append(
        {
            "url": REVIEW_ACTION_CODE_EXT,
            "valueCodeableConcept": {
                "coding": [{"system": X12_306, "code": code, "display": REVIEW_ACTION_DISPLAY[code]}]
            },
        }
    )
    return {"url": REVIEW_ACTION_EXT, "extension": subs}


def _claim_reference(request: PasRequest) -> dict[str, Any]:
    claim_id = request.claim.get("id")
    if isinstance(claim_id, str) and claim_id:
        return {"reference": f"Claim/{claim_id}"}
    return {"identifier": request.claim_identifiers[0]} if request.claim_identifiers else {"display": "Claim"}


def _copy_entries(request: PasRequest, references: Iterable[str | None]) -> list[dict[str, Any]]:
    """Entries of the request Bundle that the response references (patient, insurer, requestor)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for ref in references:
        if not ref:
            continue
        for entry in request.bundle.get("entry") or []:
            res = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(res, Mapping):
                continue
            full = str(entry.get("fullUrl") or "")
            if full in seen:
                continue
            if full == ref or full.endswith("/" + ref) or f"{res.get('resourceType')}/{res.get('id')}" == ref:
                seen.add(full)
                out.append({"fullUrl": full, "resource": dict(res)})
    return out


def _ref(value: Any) -> str | None:
    return value.get("reference") if isinstance(value, Mapping) else None


def response_bundle(
    request: PasRequest,
    state: RequestState,
    actions: Sequence[ItemAction],
    *,
    inquiry: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The PAS response Bundle (``inquiry``: inquiry response Bundle) for ``request`` in ``state``."""
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    claim = request.claim
    notes: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for action in actions:
        notes.append({"number": len(notes) + 1, "type": "display", "text": action.note})
        extensions: list[dict[str, Any]] = [dict(t) for t in action.trace_numbers]
        extensions += [{"url": MISSING_FACT_EXT, "valueString": name} for name in action.missing]
        item: dict[str, Any] = {}
        if extensions:
            item["extension"] = extensions
        item["itemSequence"] = action.sequence
        item["noteNumber"] = [len(notes)]
        item["adjudication"] = [
            {
                "extension": [
                    review_action_extension(
                        action.code, state.id, state.denial_code if action.code == "A3" else None
                    )
                ],
                "category": {"coding": [{"system": ADJUDICATION_SYSTEM, "code": "submitted"}]},
            }
        ]
        items.append(item)
    for correction in state.corrections:  # request-level notes: no item points at them
        notes.append(
            {
                "extension": [correction_extension(correction)],
                "number": len(notes) + 1,
                "type": "display",
                "text": correction_text(correction),
            }
        )
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": state.id.replace("_", "-"),
        "meta": {"profile": [PAS_INQUIRY_RESPONSE if inquiry else PAS_CLAIM_RESPONSE]},
    }
    if state.human_reviewed:
        response["extension"] = [
            {"url": REVIEWER_EXT, "extension": [{"url": "wasHumanReviewedFlag", "valueBoolean": True}]}
        ]
    response.update(
        {
            "identifier": [dict(i) for i in request.claim_identifiers[:1]],
            "status": "active",
            "type": claim.get("type")
            or {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}
                ]
            },
            "use": "preauthorization",
            "patient": claim.get("patient") or {"display": "unknown"},
            "created": when,
            "insurer": claim.get("insurer") or {"display": "unknown"},
        }
    )
    if isinstance(claim.get("provider"), Mapping):
        response["requestor"] = claim["provider"]
    response["request"] = _claim_reference(request)
    response["outcome"] = "complete"
    if any(a.code == "A1" for a in actions):
        response["preAuthRef"] = state.id
    response["item"] = items
    response["processNote"] = notes
    if not response["identifier"]:
        del response["identifier"]
    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": response}]
    entries += _copy_entries(
        request, [_ref(claim.get("patient")), _ref(claim.get("insurer")), _ref(claim.get("provider"))]
    )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [PAS_INQUIRY_RESPONSE_BUNDLE if inquiry else PAS_RESPONSE_BUNDLE]},
    }
    if request.bundle_identifier:
        bundle["identifier"] = request.bundle_identifier
    bundle.update({"type": "collection", "timestamp": when, "entry": entries})
    return bundle
