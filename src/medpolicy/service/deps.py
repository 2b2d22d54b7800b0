"""FastAPI dependencies shared by every router of the service.

    get_settings()    -> Settings           the service's settings
    get_policies()    -> PolicySet          loaded once at startup
    get_store()       -> Store              the determinations / prior-auth store
    get_client()      -> Client             the authenticated client (401 otherwise)
    require_client()  -> str                the authenticated client's id (401 otherwise)

They are plain functions, so they may also be called directly with the request. FastAPI runs a
plain-function dependency in its thread pool; hot endpoints use the `async` twins
(`store_dep`, `client_dep`), which skip that hop. Use them as `Depends(...)` parameters, for example
`def handler(store: Store = Depends(get_store), client_id: str = Depends(require_client))`.
CDS Hooks endpoints authenticate with signed JWTs instead and must not use `require_client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from medpolicy.service.auth import Client, TokenTable
from medpolicy.service.errors import ApiError
from medpolicy.service.settings import Settings
from medpolicy.store import Store

if TYPE_CHECKING:
    from medpolicy import PolicySet


@dataclass
class ServiceState:
    """What `create_app` builds once and every request shares (at `app.state.medpolicy`)."""

    settings: Settings
    store: Store
    policies: PolicySet | None
    tokens: TokenTable


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.medpolicy
    return state


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


def get_policies(request: Request) -> PolicySet:
    policies = get_state(request).policies
    if policies is None:
        raise ApiError(503, "no_policies", "the service has no policies loaded")
    return policies


def get_store(request: Request) -> Store:
    return get_state(request).store


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A bearer token per client, configured with MEDPOLICY_CLIENTS.",
)


def get_client(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Client:
    return authenticated(
        request, get_state(request).tokens.authenticate(request.headers.get("authorization"))
    )


def authenticated(request: Request, client: Client) -> Client:
    """Record `client` on the request: its id, and its principal for the access log."""
    request.state.client_id = client.client_id
    request.state.principal = f"client:{client.client_id}"
    return client


def require_client(client: Annotated[Client, Depends(get_client)]) -> str:
    return client.client_id


async def store_dep(request: Request) -> Store:
    """`get_store` without a thread hop (for async endpoints on the hot path)."""
    return get_state(request).store


async def client_dep(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Client:
    """`get_client` without a thread hop."""
    return authenticated(
        request, get_state(request).tokens.authenticate(request.headers.get("authorization"))
    )
