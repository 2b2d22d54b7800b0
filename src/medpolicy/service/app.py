"""The HTTP service: `create_app(settings)` builds the FastAPI application.

Layers, outermost first: CORS, request log + request id, body-size limit, error handlers, routers
(`/v1` ours; CDS Hooks, DTR and PAS when their modules are present). The store is opened (and
migrated) and the policies are loaded once, here; routers reach them through `medpolicy.service.deps`.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medpolicy import limits
from medpolicy.service import errors
from medpolicy.service.auth import TokenTable
from medpolicy.service.deps import ServiceState
from medpolicy.service.docs_offline import install_offline_docs
from medpolicy.service.errors import ApiError, install_error_handlers, render_error
from medpolicy.service.hardening import CatchAllMiddleware, GuardMiddleware
from medpolicy.service.settings import Settings
from medpolicy.store import Store

access_log = logging.getLogger("medpolicy.access")
log = logging.getLogger("medpolicy.service")

OPTIONAL_ROUTERS = (
    "medpolicy.service.cds",
    "medpolicy.service.dtr",
    "medpolicy.service.pas",
    "medpolicy.service.fhir",  # GET /fhir/metadata
    "medpolicy.service.extractions",  # POST /v1/extractions
    "medpolicy.service.v1_documents",  # /v1/prior-auth/{id}/documents
    "medpolicy.web",  # the reviewer workbench (pages at /)
)
REQUEST_ID_HEADER = "x-request-id"


def service_version() -> str:
    try:
        from importlib.metadata import version

        return version("medpolicy")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0.0.0"


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """Build the service. `settings` default to `Settings.from_env()`; `store` to one opened from them."""
    settings = settings or Settings.from_env()
    limits.configure(date_horizon_days=settings.date_horizon_days)
    policies = _load_policies(settings)
    if store is None:
        store = Store.open(settings.resolved_database_url, policies=policies)
    elif store.policies is None:
        store.policies = policies
    store.auto_approve_extracted = settings.auto_approve_extracted  # facts read from documents

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="medpolicy",
        version=service_version(),
        summary="Medical policies as code: determinations, prior authorization, CDS Hooks, DTR and PAS.",
        lifespan=lifespan,
        docs_url=None,  # served offline below, under the workbench's CSP
        redoc_url=None,
    )
    app.state.medpolicy = ServiceState(
        settings=settings, store=store, policies=policies, tokens=TokenTable(settings.clients)
    )
    install_error_handlers(app)
    install_offline_docs(app)

    from medpolicy.service import v1

    app.include_router(v1.router)
    app.include_router(v1.health_router)
    for name in OPTIONAL_ROUTERS:
        module = _optional_module(name)
        if module is None:
            continue
        for prefix in getattr(module, "FHIR_PATH_PREFIXES", ()):
            errors.register_fhir_prefix(prefix)
        app.include_router(module.router)

    app.add_middleware(CatchAllMiddleware)  # innermost: a 500 keeps the connection open
    app.add_middleware(GuardMiddleware)  # inside the body limit: reads the body it has buffered
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLogMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID", "Accept"],
            expose_headers=["X-Request-ID", "Location", "Idempotent-Replayed"],
            allow_credentials=False,
            max_age=600,
        )
    return app


def _load_policies(settings: Settings) -> Any:
    try:
        from medpolicy import load_policies  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # the core is not built yet: the service answers 503 no_policies
        log.warning("medpolicy.load_policies is not available; deciding is disabled")
        return None
    return load_policies(settings.policies_dir)


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


class RequestLogMiddleware:
    """One log line per request: method, path, status, duration, request id and the authenticated
    principal (`client:<id>`, `user:<username>`, `cds:<issuer>`, or `-`). Never a body or query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, REQUEST_ID_HEADER)
        if not request_id or len(request_id) > 128 or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %d %.1fms request_id=%s principal=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
                scope["state"].get("principal", "-"),  # set when the caller authenticated
            )


class BodyLimitMiddleware:
    """Refuse request bodies over `max_body_bytes` with 413 `payload_too_large`."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        # Read the body here (bounded), then hand it to the app as one message.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_body_bytes} bytes",
            headers={"Connection": "close"},
        )
        await render_error(scope["path"], error)(scope, receive, send)


def _header(scope: Scope, name: str) -> str | None:
    key = name.encode("latin-1")
    for header, value in scope.get("headers", ()):
        if header == key:
            return bytes(value).decode("latin-1")
    return None
