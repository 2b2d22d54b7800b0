"""The PAS response Bundle: X12 306 review actions per item (the table in :mod:`medpolicy.interop.pas`),
notes, and the reviewers' corrections of the request's facts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from medpolicy.interop.pas.profiles import (
    ADJUDICATION_SYSTEM,
    DENIAL_REASON_SYSTEM,
    FACT_CORRECTION_EXT,
    MISSING_FACT_EXT,
    PAS_CLAIM_RESPONSE,
    PAS_INQUIRY_RESPONSE,
    PAS_INQUIRY_RESPONSE_BUNDLE,
    PAS_RESPONSE_BUNDLE,
    REVIEW_ACTION_CODE_EXT,
    REVIEW_ACTION_DISPLAY,
    REVIEW_ACTION_EXT,
    REVIEWER_EXT,
    X12_306,
)
from medpolicy.interop.pas.request import PasItem, PasRequest


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
