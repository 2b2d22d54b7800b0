"""Our own API, version 1: determinations and prior-authorization requests.

A thin face: parse, call the core (through the store, which records what it decides), render.

    POST /v1/determinations                 a case in, a stored determination out (201)
    GET  /v1/determinations/{id}            a stored determination
    POST /v1/prior-auth                     submit a prior-authorization request (201; a retry: 200)
    GET  /v1/prior-auth                     list requests (?state=&search=&limit=&offset=)
    GET  /v1/prior-auth/{id}                one request, with its latest determination
    POST /v1/prior-auth/{id}/actions        act on a request (reviewers, or the submitter)
    POST /v1/prior-auth/{id}/corrections    correct facts the provider submitted (reviewers, with a reason)
    GET  /v1/prior-auth/{id}/events         the request's audit trail
    POST /v1/prior-auth/{id}/documents      attach a clinical document (PDF or text; v1_documents)
    GET  /v1/prior-auth/{id}/documents      the request's documents (metadata)
    GET  /healthz                           liveness (no authentication)

Every endpoint but /healthz needs a bearer token. A client sees only its own records unless it has
a reviewer role (nurse, physician). A reviewer client acts for a registered reviewer (`on_behalf_of`);
every audit event records the authenticated client (`principal`) and that reviewer (`actor`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse as _StarletteJSONResponse
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from medpolicy.service.auth import Client
from medpolicy.service.deps import ServiceState, authenticated, client_dep, store_dep
from medpolicy.service.errors import ApiError
from medpolicy.service.hardening import StrictJSONRequest, StrictJSONRoute
from medpolicy.service.principals import client_principal, resolve_reviewer
from medpolicy.store import LifecycleError, PARequest, State, Store, StoreError, idempotent
from medpolicy.store.lifecycle import CORRECT
from medpolicy.store.records import RenderedDetermination


class JSONResponse(_StarletteJSONResponse):
    """JSON rendered by orjson: the same compact UTF-8 JSON, several times faster to produce."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class RenderedJSONResponse(Response):
    """An answer already rendered as JSON bytes (sent as they are)."""

    media_type = "application/json"


# -- wire models (documented in the OpenAPI document) -------------------------------------------


class ErrorItemV1(BaseModel):
    code: str | None
    field: str | None
    value: Any = None
    message: str | None


class ErrorDetailV1(BaseModel):
    code: str = Field(description="stable snake_case error code")
    message: str
    field: str | None = None
    value: Any = None
    errors: list[ErrorItemV1] = Field(default_factory=list)


class ErrorV1(BaseModel):
    error: ErrorDetailV1


class DeterminationRequestV1(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case: dict[str, Any] = Field(description="the case facts (see docs/architecture.md, 'Case facts')")
    policy_id: str | None = Field(default=None, description="decide under this policy only")


class DeterminationRecordV1(BaseModel):
    id: str
    created_at: str
    pa_request_id: str | None
    policy_id: str | None
    policy_version: str | None
    engine_version: str
    outcome: str
    determination: dict[str, Any] = Field(description="DeterminationV1, with its trace")
    case: dict[str, Any]


class PARequestInV1(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case: dict[str, Any]
    urgency: Literal["expedited", "standard"] = Field(
        default="standard", description="expedited: due in 72 hours; standard: due in 7 calendar days"
    )
    subject: str | None = Field(default=None, max_length=200, description="member or patient reference")
    policy_id: str | None = None
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="or the Idempotency-Key header"
    )
    member: dict[str, Any] | None = Field(
        default=None, description="member_id (required), name, birth_date (YYYY-MM-DD), plan, group"
    )
    requesting_provider: dict[str, Any] | None = Field(
        default=None, description="name, npi (check digit verified), organization, organization_npi, tin"
    )
    servicing_provider: dict[str, Any] | None = Field(default=None, description="as requesting_provider")


class CorrectionV1(BaseModel):
    fact: str
    original: Any = Field(alias="from", description="the value before (submitted, or derived)")
    corrected: Any = Field(alias="to")
    derived: bool = Field(description="the value before was derived by the policy, not submitted")
    by: str = Field(description="the registered reviewer")
    role: str
    principal: str | None = Field(description="who authenticated: client:<id> or user:<username>")
    at: str
    reason: str | None


class PARequestV1(BaseModel):
    id: str
    submitter: str
    idempotency_key: str | None
    urgency: str
    state: str
    subject: str | None
    received_at: str
    due_at: str
    updated_at: str
    policy_id: str | None
    case: dict[str, Any]
    determination_id: str | None
    recommendation: str | None = Field(description="the engine's latest outcome")
    decision_reason: str | None
    version: int
    determination: dict[str, Any] | None
    corrections: list[CorrectionV1] | None = Field(
        default=None,
        description="reviewers' corrections of submitted or derived facts, oldest first (single request)",
    )
    member: dict[str, Any] | None = Field(default=None, description="on submit and read (not in lists)")
    requesting_provider: dict[str, Any] | None = None
    servicing_provider: dict[str, Any] | None = None


class PARequestListV1(BaseModel):
    items: list[PARequestV1]
    limit: int
    offset: int


class ActionInV1(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal[
        "approve", "request_information", "route_to_physician", "deny", "withdraw", "provide_information"
    ]
    role: Literal["submitter", "nurse", "physician"] | None = Field(
        default=None, description="the role acted in; one of the client's roles (default: submitter)"
    )
    on_behalf_of: str | None = Field(
        default=None,
        max_length=100,
        description="the registered reviewer (workbench username) with this role; required for reviewer roles",
    )
    actor: str | None = Field(
        default=None, max_length=100, description="deprecated name of on_behalf_of (same rules)"
    )
    reason: str | None = Field(
        default=None, max_length=4000, description="required to deny, and when case_update corrects a fact"
    )
    case_update: dict[str, Any] | None = Field(
        default=None,
        description="new facts; changing a fact that has a value is a correction (reason required)",
    )


class CorrectionInV1(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facts: dict[str, Any] = Field(min_length=1, description="fact -> corrected value (null: unknown)")
    reason: str = Field(min_length=1, max_length=4000, description="why the submitted value is wrong")
    role: Literal["nurse", "physician"]
    on_behalf_of: str = Field(min_length=1, max_length=100, description="the registered reviewer")


class AuditEventV1(BaseModel):
    id: int
    request_id: str
    at: str
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str
    reason: str | None
    determination_id: str | None
    principal: str | None = Field(description="who authenticated: client:<id>, user:<username>, medpolicy")
    details: dict[str, Any] | None = Field(description="a correction's fact, from, to and derived")


class AuditListV1(BaseModel):
    items: list[AuditEventV1]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorV1} for status in (401, 413, 422, *statuses)}


router = APIRouter(prefix="/v1", tags=["v1"], route_class=StrictJSONRoute)  # strict JSON bodies
health_router = APIRouter(tags=["health"])

StoreDep = Annotated[Store, Depends(store_dep)]
ClientDep = Annotated[Client, Depends(client_dep)]


def _store_error(exc: StoreError | LifecycleError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def _visible(client: Client, owner: str) -> bool:
    return client.is_reviewer or client.client_id == owner


# -- health ------------------------------------------------------------------------------------


@health_router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


# -- determinations ----------------------------------------------------------------------------


async def fast_determination(request: StrictJSONRequest) -> Response | None:
    """`create_determination` for the common call, without FastAPI's routing, dependency injection
    and body validation (the fast path of `medpolicy.service.middleware`): a JSON body
    ``{"case": {...}[, "policy_id": str|null]}``, a valid bearer token, no Idempotency-Key. Anything
    else (None) goes to the full handler, which gives every refusal exactly as before; this accepts
    only what `DeterminationRequestV1` does, and has no effect before it accepts."""
    content_type = authorization = None
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            content_type = content_type or value
        elif name == b"authorization":
            authorization = authorization or value
        elif name == b"idempotency-key":
            return None
    if content_type is None or content_type.partition(b";")[0].strip().lower() != b"application/json":
        return None
    state: ServiceState = request.app.state.medpolicy
    client = state.tokens.lookup(authorization)
    if client is None:
        return None
    try:
        body = await request.json()
    except ValueError:  # invalid JSON: the full handler answers 422 invalid_json
        return None
    if type(body) is not dict or len(body) > 2 or type(body.get("case")) is not dict:
        return None
    policy_id = body.get("policy_id")
    if len(body) == 2 and ("policy_id" not in body or (policy_id is not None and type(policy_id) is not str)):
        return None
    authenticated(request, client)
    return await _determine(body["case"], policy_id, state.store, client)


@router.post(
    "/determinations",
    status_code=201,
    response_model=DeterminationRecordV1,
    responses={
        200: {"model": DeterminationRecordV1, "description": "a retry (same Idempotency-Key and body)"},
        **_errors(404, 409),
    },
    summary="Decide a case and store the determination",
)
async def create_determination(
    body: DeterminationRequestV1,
    store: StoreDep,
    client: ClientDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> Response:
    if idempotency_key is not None:
        return await _keyed_determination(body, store, client, idempotency_key)
    return await _determine(body.case, body.policy_id, store, client)


async def _determine(case: dict[str, Any], policy_id: str | None, store: Store, client: Client) -> Response:
    # The hot path: decide on the event loop (pure CPU), then wait, without a thread, for the
    # group commit that stores this determination with the others arriving now.
    try:
        if _large(case):  # a big case is checked in the thread pool: the loop keeps answering
            determination = await run_in_threadpool(store.decide, case, policy_id=policy_id)
        else:
            determination = store.decide(case, policy_id=policy_id)
        # the determination rendered once: its text answers and is stored, never parsed back
        record, committed = store.submit_rendered(case, determination, client_id=client.client_id)
        await asyncio.wrap_future(committed)
    except StoreError as exc:
        raise _store_error(exc) from None
    return RenderedJSONResponse(
        record.to_json(), status_code=201, headers={"Location": f"/v1/determinations/{record.id}"}
    )


#: (method, path) -> fast path, collected by `create_app` for `ServiceMiddleware`.
HOT_ROUTES = {("POST", "/v1/determinations"): fast_determination}


async def _keyed_determination(
    body: DeterminationRequestV1, store: Store, client: Client, key: str
) -> Response:
    """A determination with an Idempotency-Key: stored once, with its key, in one transaction."""

    def work() -> tuple[Any, bool]:
        digest = idempotent.fingerprint(body.case, body.policy_id)
        existing = idempotent.find(store, client.client_id, key, digest)
        if existing is not None:
            return existing, False
        determination = store.decide(body.case, policy_id=body.policy_id)
        return idempotent.save(
            store, body.case, determination, client_id=client.client_id, key=key, digest=digest
        )

    try:
        record, created = await run_in_threadpool(work)
    except StoreError as exc:
        raise _store_error(exc) from None
    headers = {"Location": f"/v1/determinations/{record.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    answer = record.to_json() if isinstance(record, RenderedDetermination) else orjson.dumps(record.to_dict())
    return RenderedJSONResponse(answer, status_code=201 if created else 200, headers=headers)


def _large(case: dict[str, Any]) -> bool:
    """Whether checking `case` may take more than a few hundred microseconds."""
    return len(case) > 32 or any(type(v) is list and len(v) > 16 for v in case.values())


@router.get(
    "/determinations/{determination_id}",
    response_model=DeterminationRecordV1,
    responses=_errors(404),
    summary="A stored determination",
)
def read_determination(determination_id: str, store: StoreDep, client: ClientDep) -> JSONResponse:
    try:
        record = store.get_determination(determination_id)
    except StoreError as exc:
        raise _store_error(exc) from None
    if not _visible(client, record.client_id):
        raise ApiError(404, "determination_not_found", f"no determination {determination_id!r}")
    if record.pa_request_id is not None:
        record_api_read(store, client, record.pa_request_id, "api determination")
    return JSONResponse(record.to_dict())


# -- prior authorization -----------------------------------------------------------------------


def _load_request(store: Store, client: Client, request_id: str, *, read: str | None = None) -> PARequest:
    """The request `client` may see (404 otherwise). `read`: what of its patient data the answer shows;
    a reviewer client's read is recorded (`record_read`), as the workbench records a person's."""
    try:
        request = store.get_pa_request(request_id)
    except StoreError as exc:
        raise _store_error(exc) from None
    if not _visible(client, request.submitter):
        raise ApiError(404, "prior_auth_not_found", f"no prior-authorization request {request_id!r}")
    if read is not None:
        record_api_read(store, client, request.id, read)
    return request


def record_api_read(store: Store, client: Client, request_id: str, what: str) -> None:
    """HIPAA access accounting: a reviewer client (a UM platform) read `what` of a request's patient
    data; recorded with the authenticated principal. The submitter reading what it sent is not."""
    if client.is_reviewer:
        store.record_read(request_id, principal=client_principal(client), actor=client.client_id, what=what)


@router.post(
    "/prior-auth",
    status_code=201,
    response_model=PARequestV1,
    responses={200: {"model": PARequestV1, "description": "a retry: the original request"}, **_errors(409)},
    summary="Submit a prior-authorization request",
)
def submit_prior_auth(
    body: PARequestInV1,
    store: StoreDep,
    client: ClientDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    if (
        idempotency_key is not None
        and body.idempotency_key is not None
        and idempotency_key != body.idempotency_key
    ):
        raise ApiError(
            422,
            "idempotency_key_mismatch",
            "the Idempotency-Key header and the idempotency_key field differ",
            field="idempotency_key",
            value=body.idempotency_key,
        )
    key = idempotency_key or body.idempotency_key
    from medpolicy.parties import parse_parties

    parties = parse_parties(body.member, body.requesting_provider, body.servicing_provider)
    try:
        request, created = store.create_pa_request(
            body.case,
            submitter=client.client_id,
            urgency=body.urgency,
            idempotency_key=key,
            subject=body.subject or (parties.member.label() if parties.member else None),
            policy_id=body.policy_id,
        )
        if created and not parties.empty:
            store.set_parties(request.id, parties)
    except (StoreError, LifecycleError) as exc:
        raise _store_error(exc) from None
    headers = {"Location": f"/v1/prior-auth/{request.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    answer = {
        **({**request.to_dict(), "corrections": []} if created else _with_corrections(store, request)),
        **store.get_casework(request.id).parties.to_dict(),
    }
    return JSONResponse(answer, status_code=201 if created else 200, headers=headers)


@router.get(
    "/prior-auth",
    response_model=PARequestListV1,
    responses=_errors(),
    summary="List prior-authorization requests, soonest due first",
)
def list_prior_auth(
    store: StoreDep,
    client: ClientDep,
    state: Annotated[State | None, Query(description="only requests in this state")] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="text in id, subject, policy or case")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JSONResponse:
    items = store.list_pa_requests(
        state=state,
        search=search,
        submitter=None if client.is_reviewer else client.client_id,
        limit=limit,
        offset=offset,
    )
    if client.is_reviewer:  # each item shows the request's case and member: one read per request listed
        store.record_reads(
            [r.id for r in items], principal=client_principal(client), actor=client.client_id, what="api list"
        )
    return JSONResponse({"items": [r.to_dict() for r in items], "limit": limit, "offset": offset})


def _with_corrections(store: Store, request: PARequest) -> dict[str, Any]:
    data = request.to_dict()
    data["corrections"] = [
        {
            **(e.details or {}),
            "by": e.actor,
            "role": e.role,
            "principal": e.principal,
            "at": e.to_dict()["at"],
            "reason": e.reason,
        }
        for e in store.list_audit(request.id)
        if e.action == CORRECT
    ]
    return data


@router.get(
    "/prior-auth/{request_id}",
    response_model=PARequestV1,
    responses=_errors(404),
    summary="A prior-authorization request",
)
def read_prior_auth(request_id: str, store: StoreDep, client: ClientDep) -> JSONResponse:
    request = _load_request(store, client, request_id, read="api request")
    return JSONResponse(
        {**_with_corrections(store, request), **store.get_casework(request.id).parties.to_dict()}
    )


@router.post(
    "/prior-auth/{request_id}/actions",
    response_model=PARequestV1,
    responses=_errors(403, 404, 409),
    summary="Act on a prior-authorization request",
)
def act_on_prior_auth(request_id: str, body: ActionInV1, store: StoreDep, client: ClientDep) -> JSONResponse:
    role = body.role or "submitter"
    if role not in client.roles:
        raise ApiError(
            403, "role_not_granted", f"this client may not act as {role}", field="role", value=role
        )
    _load_request(store, client, request_id)
    if role == "submitter":
        actor = client.client_id
    else:
        field = "actor" if body.on_behalf_of is None and body.actor is not None else "on_behalf_of"
        actor = resolve_reviewer(store, body.on_behalf_of or body.actor, role, field=field)
    try:
        request = store.apply_action(
            request_id,
            body.action,
            actor,
            role,
            reason=body.reason,
            case_update=body.case_update,
            principal=client_principal(client),
        )
    except (StoreError, LifecycleError) as exc:
        raise _store_error(exc) from None
    return JSONResponse(_with_corrections(store, request))


@router.post(
    "/prior-auth/{request_id}/corrections",
    response_model=PARequestV1,
    responses=_errors(403, 404, 409),
    summary="Correct facts of a prior-authorization request (a reviewer, with a reason)",
)
def correct_prior_auth(
    request_id: str, body: CorrectionInV1, store: StoreDep, client: ClientDep
) -> JSONResponse:
    if body.role not in client.roles:
        raise ApiError(
            403, "role_not_granted", f"this client may not act as {body.role}", field="role", value=body.role
        )
    _load_request(store, client, request_id)
    actor = resolve_reviewer(store, body.on_behalf_of, body.role)
    try:
        request = store.correct_facts(
            request_id,
            body.facts,
            actor=actor,
            role=body.role,
            reason=body.reason,
            principal=client_principal(client),
        )
    except (StoreError, LifecycleError) as exc:
        raise _store_error(exc) from None
    return JSONResponse(_with_corrections(store, request))


@router.get(
    "/prior-auth/{request_id}/events",
    response_model=AuditListV1,
    responses=_errors(404),
    summary="The audit trail of a request, oldest first",
)
def prior_auth_events(request_id: str, store: StoreDep, client: ClientDep) -> JSONResponse:
    _load_request(store, client, request_id, read="api audit trail")
    return JSONResponse({"items": [e.to_dict() for e in store.list_audit(request_id)]})
