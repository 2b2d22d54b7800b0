"""Da Vinci PAS endpoints (FHIR R4, under ``/fhir``). Translation lives in :mod:`medpolicy.interop.pas`.

    POST /fhir/Claim/$submit    PAS request Bundle -> PAS response Bundle (ClaimResponse first)
    POST /fhir/Claim/$inquire   PAS inquiry Bundle -> inquiry response Bundle (the current state)

One prior-authorization request of the store per Claim, idempotent on the Claim identifier (else the
Bundle identifier): resubmitting the same Claim answers with the request created the first time; the
same identifier with different content is a 409 conflict. The engine certifies (A1) or pends (A4); a
denial (A3) only ever comes from a physician reviewer acting on the request (``/v1/prior-auth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from medpolicy import PolicySet
from medpolicy.extract.prefill import prefill_from_attachments
from medpolicy.interop import dtr, pas
from medpolicy.service.deps import get_policies, get_store, require_client
from medpolicy.service.dtr import fhir_error, fhir_response, read_json
from medpolicy.service.errors import ApiError
from medpolicy.service.pas_extras import record_extras, submission_extras
from medpolicy.store import Store
from medpolicy.store.lifecycle import CORRECT
from medpolicy.store.store import PARequest, StoreError

__all__ = ["FHIR_PATH_PREFIXES", "router"]

FHIR_PATH_PREFIXES = ("/fhir",)

router = APIRouter(prefix="/fhir", tags=["PAS"])

PoliciesDep = Annotated[PolicySet, Depends(get_policies)]
StoreDep = Annotated[Store, Depends(get_store)]
ClientIdDep = Annotated[str, Depends(require_client)]

_REVIEWER_ROLES = frozenset({"nurse", "physician"})


def _store_error(exc: StoreError) -> ApiError:
    status = getattr(exc, "status", None) or 500
    return ApiError(int(status), str(getattr(exc, "code", None) or "store_error"), str(exc))


def request_state(store: Store, pa: PARequest) -> pas.RequestState:
    """The parts of a stored request the PAS response needs."""
    det: dict[str, Any] = pa.determination.determination if pa.determination is not None else {}
    missing: list[tuple[str, str]] = []
    for m in det.get("missing_facts") or []:
        if isinstance(m, Mapping) and m.get("name"):
            missing.append((str(m["name"]), str(m.get("question") or "")))
    summary = ""
    for key in ("summary", "reason", "explanation", "message"):
        value = det.get(key)
        if isinstance(value, str) and value.strip():
            summary = value.strip()
            break
    events = store.list_audit(pa.id)
    human = pa.is_final and bool(events) and events[-1].role in _REVIEWER_ROLES
    corrections = tuple(
        pas.FactCorrection(
            fact=str(e.details.get("fact")),
            old=e.details.get("from"),
            new=e.details.get("to"),
            derived=bool(e.details.get("derived")),
            by=e.actor,
            role=e.role,
            at=e.at,
            reason=e.reason,
        )
        for e in events
        if e.action == CORRECT and e.details
    )
    return pas.RequestState(
        id=pa.id,
        state=pa.state,
        recommendation=pa.recommendation,
        summary=summary or (pa.recommendation or "").replace("_", " "),
        missing=tuple(missing),
        decision_reason=pa.decision_reason,
        human_reviewed=human,
        denial_code=store.get_casework(pa.id).denial_code if pa.state == "denied" else None,
        corrections=corrections,
    )


def find_by_key(store: Store, submitter: str, key: str) -> PARequest | None:
    """The submitter's request with this idempotency key, or None."""
    finder = getattr(store, "find_pa_request", None)
    if callable(finder):
        found = finder(submitter=submitter, idempotency_key=key)
        return found if isinstance(found, PARequest) or found is None else None
    offset = 0
    while True:
        page = store.list_pa_requests(submitter=submitter, limit=500, offset=offset)
        for pa in page:
            if pa.idempotency_key == key:
                return pa
        if len(page) < 500:
            return None
        offset += 500


@router.post(
    "/Claim/$submit", summary="PAS: submit a prior-authorization request", response_class=JSONResponse
)
async def submit(
    request: Request, policies: PoliciesDep, store: StoreDep, client_id: ClientIdDep
) -> JSONResponse:
    body = await read_json(request)

    def work() -> dict[str, Any]:
        parsed = pas.parse_request_bundle(body)
        policy, governed = pas.governed_items(parsed, policies)
        policy_for_case = policy or next(iter(policies))
        case = pas.claim_case(parsed, policy_for_case, policies)
        parties, documents = submission_extras(parsed)
        sources: dict[str, str] = {}
        extraction = None
        if request.app.state.medpolicy.settings.pas_prefill == "case":
            # The facts read from attached reports enter the case, marked extracted (by default they are
            # proposed to the reviewer on the document's page instead, read when it is opened).
            case, sources, extraction = prefill_from_attachments(
                parsed.claim, parsed.resources, case, policy_for_case
            )
        try:
            pa_request, created = store.create_pa_request(
                case,
                submitter=client_id,
                urgency=parsed.urgency,
                idempotency_key=pas.idempotency_key(parsed),
                subject=parties.member.label() if parties.member else parsed.patient_reference,
                policy_id=policy_for_case.id,
                sources=sources or None,
                extraction=extraction,
            )
            if created:
                record_extras(store, pa_request.id, parties, documents, client_id)
        except StoreError as exc:
            raise _store_error(exc) from None
        state = request_state(store, pa_request)
        return pas.response_bundle(parsed, state, pas.item_actions(parsed, state, governed))

    try:
        bundle = await run_in_threadpool(work)
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None
    return fhir_response(bundle)


@router.post(
    "/Claim/$inquire",
    summary="PAS: the current state of a prior-authorization request",
    response_class=JSONResponse,
)
async def inquire(
    request: Request, policies: PoliciesDep, store: StoreDep, client_id: ClientIdDep
) -> JSONResponse:
    body = await read_json(request)

    def work() -> dict[str, Any]:
        parsed = pas.parse_request_bundle(body, inquiry=True)
        key = pas.idempotency_key(parsed)
        found = find_by_key(store, client_id, key)
        if found is None:
            raise ApiError(
                404,
                "prior_auth_not_found",
                "no prior-authorization request of this client has this Claim identifier",
                field="Bundle.entry[0].resource.identifier",
                value=key.removeprefix("pas:"),
            )
        _policy, governed = pas.governed_items(parsed, policies)
        if not parsed.items:
            governed = {0: found.recommendation != "not_applicable"}
        state = request_state(store, found)
        return pas.response_bundle(parsed, state, pas.item_actions(parsed, state, governed), inquiry=True)

    try:
        bundle = await run_in_threadpool(work)
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None
    return fhir_response(bundle)
