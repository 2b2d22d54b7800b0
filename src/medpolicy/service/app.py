"""The HTTP service: `create_app(settings)` builds the FastAPI application.

Layers, outermost first: CORS (only when origins are configured), `ServiceMiddleware` (request id,
body-size limit, header and NUL guards, HSTS, catch-all 500, access log), error handlers, routers
(`/v1` ours; CDS Hooks, DTR and PAS when their modules are present). The store is opened (and
migrated) and the policies are loaded once, here; routers reach them through `medpolicy.service.deps`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from medpolicy import limits
from medpolicy.service import errors
from medpolicy.service.auth import TokenTable
from medpolicy.service.deps import ServiceState
from medpolicy.service.docs_offline import install_offline_docs
from medpolicy.service.errors import install_error_handlers
from medpolicy.service.middleware import ServiceMiddleware
from medpolicy.service.settings import Settings
from medpolicy.store import Store

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
    hot = dict(v1.HOT_ROUTES)  # routes with a fast path (see ServiceMiddleware)
    for name in OPTIONAL_ROUTERS:
        module = _optional_module(name)
        if module is None:
            continue
        for prefix in getattr(module, "FHIR_PATH_PREFIXES", ()):
            errors.register_fhir_prefix(prefix)
        app.include_router(module.router)
        hot.update(getattr(module, "HOT_ROUTES", {}))

    # request id, body limit, header and NUL guards, HSTS, catch-all 500, access log: one layer
    app.add_middleware(
        ServiceMiddleware,
        max_body_bytes=settings.max_body_bytes,
        hot=hot,
        exception_handlers=app.exception_handlers,
    )
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
