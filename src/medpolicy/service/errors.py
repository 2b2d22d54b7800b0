"""One error shape for every endpoint.

Our own API (`/v1/...`, and everything that is not FHIR) answers every error with

    {"error": {"code": "<stable_snake_case>", "message": "...", "field": ... | null,
               "value": ... | null, "errors": [{"code", "field", "value", "message"}, ...]}}

FHIR endpoints (paths under a prefix in `FHIR_PATH_PREFIXES`, default `/fhir`) answer the same
errors as a FHIR `OperationOutcome` whose issues carry the same stable code in `details.coding`.

Error hierarchy of the service (all rendered by `install_error_handlers`):

    ApiError                         raised by routers: status, code, message, field, value, errors
    medpolicy.CaseError              -> 422 invalid_case, one entry per FieldError
    medpolicy.errors.PolicyNotFound  -> 404 policy_not_found
    medpolicy.errors.NoPolicyApplies -> 422 no_policy_applies
    RequestValidationError (FastAPI) -> 422 invalid_request (or invalid_json), one entry per problem
    StarletteHTTPException           -> its status: not_found, method_not_allowed, ...
    any other exception              -> 500 internal_error (logged with its traceback, never the body)

Routers of other faces raise `ApiError`; they never build error bodies by hand.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medpolicy.errors import CaseError, NoPolicyApplies, PolicyNotFound
from medpolicy.limits import LIMITS

log = logging.getLogger("medpolicy.service")

FHIR_MEDIA_TYPE = "application/fhir+json"
ERROR_CODE_SYSTEM = "https://medpolicy.dev/fhir/CodeSystem/error-code"

#: Paths under these prefixes are FHIR endpoints and answer errors as OperationOutcome.
FHIR_PATH_PREFIXES: tuple[str, ...] = ("/fhir",)

_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    503: "service_unavailable",
}

# FHIR IssueType for each HTTP status we answer (http://hl7.org/fhir/issue-type).
_FHIR_ISSUE_TYPES: Mapping[int, str] = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    431: "too-long",
    500: "exception",
    503: "transient",
}


class ApiError(Exception):
    """An error answered to the caller: HTTP status, stable code, message, and optional details.

    `errors` lists the individual problems (each a mapping with `code`, `field`, `value`,
    `message`) when there is more than one, such as every invalid field of a case.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.value = value
        # At most LIMITS.max_errors_listed problems are listed; the message gives the count.
        self.errors = [dict(e) for e in errors[: LIMITS.max_errors_listed]]
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, field=self.field, value=self.value, errors=self.errors)


def error_body(
    code: str,
    message: str,
    *,
    field: str | None = None,
    value: Any = None,
    errors: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON body of an error of our own API."""
    return {
        "error": {
            "code": code,
            "message": message,
            "field": field,
            "value": value,
            "errors": [
                {
                    "code": e.get("code"),
                    "field": e.get("field"),
                    "value": e.get("value"),
                    "message": e.get("message"),
                }
                for e in errors
            ],
        }
    }


def operation_outcome(error: ApiError) -> dict[str, Any]:
    """The same error as a FHIR OperationOutcome (valid in R4 and R5)."""
    issue_type = _FHIR_ISSUE_TYPES.get(error.status, "processing")
    problems = error.errors or [
        {"code": error.code, "field": error.field, "value": error.value, "message": error.message}
    ]
    issues = []
    for problem in problems:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": issue_type,
            "details": {
                "coding": [{"system": ERROR_CODE_SYSTEM, "code": str(problem.get("code") or error.code)}],
                "text": str(problem.get("message") or error.message),
            },
            "diagnostics": error.message,
        }
        if problem.get("field"):
            issue["expression"] = [str(problem["field"])]
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues}


def is_fhir_path(path: str) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in FHIR_PATH_PREFIXES)


def register_fhir_prefix(prefix: str) -> None:
    """Declare that paths under `prefix` are FHIR endpoints (errors become OperationOutcome)."""
    global FHIR_PATH_PREFIXES  # a process-wide registry of path prefixes, set while apps are built
    if prefix not in FHIR_PATH_PREFIXES:
        FHIR_PATH_PREFIXES = (*FHIR_PATH_PREFIXES, prefix)


def render_error(path: str, error: ApiError) -> JSONResponse:
    """Render `error` for a request to `path`: OperationOutcome on FHIR paths, our shape elsewhere."""
    headers = dict(error.headers)
    if is_fhir_path(path):
        return JSONResponse(
            operation_outcome(error), status_code=error.status, headers=headers, media_type=FHIR_MEDIA_TYPE
        )
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def case_error(exc: Exception) -> ApiError:
    """`medpolicy.CaseError` as a 422 `invalid_case`, one entry per `FieldError`."""
    problems = [
        {
            "code": getattr(fe, "code", None),
            "field": getattr(fe, "field", None),
            "value": _jsonable(getattr(fe, "value", None)),
            "message": getattr(fe, "message", None),
        }
        for fe in getattr(exc, "errors", ())
    ]
    if len(problems) == 1:
        p = problems[0]
        return ApiError(
            422, "invalid_case", str(p["message"]), field=p["field"], value=p["value"], errors=problems
        )
    count = len(problems)
    listed = (
        "" if count <= LIMITS.max_errors_listed else f" (the first {LIMITS.max_errors_listed} are listed)"
    )
    return ApiError(422, "invalid_case", f"the case has {count} invalid fields{listed}", errors=problems)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A value an error may echo: JSON-safe (finite, valid Unicode, 64-bit integers) and short (strings
    clipped, at most 10 items, 3 levels): an echo never carries a whole submitted case back."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else "an integer out of range"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        n = LIMITS.max_echo_chars
        text = value if len(value) <= n else f"{value[:n]}... ({len(value)} characters)"
        return text.encode("utf-8", "replace").decode("utf-8")
    if depth >= 3:
        return "..."
    if isinstance(value, list | tuple):
        shown = [_jsonable(v, depth + 1) for v in value[:10]]
        return shown if len(value) <= 10 else [*shown, f"... ({len(value)} items)"]
    if isinstance(value, Mapping):
        items = list(value.items())
        shown_map = {_jsonable(str(k)): _jsonable(v, depth + 1) for k, v in items[:10]}
        if len(items) > 10:
            shown_map["..."] = f"{len(items)} keys"
        return shown_map
    return type(value).__name__


def _validation_error(exc: RequestValidationError) -> ApiError:
    problems = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        problems.append(
            {
                "code": str(err.get("type", "invalid")),
                "field": ".".join(loc) or None,
                "value": _jsonable(err.get("input")) if err.get("type") != "missing" else None,
                "message": str(err.get("msg", "invalid value")).lower(),
            }
        )
    invalid_json = next((err for err in exc.errors() if err.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        why = str((invalid_json.get("ctx") or {}).get("error") or "").strip()
        message = (
            f"the request body is not valid JSON: {why}" if why else "the request body is not valid JSON"
        )
        problem = {"code": "json_invalid", "field": "body", "value": None, "message": message}
        return ApiError(422, "invalid_json", message, errors=[problem])
    if len(problems) == 1:
        p = problems[0]
        return ApiError(
            422,
            "invalid_request",
            f"{p['field']}: {p['message']}",
            field=p["field"],
            value=p["value"],
            errors=problems,
        )
    return ApiError(422, "invalid_request", f"the request has {len(problems)} problems", errors=problems)


def _http_error(exc: StarletteHTTPException) -> ApiError:
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    default = {
        404: "no such endpoint",
        405: "method not allowed on this endpoint",
    }.get(exc.status_code, str(exc.detail).lower())
    message = default if exc.detail in (None, "Not Found", "Method Not Allowed") else str(exc.detail)
    return ApiError(exc.status_code, code, message, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of `app` take the one shape (or OperationOutcome on FHIR paths)."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return render_error(request.url.path, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return render_error(request.url.path, _validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return render_error(request.url.path, _http_error(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The server logs the traceback; this line ties it to the request id, without the body.
        log.error(
            "unhandled %s on %s %s request_id=%s",
            type(exc).__name__,
            request.method,
            request.url.path,
            getattr(request.state, "request_id", "-"),
        )
        return render_error(
            request.url.path, ApiError(500, "internal_error", "the service failed; it has been logged")
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)

    async def on_case_error(request: Request, exc: Exception) -> JSONResponse:
        return render_error(request.url.path, case_error(exc))

    async def on_policy_not_found(request: Request, exc: Exception) -> JSONResponse:
        return render_error(request.url.path, ApiError(404, "policy_not_found", _first_line(exc)))

    async def on_no_policy(request: Request, exc: Exception) -> JSONResponse:
        return render_error(request.url.path, ApiError(422, "no_policy_applies", _first_line(exc)))

    app.add_exception_handler(CaseError, on_case_error)
    app.add_exception_handler(PolicyNotFound, on_policy_not_found)
    app.add_exception_handler(NoPolicyApplies, on_no_policy)
    app.add_exception_handler(Exception, on_unexpected)
