"""Reading a PAS request (``Claim/$submit``) or inquiry (``Claim/$inquire``) Bundle: validation, the Claim,
its identifiers and items, urgency, and the idempotency key."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medpolicy.interop import dtr, fhir_case
from medpolicy.interop.dtr import FhirInputError, Problem
from medpolicy.interop.pas.profiles import (
    _BILLING,
    _EXPEDITED_LEVEL,
    _EXPEDITED_PRIORITY,
    ITEM_TRACE_NUMBER_EXT,
    LEVEL_OF_SERVICE_EXT,
    REQUESTED_SERVICE_EXT,
)


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
