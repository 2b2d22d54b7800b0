"""CDS Hooks client authentication: verify the signed JWT a CDS Client presents on every call.

CDS Hooks 2.0, "Trusting CDS Clients": the client sends ``Authorization: Bearer <JWT>``, signed with its
private key; header ``alg``, ``kid``, ``typ: JWT`` and optional ``jku``; payload ``iss``, ``aud`` (the
exact URL of the CDS Service endpoint called), ``exp``, ``iat``, ``jti`` and optional ``tenant``.

This verifier

* accepts only asymmetric algorithms from an allowlist (default ES256, ES384, RS384); ``none`` and every
  HMAC algorithm are refused before any key is looked at;
* finds the client by ``iss`` among the configured trusted clients; an unknown issuer is refused;
* takes the key from that client's configured JWK Set by ``kid`` (inline JWKS, or a JWKS URL configured
  for that client and fetched by the service; a ``jku`` header is only honoured when it equals the
  configured URL: the service never fetches a URL a caller names);
* requires ``iss``, ``aud``, ``exp``, ``iat`` and ``jti``; ``aud`` must equal the service URL (string or
  list); ``exp`` must not be past and ``iat`` not in the future (both with a small leeway); the token
  lifetime ``exp - iat`` is bounded;
* refuses a replayed ``jti`` (per issuer) while the token could still be valid, with a bounded,
  time-expiring, thread-safe cache.

Errors are :class:`JwtError` with a stable ``code``; messages never contain the token or its claims.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from medpolicy import strictjson

__all__ = [
    "ALLOWED_ALGORITHMS",
    "CdsJwtVerifier",
    "JwksFetchNeeded",
    "JwtError",
    "ReplayCache",
    "TrustedClient",
    "VerifiedCaller",
    "bearer_token",
    "clients_from_json",
]

#: Asymmetric algorithms accepted by default (CDS Hooks recommends ES384 and RS384).
ALLOWED_ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "RS384")
_FORBIDDEN_PREFIXES = ("HS", "NONE")


class JwtError(Exception):
    """The caller's JWT was refused. ``code`` is stable; ``message`` is safe to return and to log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TrustedClient:
    """A CDS Client the service trusts.

    Attributes:
        iss: the issuer the client puts in ``iss`` (exact match).
        jwks: its public JWK Set (``{"keys": [...]}``), inline.
        jwks_url: where to fetch its JWK Set instead (or in addition); only fetched when configured.
        tenant: when set, the token's ``tenant`` claim must equal it.
    """

    iss: str
    jwks: Mapping[str, Any] | None = None
    jwks_url: str | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class VerifiedCaller:
    """Who called: the verified issuer, subject, tenant, key id and token id."""

    iss: str
    sub: str | None
    tenant: str | None
    kid: str
    jti: str
    claims: Mapping[str, Any] = field(repr=False, default_factory=dict)


class ReplayCache:
    """Remembers ``(iss, jti)`` pairs until their token expires. Bounded, time-expiring, thread-safe.

    When full, expired entries are dropped first; if it is still full, the entry that expires soonest
    is dropped (token lifetimes are bounded, so with a capacity above the peak number of live tokens
    this never happens in practice).
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def _purge(self, now: float) -> None:
        expired = [k for k, until in self._seen.items() if until <= now]
        for k in expired:
            del self._seen[k]

    def check_and_add(self, iss: str, jti: str, until: float) -> bool:
        """Record ``(iss, jti)`` until ``until`` (epoch seconds); ``False`` if it was already there."""
        now = self._clock()
        key = (iss, jti)
        with self._lock:
            seen_until = self._seen.get(key)
            if seen_until is not None and seen_until > now:
                return False
            if len(self._seen) >= self._max:
                self._purge(now)
                while len(self._seen) >= self._max:
                    soonest = min(self._seen, key=lambda k: self._seen[k])
                    del self._seen[soonest]
            self._seen[key] = until
            return True


class JwksFetchNeeded(Exception):
    """``verify(..., fetch=False)`` would have to fetch a configured JWK Set (absent, stale or lacking the
    ``kid``): verify again with ``fetch=True`` where blocking I/O is allowed (a worker thread)."""


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; :class:`JwtError` if there is none."""
    if not authorization:
        raise JwtError("missing_token", "an Authorization: Bearer JWT is required")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise JwtError("missing_token", "the Authorization header must be 'Bearer <JWT>'")
    return token.strip()


JwksFetcher = Callable[[str], Mapping[str, Any]]


def _fetch_jwks(url: str) -> Mapping[str, Any]:
    import httpx

    response = httpx.get(url, timeout=5.0, follow_redirects=False)
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, Mapping):
        raise ValueError("a JWK Set is a JSON object")
    return data


def _peek(token: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The unverified header and claims, read once: the header names the issuer's key; the claims are
    trusted only once the signature over them verifies. (PyJWT's decode parses the token again, in
    Python, character by character: a third of a CDS call's CPU.)"""
    if len(token) > MAX_TOKEN_CHARS:
        raise JwtError("invalid_token", f"the bearer token is longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
        # three canonical base64url segments (no padding, no stray characters: no malleable tokens)
        raise JwtError("invalid_token", "the bearer token is not a well-formed JWT")
    try:
        header = _HEADERS.get(parts[0])
        if header is None:
            header = strictjson.loads(_b64url(parts[0]))  # no NaN, no duplicate claims
            if isinstance(header, dict) and len(parts[0]) <= 256 and len(_HEADERS) < _MAX_HEADERS:
                _HEADERS[parts[0]] = header
        claims = strictjson.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise JwtError("invalid_token", "the bearer token is not a well-formed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("invalid_token", "the bearer token is not a well-formed JWT")
    return header, claims


#: Longest bearer token read (a CDS Hooks JWT is well under 2 KB; its JWK Set is fetched, not sent).
MAX_TOKEN_CHARS = 8192
#: Longest ``jti`` recorded (the store's column width).
MAX_JTI_CHARS = 200

#: Decoded JWT headers by their base64url text. A client signs every call with the same header (alg,
#: kid, typ), so it is read once; the claims, new in every token, are read each time. Nothing here is
#: trusted before the signature verifies, and the callers only read the header (never change it).
_HEADERS: dict[str, dict[str, Any]] = {}
_MAX_HEADERS = 256  # (headers up to 256 characters: at most ~100 kB, whatever callers send)

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")  # may be empty: an unsigned token then fails on its alg


def _b64url(segment: str) -> bytes:
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode():
        raise ValueError("non-canonical base64url")  # e.g. stray bits in the last character
    return raw


class CdsJwtVerifier:
    """Verifies CDS Hooks client JWTs against configured trusted clients.

    Args:
        clients: the trusted clients (by ``iss``).
        algorithms: accepted ``alg`` values; symmetric algorithms and ``none`` are refused even if listed.
        leeway: clock skew tolerated on ``exp`` and ``iat``, seconds.
        max_lifetime: largest ``exp - iat`` accepted, seconds.
        replay_cache: shared cache of seen ``jti`` (a new one if omitted).
        jwks_fetcher: fetches a configured JWKS URL (default: httpx GET, 5 s timeout).
        jwks_ttl: how long a fetched JWK Set is reused, seconds.
        jwks_min_refresh: least time between two fetches forced by an unknown ``kid``, seconds.
        clock: epoch seconds (for tests).
    """

    def __init__(
        self,
        clients: Iterable[TrustedClient],
        *,
        algorithms: Sequence[str] = ALLOWED_ALGORITHMS,
        leeway: float = 30.0,
        max_lifetime: float = 600.0,
        replay_cache: ReplayCache | None = None,
        jwks_fetcher: JwksFetcher | None = None,
        jwks_ttl: float = 300.0,
        jwks_min_refresh: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = {c.iss: c for c in clients}
        self._algorithms = tuple(a for a in algorithms if not a.upper().startswith(_FORBIDDEN_PREFIXES))
        if not self._algorithms:
            raise ValueError("no asymmetric algorithm is allowed")
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._clock = clock
        self._replay = replay_cache or ReplayCache(clock=clock)
        self._fetch = jwks_fetcher or _fetch_jwks
        self._jwks_ttl = jwks_ttl
        self._jwks_min_refresh = jwks_min_refresh
        self._jwks_cache: dict[str, tuple[float, float, Mapping[str, Any]]] = {}
        self._keys: dict[tuple[str, str], Any] = {}
        self._key_objects: dict[tuple[str, int], tuple[Mapping[str, Any], Any]] = {}
        self._lock = threading.Lock()

    @property
    def issuers(self) -> frozenset[str]:
        return frozenset(self._clients)

    def verify(self, token: str, audience: str, *, fetch: bool = True) -> VerifiedCaller:
        """Verify ``token`` for a call to ``audience`` (the exact URL of the endpoint called).

        With ``fetch=False`` nothing is fetched: when the key must come from a configured JWKS URL that
        is not cached and fresh, :class:`JwksFetchNeeded` is raised before anything is recorded (the
        ``jti`` is not yet marked used), so an event loop can verify at once when the keys are at hand
        and hand the rare fetch to a thread.

        Raises:
            JwtError: with codes ``invalid_token``, ``unsupported_algorithm``, ``unknown_issuer``,
                ``untrusted_jku``, ``unknown_key``, ``invalid_signature``, ``invalid_audience``,
                ``token_expired``, ``token_issued_in_future``, ``token_lifetime_too_long``,
                ``missing_claim``, ``invalid_tenant``, ``token_replayed``.
        """
        header, unverified = _peek(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise JwtError(
                "unsupported_algorithm",
                f"JWT alg must be one of {', '.join(self._algorithms)} (asymmetric signatures only)",
            )
        typ = header.get("typ")
        if typ is not None and str(typ).upper() != "JWT":
            raise JwtError("invalid_token", "JWT header typ must be 'JWT'")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JwtError("invalid_token", "JWT header kid is required")
        iss = unverified.get("iss")
        if not isinstance(iss, str) or iss not in self._clients:
            raise JwtError("unknown_issuer", "the JWT issuer is not a trusted CDS client")
        client = self._clients[iss]
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise JwtError("untrusted_jku", "the JWT jku is not the JWK Set URL configured for this issuer")

        key = self._key_for(client, kid, alg, fetch=fetch)
        # The signature, with PyJWT's implementation of the algorithm (raw r||s for ECDSA, PKCS#1 v1.5
        # for RSA), over the token's own signing input.
        signing_input, _, signature = token.rpartition(".")
        try:
            valid = jwt.get_algorithm_by_name(alg).verify(signing_input.encode(), key, _b64url(signature))
        except (ValueError, TypeError, binascii.Error):
            valid = False
        if not valid:
            raise JwtError("invalid_signature", "the JWT signature does not verify")
        claims = dict(unverified)  # the payload the signature covers
        for name in ("iss", "aud", "exp", "iat", "jti"):
            if name not in claims:
                raise JwtError("missing_claim", f"the JWT claim {name!r} is required")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
        if audiences is None or not all(isinstance(a, str) for a in audiences) or audience not in audiences:
            raise JwtError("invalid_audience", "the JWT aud is not the URL of this CDS service")
        if claims["iss"] != iss:
            raise JwtError("invalid_token", "the JWT is not valid")
        now_check = self._clock()  # claims are checked as strictly as PyJWT does, and more (below)
        exp_value, iat_value, nbf = claims["exp"], claims["iat"], claims.get("nbf")
        for value in (exp_value, iat_value, *(() if nbf is None else (nbf,))):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise JwtError("invalid_token", "the JWT iat, exp and nbf must be finite numbers")
        if exp_value <= now_check - self._leeway:
            raise JwtError("token_expired", "the JWT has expired")
        if nbf is not None and nbf > now_check + self._leeway:
            raise JwtError("token_issued_in_future", "the JWT is not valid yet (nbf)")

        now, iat, exp = now_check, iat_value, exp_value
        if iat > now + self._leeway:
            raise JwtError("token_issued_in_future", "the JWT iat is in the future")
        if exp - iat > self._max_lifetime:
            raise JwtError("token_lifetime_too_long", f"the JWT lifetime exceeds {int(self._max_lifetime)} s")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise JwtError("missing_claim", "the JWT claim 'jti' must be a non-empty string")
        if len(jti) > MAX_JTI_CHARS or "\x00" in jti:
            raise JwtError(
                "invalid_token", f"the JWT jti must be at most {MAX_JTI_CHARS} characters, without NUL"
            )
        tenant = claims.get("tenant")
        if client.tenant is not None and tenant != client.tenant:
            raise JwtError("invalid_tenant", "the JWT tenant is not the one configured for this issuer")
        if not self._replay.check_and_add(iss, jti, float(exp) + self._leeway):
            raise JwtError("token_replayed", "this JWT (jti) has already been used")
        sub = claims.get("sub")
        return VerifiedCaller(
            iss=iss,
            sub=sub if isinstance(sub, str) else None,
            tenant=tenant if isinstance(tenant, str) else None,
            kid=kid,
            jti=jti,
            claims=claims,
        )

    # ------------------------------------------------------------------------------------------- keys

    def _jwks_of(
        self, client: TrustedClient, *, refresh: bool = False, fetch: bool = True
    ) -> list[Mapping[str, Any]]:
        keys: list[Mapping[str, Any]] = []
        if client.jwks is not None:
            keys.extend(k for k in client.jwks.get("keys") or [] if isinstance(k, Mapping))
        if client.jwks_url:
            keys.extend(self._fetched_keys(client.jwks_url, refresh=refresh, fetch=fetch))
        return keys

    def _fetched_keys(self, url: str, *, refresh: bool, fetch: bool = True) -> list[Mapping[str, Any]]:
        """Keys of a configured JWKS URL: cached for ``jwks_ttl``; an unknown ``kid`` may force a refresh,
        at most once per ``jwks_min_refresh`` seconds (an unauthenticated caller cannot make the service
        fetch at will)."""
        now = self._clock()
        with self._lock:
            cached = self._jwks_cache.get(url)
        stale = cached is None or cached[0] <= now
        may_refresh = refresh and (cached is None or now - cached[1] >= self._jwks_min_refresh)
        if stale or may_refresh:
            if not fetch:
                raise JwksFetchNeeded(url)
            try:
                fetched: Mapping[str, Any] = self._fetch(url)
            except Exception:  # any failure to fetch means no new key from there
                fetched = cached[2] if cached else {"keys": []}
            cached = (now + self._jwks_ttl, now, fetched)
            with self._lock:
                self._jwks_cache[url] = cached
        assert cached is not None
        return [k for k in cached[2].get("keys") or [] if isinstance(k, Mapping)]

    def _key_for(self, client: TrustedClient, kid: str, alg: str, *, fetch: bool = True) -> Any:
        for refresh in (False, True):
            if refresh and not client.jwks_url:
                break
            for jwk in self._jwks_of(client, refresh=refresh, fetch=fetch):
                if jwk.get("kid") != kid:
                    continue
                if jwk.get("alg") not in (None, alg):
                    raise JwtError("unsupported_algorithm", "the JWT alg does not match the key's alg")
                if jwk.get("use") not in (None, "sig"):
                    continue
                # Keys are immutable: build each (checked) key object once. Looked up by the JWK
                # object itself (a JWK Set fetched again brings new objects), then by its text.
                known = self._key_objects.get((alg, id(jwk)))
                if known is not None and known[0] is jwk:
                    return known[1]
                cache_key = (alg, json.dumps(jwk, sort_keys=True))
                key = self._keys.get(cache_key)
                if key is None:
                    try:
                        key = jwt.PyJWK(dict(jwk), algorithm=alg).key
                    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                        raise JwtError(
                            "unknown_key", "the issuer's key for this kid cannot be used"
                        ) from None
                    with self._lock:
                        if len(self._keys) < 1_000:
                            self._keys[cache_key] = key
                with self._lock:
                    if len(self._key_objects) < 1_000:  # (the JWK is kept: its id is not reused)
                        self._key_objects[(alg, id(jwk))] = (jwk, key)
                return key
        raise JwtError("unknown_key", "no key with this kid in the issuer's JWK Set")


def clients_from_json(raw: str | Mapping[str, Any]) -> tuple[TrustedClient, ...]:
    """Trusted clients from configuration.

    Shape: ``{"<iss>": {"jwks": {...}, "jwks_url": "...", "tenant": "..."}}`` (``jwks`` or ``jwks_url``).
    """
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, Mapping):
        raise ValueError("CDS clients must be a JSON object of issuer to configuration")
    out: list[TrustedClient] = []
    for iss, spec in data.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"CDS client {iss!r} must be an object with 'jwks' or 'jwks_url'")
        jwks = spec.get("jwks")
        jwks_url = spec.get("jwks_url")
        if jwks is None and not jwks_url:
            raise ValueError(f"CDS client {iss!r} needs 'jwks' or 'jwks_url'")
        if jwks is not None and not isinstance(jwks, Mapping):
            raise ValueError(f"CDS client {iss!r}: 'jwks' must be a JWK Set object")
        out.append(
            TrustedClient(
                iss=str(iss),
                jwks=jwks,
                jwks_url=str(jwks_url) if jwks_url else None,
                tenant=str(spec["tenant"]) if spec.get("tenant") else None,
            )
        )
    return tuple(out)
