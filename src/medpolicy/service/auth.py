"""Bearer-token authentication of API clients (every endpoint except CDS Hooks, which use JWTs).

Tokens are configured per client (`MEDPOLICY_CLIENTS`, see `medpolicy.service.settings`). The
service keeps only their SHA-256 digests in memory and looks the presented token's digest up, so
the comparison does not leak a token through timing, and no token is ever logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from medpolicy.security_log import security_event
from medpolicy.service.errors import ApiError
from medpolicy.service.settings import REVIEWER_ROLES, ClientConfig

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="medpolicy"'}


@dataclass(frozen=True)
class Client:
    """An authenticated API client."""

    client_id: str
    roles: frozenset[str]

    @property
    def is_reviewer(self) -> bool:
        return bool(self.roles & REVIEWER_ROLES)


class TokenTable:
    """Digest of each configured token -> its client."""

    def __init__(self, clients: Iterable[ClientConfig]) -> None:
        self._by_digest = {
            _digest(c.token): Client(client_id=c.client_id, roles=frozenset(c.roles)) for c in clients
        }

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, authorization: bytes | None) -> Client | None:
        """The client of a valid `Bearer <token>` header, else None; no security event (a caller that
        gets None and refuses must go through `authenticate`, which records the failure)."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token or not token.isascii():
            return None  # (a non-ASCII token is left to `authenticate`, which reads headers as latin-1)
        return self._by_digest.get(hashlib.sha256(token).digest())

    def authenticate(self, authorization: str | None) -> Client:
        """The client of an `Authorization: Bearer <token>` header; raises ApiError 401 otherwise."""
        if not authorization:
            security_event("api_auth_failed", principal="-", reason="no_token")
            raise ApiError(401, "unauthorized", "a bearer token is required", headers=UNAUTHORIZED_HEADERS)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            security_event("api_auth_failed", principal="-", reason="not_a_bearer_token")
            raise ApiError(
                401,
                "unauthorized",
                "the authorization header must be 'Bearer <token>'",
                headers=UNAUTHORIZED_HEADERS,
            )
        client = self._by_digest.get(_digest(token))
        if client is None:
            security_event("api_auth_failed", principal="-", reason="invalid_token")
            raise ApiError(
                401, "invalid_token", "the bearer token is not valid", headers=UNAUTHORIZED_HEADERS
            )
        return client


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()
