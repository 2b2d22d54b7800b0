"""CDS Hooks 2.0 / Da Vinci CRD endpoints.

    GET  /cds-services                  discovery (order-sign, order-select, order-dispatch, appointment-book)
    POST /cds-services/{id}             a hook call: cards + coverage-information systemActions
    POST /cds-services/{id}/feedback    card feedback (accepted / overridden)

Every call presents a CDS Hooks client JWT (``Authorization: Bearer``), verified by
:mod:`medpolicy.interop.jwt_auth` against the trusted clients of :class:`CdsSettings` with ``aud`` the
exact URL called. Errors answer with a FHIR OperationOutcome (this prefix is registered as FHIR).

Configuration: ``app.state.cds_settings`` (a :class:`CdsSettings`) when set, else
``CdsSettings.from_env()``, read once per app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
import anyio.to_thread
import httpx
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from medpolicy import Determination, decide, strictjson
from medpolicy.errors import CaseError, NoPolicyApplies
from medpolicy.interop import crd
from medpolicy.interop.cdshooks import (
    SERVICES,
    CdsRequestError,
    CdsService,
    CdsSettings,
    Feedback,
    HookRequest,
    OrderItem,
    discovery_document,
    new_uuid,
    orders_of,
    prefetch_status,
    referenced_orders,
    validate_feedback,
    validate_request,
)
from medpolicy.interop.fhir_case import (
    coverage_reference,
    coverage_routing,
    extract_case,
    flatten_resources,
    order_codes,
    order_date,
    patient_facts,
)
from medpolicy.interop.jwt_auth import (
    CdsJwtVerifier,
    JwksFetchNeeded,
    JwtError,
    VerifiedCaller,
    bearer_token,
)
from medpolicy.policy import Policy, PolicySet
from medpolicy.security_log import security_event
from medpolicy.service.deps import get_policies, get_store
from medpolicy.service.errors import ApiError
from medpolicy.store import Store, TokenReplayedError

log = logging.getLogger("medpolicy.cds")

#: Errors under these paths are answered as FHIR OperationOutcome (read by create_app).
FHIR_PATH_PREFIXES: tuple[str, ...] = ("/cds-services",)

router = APIRouter(tags=["CDS Hooks / CRD"])


# ------------------------------------------------------------------------------------------- runtime


@dataclass
class CdsRuntime:
    """What the CDS face builds once per app: settings and the JWT verifier."""

    settings: CdsSettings
    verifier: CdsJwtVerifier


_runtime_lock = threading.Lock()


async def get_cds(request: Request) -> CdsRuntime:  # async: no thread-pool hop per call
    """The app's :class:`CdsRuntime` (built on first use from ``app.state.cds_settings`` or the env)."""
    state = request.app.state
    runtime: CdsRuntime | None = getattr(state, "cds_runtime", None)
    if runtime is not None:
        return runtime
    with _runtime_lock:
        runtime = getattr(state, "cds_runtime", None)
        if runtime is None:
            settings = getattr(state, "cds_settings", None)
            if not isinstance(settings, CdsSettings):
                try:
                    settings = CdsSettings.from_env()
                except ValueError as exc:
                    raise ApiError(503, "cds_misconfigured", f"CDS settings are invalid: {exc}") from None
            verifier = CdsJwtVerifier(
                settings.clients,
                leeway=settings.jwt_leeway_seconds,
                max_lifetime=settings.jwt_max_lifetime_seconds,
            )
            runtime = CdsRuntime(settings=settings, verifier=verifier)
            state.cds_runtime = runtime
    return runtime


def _base_url(request: Request, settings: CdsSettings) -> str:
    if settings.base_url:
        return settings.base_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _authenticate(
    request: Request, runtime: CdsRuntime, audience: str, *, fetch: bool = True
) -> VerifiedCaller:
    try:
        token = bearer_token(request.headers.get("authorization"))
        return runtime.verifier.verify(token, audience, fetch=fetch)
    except JwtError as exc:
        log.info("cds jwt refused: %s", exc.code)
        security_event("api_auth_failed", principal="-", reason=exc.code, face="cds")
        raise ApiError(
            401, exc.code, exc.message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None


async def _verified_caller(request: Request, runtime: CdsRuntime, audience: str) -> VerifiedCaller:
    """The authenticated caller. The signature is checked on the event loop when the issuer's keys are
    at hand (no I/O: a thread hop would cost more than the check); a JWK Set that must be fetched first
    is fetched from a worker thread, so the loop never waits on the network."""
    try:
        caller = _authenticate(request, runtime, audience, fetch=False)
    except JwksFetchNeeded:
        caller = await anyio.to_thread.run_sync(
            lambda: _authenticate(request, runtime, audience), limiter=_cds_workers(request)
        )
    request.state.principal = f"cds:{caller.iss}"[:200]  # for the access log
    return caller


async def _json_body(request: Request) -> Any:
    return _parse_json(await request.body())


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; a JSON object is required")
    try:
        return strictjson.loads(raw)  # no NaN, duplicate keys, lone surrogates or deep nesting
    except strictjson.JsonInputError as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc.message}") from None


def _request_error(exc: CdsRequestError) -> ApiError:
    problems = [p.to_dict() for p in exc.problems]
    first = exc.problems[0]
    message = (
        f"{first.field}: {first.message}"
        if len(problems) == 1
        else f"the request has {len(problems)} problems"
    )
    return ApiError(exc.status, "invalid_request", message, field=first.field, errors=problems)


# ------------------------------------------------------------------------------------------- endpoints


@router.get("/cds-services", summary="CDS Hooks discovery")
def discovery(request: Request, runtime: Annotated[CdsRuntime, Depends(get_cds)]) -> dict[str, Any]:
    if not runtime.settings.discovery_public:
        _authenticate(request, runtime, f"{_base_url(request, runtime.settings)}/cds-services")
    return discovery_document()


@router.get(
    "/cds-services/policies/{policy_id}",
    summary="The published text of a medical policy (the link on CRD cards)",
    response_class=PlainTextResponse,
)
def policy_text(policy_id: str, request: Request) -> PlainTextResponse:
    """Public: the policy document as published (no patient data), linked from the cards."""
    policies = get_policies(request)
    policy = policies.policies.get(policy_id)
    if policy is None:
        raise ApiError(404, "policy_not_found", f"no policy {policy_id!r}")
    header = f"{policy.title}\n{policy.publisher}\n\n"
    return PlainTextResponse(header + policy.source_text)


@router.post("/cds-services/{service_id}", summary="Call a CRD service (CDS Hooks 2.0)")
async def call_service(
    service_id: str,
    request: Request,
    runtime: Annotated[CdsRuntime, Depends(get_cds)],
) -> Response:
    service = SERVICES.get(service_id)
    if service is None:
        raise ApiError(404, "unknown_service", f"no CDS service {service_id!r}; see GET /cds-services")
    base = _base_url(request, runtime.settings)
    raw = await request.body()
    caller = await _verified_caller(request, runtime, f"{base}/cds-services/{service_id}")
    await _claim_shared(request, runtime, caller)  # before anything is decided or stored
    body = _parse_json(raw)  # only for an authenticated caller
    try:
        hook = validate_request(body, service)
    except CdsRequestError as exc:
        raise _request_error(exc) from None
    settings = runtime.settings

    def answer() -> tuple[dict[str, Any], list[Future[None]]]:
        # the policies and the store are reached only once the caller is authenticated and the request valid
        return _answer(hook, service, caller, settings, get_policies(request), get_store(request), base)

    # Answering is CPU work (deciding is mostly a table lookup; the store is written by its own thread),
    # so it runs right here: a thread hop per call costs more than it saves, and threads contending for
    # the GIL stretch every call under a burst. Only a call that may have to read the client's FHIR
    # server goes to one of a few worker threads, so the loop never waits on the network.
    if _may_read_fhir_server(hook, service, settings):
        result, commits = await anyio.to_thread.run_sync(answer, limiter=_cds_workers(request))
    else:
        result, commits = answer()
    for committed in commits:  # a 2xx means stored; waiting for the disk holds no thread
        await asyncio.wrap_future(committed)
    return Response(orjson.dumps(result), media_type="application/json")


async def fast_call(request: Request) -> Response:
    """`call_service` without FastAPI's routing and dependency injection (the fast path of
    `medpolicy.service.middleware`, for ``POST /cds-services/{id}`` of each known service): the same
    function, given the same service id and runtime the route would give it."""
    service_id = request.scope["path"].rsplit("/", 1)[1]
    return await call_service(service_id, request, await get_cds(request))


#: (method, path) -> fast path, collected by `create_app` for `ServiceMiddleware`.
HOT_ROUTES = {("POST", f"/cds-services/{service_id}"): fast_call for service_id in SERVICES}


def _may_read_fhir_server(hook: HookRequest, service: CdsService, settings: CdsSettings) -> bool:
    """Whether answering may query the client's FHIR server: one we may ask is named, and the
    prefetch lacks a required key or an order the context refers to."""
    if not (hook.fhir_server and hook.fhir_authorization and settings.may_query(hook.fhir_server)):
        return False
    plan = prefetch_status(hook, service)
    if plan.missing:
        return True
    known = {f"{r.get('resourceType')}/{r.get('id')}" for r in plan.resources}
    return any(ref not in known for ref in referenced_orders(hook))


async def _claim_shared(request: Request, runtime: CdsRuntime, caller: VerifiedCaller) -> None:
    """With several server processes each keeps its own replay cache, so the token's ``jti`` is also
    recorded in the store: a replay sent to another process is refused as well."""
    if not runtime.settings.shared_replay:
        return
    exp = caller.claims.get("exp")
    until = float(exp) if isinstance(exp, int | float) else 0.0
    expires = datetime.fromtimestamp(until + runtime.settings.jwt_leeway_seconds, UTC)
    try:
        await asyncio.wrap_future(get_store(request).claim_jti(caller.iss, caller.jti, expires))
    except TokenReplayedError:
        log.info("cds jwt refused: token_replayed")
        raise ApiError(
            401,
            "token_replayed",
            "this JWT (jti) has already been used",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None


def _cds_workers(request: Request) -> anyio.CapacityLimiter:
    """The app's limiter for CDS work threads (made on first use, inside the running event loop)."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "cds_workers", None)
    if limiter is None:
        limiter = request.app.state.cds_workers = anyio.CapacityLimiter(4)
    return limiter


@router.post("/cds-services/{service_id}/feedback", summary="Feedback on the cards of a CRD service")
async def feedback(
    service_id: str,
    request: Request,
    runtime: Annotated[CdsRuntime, Depends(get_cds)],
) -> JSONResponse:
    if service_id not in SERVICES:
        raise ApiError(404, "unknown_service", f"no CDS service {service_id!r}; see GET /cds-services")
    base = _base_url(request, runtime.settings)
    caller = await _verified_caller(request, runtime, f"{base}/cds-services/{service_id}/feedback")
    await _claim_shared(request, runtime, caller)
    body = await _json_body(request)
    try:
        items = validate_feedback(body)
    except CdsRequestError as exc:
        raise _request_error(exc) from None
    # Acknowledged means stored: the 200 goes out only once the feedback is committed.
    store = get_store(request)
    rows = [_feedback_row(service_id, caller, item) for item in items]
    await run_in_threadpool(store.record_cds_feedback, rows)
    log.info("cds feedback service=%s items=%d", service_id, len(items))
    return JSONResponse({})


def _feedback_row(service_id: str, caller: VerifiedCaller, item: Feedback) -> dict[str, Any]:
    """A feedback row for the store: card ids and outcomes only, no case data."""
    code = None
    if item.override_reason and isinstance(item.override_reason.get("reason"), Mapping):
        code = str(item.override_reason["reason"].get("code"))
    return {
        "service_id": service_id,
        "client": caller.iss,
        "card": item.card,
        "outcome": item.outcome,
        "accepted_suggestions": list(item.accepted_suggestions),
        "override_code": code,
        "outcome_timestamp": item.outcome_timestamp,
    }


# ------------------------------------------------------------------------------------------- answering


class _CannotFetchError(Exception):
    """Required data is neither in the prefetch nor obtainable from the client's FHIR server."""


def _precondition_failed(what: Sequence[str]) -> ApiError:
    return ApiError(
        412,
        "prefetch_missing",
        "required data was not prefetched and cannot be read from the client's FHIR server: "
        + ", ".join(what),
        errors=[
            {"code": "prefetch_missing", "field": f"prefetch.{w}", "value": None, "message": "not provided"}
            for w in what
        ],
    )


def _fhir_get(hook: HookRequest, settings: CdsSettings, query: str) -> list[dict[str, Any]]:
    """GET ``query`` (relative) from the client's FHIR server; the resources found (Bundles paged)."""
    if not hook.fhir_server or not hook.fhir_authorization or not settings.may_query(hook.fhir_server):
        raise _CannotFetchError(query)
    token = str(hook.fhir_authorization.get("access_token", ""))
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    base = hook.fhir_server.rstrip("/")
    url: str | None = f"{base}/{query.lstrip('/')}"
    found: list[dict[str, Any]] = []
    pages = 0
    try:
        with httpx.Client(timeout=settings.fhir_timeout_seconds, follow_redirects=False) as client:
            while url and pages < 10:
                pages += 1
                response = client.get(url, headers=headers)
                if response.status_code == 404 and pages == 1 and "?" not in query:
                    return []
                if response.status_code != 200:
                    raise _CannotFetchError(query)
                data = response.json()
                if not isinstance(data, Mapping):
                    raise _CannotFetchError(query)
                found.extend(flatten_resources([data]))
                url = None
                if data.get("resourceType") == "Bundle":
                    for link in data.get("link") or []:
                        if isinstance(link, Mapping) and link.get("relation") == "next":
                            nxt = str(link.get("url") or "")
                            url = nxt if settings.may_query(nxt) else None  # only pages of allowed servers
    except (httpx.HTTPError, ValueError):
        raise _CannotFetchError(query) from None
    return found


def _governing(policies: PolicySet, codes: Sequence[str], routing: Mapping[str, str]) -> list[Policy]:
    """The policy the plan applies to this order for this member ([] when none governs it or none is
    in force for the member's line of business: no coverage assertion is made)."""
    if not codes:
        return []
    try:
        found = policies.for_order(codes, **routing)
    except NoPolicyApplies as exc:
        log.info("cds order not routed: %s", exc.code)
        return []
    return [found] if found is not None else []


def _questionnaire_url(policy: Policy) -> str | None:
    try:
        from medpolicy.interop import dtr
    except ImportError:  # pragma: no cover - the DTR face is optional
        return f"https://medpolicy.dev/fhir/Questionnaire/{policy.id}"
    fn = getattr(dtr, "questionnaire_url", None)
    return str(fn(policy)) if callable(fn) else f"https://medpolicy.dev/fhir/Questionnaire/{policy.id}"


def _answer(
    hook: HookRequest,
    service: CdsService,
    caller: VerifiedCaller,
    settings: CdsSettings,
    policies: PolicySet,
    store: Store,
    base_url: str,
) -> tuple[dict[str, Any], list[Future[None]]]:
    """The hook's answer and the commits of its determinations; the caller awaits them before
    answering, so a 2xx means stored (without holding a thread while the store syncs)."""
    if not hook.wants("coverage-info"):
        return {"cards": []}, []  # the client switched coverage information off; nothing else is given
    plan = prefetch_status(hook, service)
    resources = list(plan.resources)

    # 1. the orders: draft orders come in the context; dispatched orders and appointment basedOn
    #    orders come from the prefetch or are read from the client's FHIR server.
    known = {f"{r.get('resourceType')}/{r.get('id')}" for r in resources}
    for ref in referenced_orders(hook):
        if ref not in known:
            with contextlib.suppress(_CannotFetchError):  # reported below as missing
                resources.extend(_fhir_get(hook, settings, ref))
    items, missing_refs = orders_of(hook, resources)
    if missing_refs:
        raise _precondition_failed(missing_refs)

    # 2. which orders a policy governs; the others get no assertion (nothing to say about them)
    #    the plan's routing picks the policy by the member's Coverage (line of business, group)
    relevant: list[tuple[OrderItem, list[str], list[Policy]]] = []
    routing = coverage_routing(resources)
    for item in items:
        codes = list(dict.fromkeys(c for src in item.code_sources for c in order_codes(src)))
        governing = _governing(policies, codes, routing)
        if governing:
            relevant.append((item, codes, governing))
    if not relevant:
        log.debug("cds call service=%s orders=%d governed=0", service.id, len(items))
        return {"cards": []}, []

    # 3. the clinical data the policy needs: prefetch, else the client's FHIR server, else 412
    still_missing: list[str] = []
    for key in plan.missing:
        query = plan.queries.get(key)
        if query is None:
            still_missing.append(key)
            continue
        try:
            resources.extend(_fhir_get(hook, settings, query))
        except _CannotFetchError:
            still_missing.append(key)
    if still_missing:
        raise _precondition_failed(still_missing)

    # 4. decide every governed order first (a rejected case stores nothing), then store and answer
    decided: list[tuple[OrderItem, list[str], Policy, Mapping[str, Any], Any]] = []
    for item, codes, governing in relevant:
        policy = governing[0]
        target = item.target
        primary = next((s for s in item.code_sources if s.get("resourceType") == "ServiceRequest"), target)
        dos = order_date(target) or order_date(primary)
        try:
            extracted = extract_case(primary, resources, procedure_codes=codes, date_of_service=dos)
        except CaseError as exc:
            raise _case_error(exc, item.reference, {}) from None
        try:
            # Facts of the Patient resource the routed policy declares (the date of birth, for an age).
            from_patient = {k: v for k, v in patient_facts(resources).items() if k in policy.fact_index}
            decided_case: Mapping[str, Any] = {**from_patient, **extracted.case, **routing}
            determination = decide(decided_case, policies, policy_id=policy.id)
        except CaseError as exc:
            raise _case_error(exc, item.reference, extracted.sources) from None
        decided.append((item, codes, policy, decided_case, determination))

    coverage_ref = coverage_reference(resources)
    cards: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    today = datetime.now(UTC).date().isoformat()
    commits: list[Future[None]] = []
    for item, codes, policy, case, determination in decided:
        outcome = str(determination.outcome)
        record, committed = store.submit_rendered(case, determination, client_id=f"cds:{caller.iss}"[:200])
        commits.append(committed)
        governed_codes = [c for c in codes if c in policy.governs.codes]
        assertion = crd.assertion_for(
            outcome,
            prior_authorization=_pa_required(policy, settings),
            billing_codes=governed_codes,
            reason=_reason_text(determination, policy, outcome),
            questionnaire_url=_questionnaire_url(policy),
        )
        if assertion is None:
            continue
        policy_url = settings.policy_url_template.format(base_url=base_url, policy_id=policy.id)
        if len(cards) < min(settings.max_cards, _max_cards(hook)):
            cards.append(
                crd.information_card(
                    assertion,
                    card_uuid=new_uuid(),
                    policy_title=policy.title,
                    policy_url=policy_url,
                    source_label=settings.payer_label,
                    crd_version=hook.crd_version,
                    order_reference=item.reference,
                )
            )
        if coverage_ref is None:
            continue  # no Coverage: the coverage-information extension cannot be given (coverage 1..1)
        extension = crd.coverage_information_extension(
            assertion,
            coverage_reference=coverage_ref,
            assertion_id=record.id,
            assertion_date=today,
        )
        updated = crd.with_coverage_information(item.target, [extension])
        actions.append(crd.system_action(updated, f"Coverage information for {item.reference}"))
    if coverage_ref is None and len(cards) < _max_cards(hook):
        cards.append(_no_coverage_card(settings))
    log.debug("cds call service=%s orders=%d governed=%d", service.id, len(items), len(relevant))
    answer: dict[str, Any] = {"cards": cards}
    if actions:
        answer["systemActions"] = actions
    return answer, commits


def _max_cards(hook: HookRequest) -> int:
    value = hook.configuration.get("max-cards")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1_000


def _pa_required(policy: Policy, settings: CdsSettings) -> bool:
    if settings.pa_needed == "no-auth":
        return False
    return bool(getattr(policy, "prior_authorization", True))


def _case_error(exc: CaseError, order_ref: str, sources: Mapping[str, Sequence[str]]) -> ApiError:
    """A rejected case as 422, each problem naming the order and the FHIR resources the fact came from."""
    problems = []
    for fe in exc.errors:
        fact = fe.field.split("[", 1)[0].split(".", 1)[0]
        origin = ", ".join(sources.get(fact, ())) or order_ref
        problems.append(
            {
                "code": fe.code,
                "field": fe.field,
                "value": fe.value if isinstance(fe.value, str | int | float | bool | None) else str(fe.value),
                "message": f"{fe.message} (order {order_ref}; from {origin})",
            }
        )
    first = problems[0] if problems else {"field": None, "message": "the case is invalid"}
    message = str(first["message"]) if len(problems) == 1 else f"the case has {len(problems)} invalid fields"
    field_name = first["field"]
    return ApiError(
        422,
        "invalid_case",
        message,
        field=field_name if isinstance(field_name, str) else None,
        errors=problems,
    )


def _reason_text(determination: Determination, policy: Policy, outcome: str) -> str:
    """The reason in plain words, from the determination (no patient identifiers)."""
    explanation = determination.summary.strip() or None
    questions = [m.question.strip() for m in determination.missing_facts if m.question.strip()]
    if outcome == "medically_necessary":
        base = explanation or f"The request meets the criteria of the medical policy {policy.title!r}."
    elif outcome == "information_needed":
        base = explanation or f"The medical policy {policy.title!r} cannot be applied with the data on file."
        if questions:
            base += " Still needed: " + " ".join(questions)
    else:
        base = "On the data on file, the criteria of the medical policy are not shown to be met."
        if explanation:
            base += f" Recommendation (not a decision): {explanation}"
        base += " A physician reviewer decides."
    return base


def _no_coverage_card(settings: CdsSettings) -> dict[str, Any]:
    return {
        "uuid": new_uuid(),
        "summary": "No active coverage on file: coverage requirements cannot be stated",
        "detail": "The EHR holds no active Coverage for this patient, so no coverage assertion can be made.",
        "indicator": "warning",
        "source": {"label": settings.payer_label},
    }
