"""Da Vinci DTR endpoints (FHIR R4, under ``/fhir``). Translation lives in :mod:`medpolicy.interop.dtr`.

    POST /fhir/Questionnaire/$questionnaire-package   DTR 2.0.1: Parameters in, Parameters out
    POST /fhir/Questionnaire/$next-question           SDC/DTR adaptive form: Parameters in and out
    GET  /fhir/Questionnaire/{id}                     a questionnaire of ours (static or adaptive)
    POST /fhir/QuestionnaireResponse/$determine       a response (alone, or in Parameters with the
                                                      Questionnaire it answers) -> case -> determination
    POST /fhir/Questionnaire/$log-questionnaire-errors a DTR application's report of what went wrong
                                                      with one of our questionnaires (stored)
    GET|POST /fhir/ValueSet/$expand                   the answers of an enum fact (url, filter, offset,
                                                      count; query string or Parameters)

Every endpoint needs the client's bearer token. Errors are OperationOutcomes (400/404/422).
Determinations of completed responses are stored (`/v1/determinations/{id}` reads them back).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from medpolicy import PolicySet, strictjson
from medpolicy.interop import dtr
from medpolicy.service.deps import get_policies, get_store, require_client
from medpolicy.service.errors import FHIR_MEDIA_TYPE, ApiError
from medpolicy.store import Store

__all__ = ["FHIR_PATH_PREFIXES", "fhir_error", "fhir_response", "read_json", "router"]

FHIR_PATH_PREFIXES = ("/fhir",)

router = APIRouter(prefix="/fhir", tags=["DTR"])

PoliciesDep = Annotated[PolicySet, Depends(get_policies)]
StoreDep = Annotated[Store, Depends(get_store)]
ClientIdDep = Annotated[str, Depends(require_client)]


def fhir_response(
    resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(resource, status_code=status, media_type=FHIR_MEDIA_TYPE, headers=headers)


def fhir_error(exc: dtr.FhirInputError) -> ApiError:
    """A translation error as the service's ApiError (rendered as an OperationOutcome under /fhir)."""
    first = exc.problems[0]
    return ApiError(
        exc.status,
        exc.code,
        exc.message,
        field=first.field,
        value=first.value,
        errors=[p.to_dict() for p in exc.problems],
    )


async def read_json(request: Request) -> Any:
    """The request body as JSON; 400 ``invalid_json`` (OperationOutcome) when it is not."""
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "empty_body", "the request has no body; a FHIR resource is expected")
    try:
        return strictjson.loads(raw)  # no NaN, duplicate keys, lone surrogates or deep nesting
    except strictjson.JsonInputError as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc.message}") from None


@router.post(
    "/Questionnaire/$questionnaire-package",
    summary="DTR $questionnaire-package: the questionnaires the orders need",
    response_class=JSONResponse,
)
async def questionnaire_package(
    request: Request, policies: PoliciesDep, _client: ClientIdDep
) -> JSONResponse:
    body = await read_json(request)
    try:
        result = await run_in_threadpool(dtr.questionnaire_package, body, policies)
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None
    return fhir_response(result.parameters)


@router.post(
    "/Questionnaire/$next-question",
    summary="SDC/DTR adaptive form: the next question, or the completed response",
    response_class=JSONResponse,
)
async def next_question(
    request: Request, policies: PoliciesDep, store: StoreDep, client_id: ClientIdDep
) -> JSONResponse:
    body = await read_json(request)

    def work() -> dict[str, Any]:
        result = dtr.next_question(body, policies)
        if result.complete and result.determination is not None:
            record = store.save_determination(result.case, result.determination, client_id=client_id)
            _add_determination_id(result.questionnaire_response, record.id)
        return result.parameters

    try:
        parameters = await run_in_threadpool(work)
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None
    return fhir_response(parameters)


def _add_determination_id(qr: dict[str, Any], determination_id: str) -> None:
    for ext in qr.get("extension") or []:
        if ext.get("url") == dtr.DETERMINATION_EXT:
            ext.setdefault("extension", []).append(
                {"url": "determinationId", "valueString": determination_id}
            )


@router.post(
    "/Questionnaire/$log-questionnaire-errors",
    summary="DTR $log-questionnaire-errors: a DTR application reports problems with a questionnaire",
    response_class=JSONResponse,
)
async def log_questionnaire_errors(request: Request, store: StoreDep, client_id: ClientIdDep) -> JSONResponse:
    body = await read_json(request)
    try:
        report = await run_in_threadpool(dtr.parse_questionnaire_errors, body)
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None
    # Acknowledged means stored; the report reaches the policy analysts through the store, never a log.
    report_id = await run_in_threadpool(
        lambda: store.record_questionnaire_errors(
            client=client_id, questionnaire=report.questionnaire, outcome=report.outcome
        )
    )
    issues = len(report.outcome.get("issue") or [])
    return fhir_response(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"recorded as report {report_id}: {issues} issue(s) with {report.questionnaire}",
                }
            ],
        }
    )


@router.get(
    "/ValueSet/$expand",
    summary="ValueSet $expand (query: url, filter, offset, count)",
    response_class=JSONResponse,
)
async def expand_get(request: Request, policies: PoliciesDep, _client: ClientIdDep) -> JSONResponse:
    query = request.query_params
    try:
        wanted = dtr.expand_arguments({k: query.get(k) for k in ("url", "filter", "offset", "count")})
        return fhir_response(dtr.expand_value_set(wanted, policies, now=datetime.now(UTC)))
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None


@router.post("/ValueSet/$expand", summary="ValueSet $expand (Parameters in)", response_class=JSONResponse)
async def expand_post(request: Request, policies: PoliciesDep, _client: ClientIdDep) -> JSONResponse:
    body = await read_json(request)
    try:
        wanted = await run_in_threadpool(dtr.expand_request, body)  # validates the Parameters (model)
        return fhir_response(dtr.expand_value_set(wanted, policies, now=datetime.now(UTC)))
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None


@router.get(
    "/Questionnaire/{questionnaire_id}", summary="A questionnaire of ours", response_class=JSONResponse
)
async def read_questionnaire(
    questionnaire_id: str, policies: PoliciesDep, _client: ClientIdDep
) -> JSONResponse:
    for policy in policies:
        if questionnaire_id == policy.id:
            q = await run_in_threadpool(dtr.build_questionnaire, policy, policies)
            return fhir_response(q)
        if questionnaire_id == f"{policy.id}-adaptive":
            return fhir_response(dtr.build_adaptive_questionnaire(policy))
    raise ApiError(
        404,
        "questionnaire_not_found",
        f"no questionnaire {questionnaire_id!r}",
        field="id",
        value=questionnaire_id,
    )


@router.post(
    "/QuestionnaireResponse/$determine",
    summary="A completed QuestionnaireResponse -> case -> determination (stored)",
    response_class=JSONResponse,
)
async def determine_response(
    request: Request, policies: PoliciesDep, store: StoreDep, client_id: ClientIdDep
) -> JSONResponse:
    body = await read_json(request)

    def work() -> tuple[dict[str, Any], str | None]:
        result = dtr.determine_questionnaire_response(body, policies)
        qr = dict(result.questionnaire_response)
        det_id: str | None = None
        extensions = [e for e in qr.get("extension") or [] if e.get("url") != dtr.DETERMINATION_EXT]
        if result.determination is not None:
            record = store.save_determination(result.case, result.determination, client_id=client_id)
            det_id = record.id
            extensions.append(dtr.determination_extension(result.determination, determination_id=det_id))
        else:
            extensions.append(dtr.no_policy_extension())
        qr["extension"] = extensions
        return qr, det_id

    try:
        qr, det_id = await run_in_threadpool(work)
    except dtr.FhirInputError as exc:
        raise fhir_error(exc) from None
    headers = {"Content-Location": f"/v1/determinations/{det_id}"} if det_id else None
    return fhir_response(qr, headers=headers)
