"""CDS Hooks client JWTs over real HTTP: trusted issuers, asymmetric algorithms, exact aud, fresh tokens."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cds_client import CdsClient, cds_service, condition, order_sign_request, service_request
from cryptography.hazmat.primitives.asymmetric import ec
from fhir.resources.R4B.operationoutcome import OperationOutcome

from medpolicy.interop.cdshooks import CdsSettings
from medpolicy.interop.jwt_auth import (
    CdsJwtVerifier,
    JwksFetchNeeded,
    JwtError,
    ReplayCache,
    TrustedClient,
)
from medpolicy.service.app import create_app
from medpolicy.service.testing import LiveServer, running_server, settings_for_tests


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, CdsClient]]:
    with cds_service(tmp_path_factory.mktemp("cds-sec")) as pair:
        yield pair


def _refused(response: object, code: str) -> None:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == 401, response.text
    body = response.json()
    OperationOutcome.model_validate(body)
    assert body["issue"][0]["details"]["coding"][0]["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_discovery_with_a_valid_es384_token(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    response = client.discover()
    assert response.status_code == 200
    hooks = {s["hook"] for s in response.json()["services"]}
    assert hooks == {"order-sign", "order-select", "order-dispatch", "appointment-book"}


def test_discovery_without_a_token_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    _refused(client.http.get(client.url("/cds-services")), "missing_token")


def test_hs256_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    aud = client.url("/cds-services")
    token = client.token(aud, _alg="HS256", _key="a-shared-secret-that-must-never-work-0123")
    _refused(client.discover(token=token), "unsupported_algorithm")


def test_alg_none_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    now = int(time.time())
    claims = {"iss": client.iss, "aud": client.url("/cds-services"), "iat": now, "exp": now + 60, "jti": "x"}
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": client.kid})
    _refused(client.discover(token=token), "unsupported_algorithm")


def test_wrong_audience_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    token = client.token(client.url("/cds-services/medpolicy-crd-order-sign"))  # another endpoint
    _refused(client.discover(token=token), "invalid_audience")
    token = client.token(client.url("/cds-services") + "/")  # not the exact URL
    _refused(client.discover(token=token), "invalid_audience")


def test_audience_may_be_a_list_containing_the_url(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    token = client.token([client.url("/cds-services")])
    assert client.discover(token=token).status_code == 200


def test_expired_token_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    now = int(time.time())
    token = client.token(client.url("/cds-services"), iat=now - 600, exp=now - 300)
    _refused(client.discover(token=token), "token_expired")


def test_token_issued_in_the_future_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    now = int(time.time())
    token = client.token(client.url("/cds-services"), iat=now + 600, exp=now + 700)
    _refused(client.discover(token=token), "token_issued_in_future")


def test_unknown_issuer_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    token = client.token(client.url("/cds-services"), iss="https://attacker.example")
    _refused(client.discover(token=token), "unknown_issuer")


def test_key_not_in_the_issuers_jwks_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    other = ec.generate_private_key(ec.SECP384R1())
    token = client.token(client.url("/cds-services"), _key=other)
    _refused(client.discover(token=token), "invalid_signature")
    token = client.token(client.url("/cds-services"), _headers={"kid": "unknown-kid"})
    _refused(client.discover(token=token), "unknown_key")


def test_replayed_jti_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    token = client.token(client.url("/cds-services"))
    assert client.discover(token=token).status_code == 200
    _refused(client.discover(token=token), "token_replayed")


def test_missing_jti_and_exp_are_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    _refused(client.discover(token=client.token(client.url("/cds-services"), jti=None)), "missing_claim")
    _refused(client.discover(token=client.token(client.url("/cds-services"), exp=None)), "missing_claim")


def test_untrusted_jku_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    token = client.token(client.url("/cds-services"), _headers={"jku": "https://attacker.example/jwks"})
    _refused(client.discover(token=token), "untrusted_jku")


def test_hook_call_checks_its_own_service_url(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    token = client.token(client.url("/cds-services"))  # discovery's aud is not the service's
    response = client.call("medpolicy-crd-order-sign", {}, token=token)
    _refused(response, "invalid_audience")


@pytest.mark.parametrize("alg", ["ES256", "RS384"])
def test_other_allowed_algorithms(tmp_path: Path, alg: str) -> None:
    with cds_service(tmp_path, CdsClient(base_url="x", alg=alg)) as (_, client):
        assert client.discover().status_code == 200


def test_replay_cache_is_bounded_and_expires() -> None:
    now = [1000.0]
    cache = ReplayCache(max_entries=3, clock=lambda: now[0])
    assert cache.check_and_add("i", "a", 1010)
    assert not cache.check_and_add("i", "a", 1010)
    assert cache.check_and_add("other-issuer", "a", 1010)  # jti is per issuer
    assert cache.check_and_add("i", "b", 1005)
    assert cache.check_and_add("i", "c", 1020)  # full: the soonest-expiring entry makes room
    assert len(cache) == 3
    now[0] = 1011
    assert cache.check_and_add("i", "a", 1030)  # expired entries are forgotten


def test_max_lifetime_is_enforced() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    client = CdsClient(base_url="x", key=key)
    verifier = CdsJwtVerifier([TrustedClient(iss=client.iss, jwks=client.jwks())], max_lifetime=300)
    now = int(time.time())
    token = client.token("https://svc/cds-services", iat=now, exp=now + 3600, jti=str(uuid.uuid4()))
    with pytest.raises(JwtError) as info:
        verifier.verify(token, "https://svc/cds-services")
    assert info.value.code == "token_lifetime_too_long"


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        CdsJwtVerifier([], algorithms=["HS256", "none"])


def test_replay_cache_admits_a_jti_once_under_concurrency() -> None:
    from concurrent.futures import ThreadPoolExecutor

    cache = ReplayCache()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: cache.check_and_add("i", "same", time.time() + 60), range(200)))
    assert results.count(True) == 1


def test_jwks_url_is_fetched_only_when_configured_and_refreshed_for_a_new_kid() -> None:
    old = CdsClient(base_url="x", kid="old")
    new = CdsClient(base_url="x", kid="new")
    published = {"keys": old.jwks()["keys"]}
    fetched: list[str] = []

    def fetch(url: str) -> dict:
        fetched.append(url)
        return {"keys": list(published["keys"])}

    url = "https://ehr.test.example/jwks.json"
    now = [time.time()]
    verifier = CdsJwtVerifier(
        [TrustedClient(iss=old.iss, jwks_url=url)],
        jwks_fetcher=fetch,
        jwks_min_refresh=60,
        clock=lambda: now[0],
    )
    aud = "https://svc/cds-services"
    assert verifier.verify(old.token(aud, _headers={"jku": url}), aud).kid == "old"
    published["keys"] = [*old.jwks()["keys"], *new.jwks()["keys"]]  # key rotation
    with pytest.raises(JwtError):  # an unknown kid may not force a fetch again so soon
        verifier.verify(new.token(aud), aud)
    assert fetched == [url]
    now[0] += 61
    assert verifier.verify(new.token(aud), aud).kid == "new"
    assert fetched == [url, url]  # cached, then refreshed once for the unknown kid


def test_cds_settings_from_env() -> None:
    from medpolicy.interop.cdshooks import CdsSettings

    client = CdsClient(base_url="x")
    settings = CdsSettings.from_env(
        {
            "MEDPOLICY_CDS_CLIENTS": json.dumps({client.iss: {"jwks": client.jwks()}}),
            "MEDPOLICY_CDS_BASE_URL": "https://payer.example/api/",
            "MEDPOLICY_CDS_FHIR_SERVERS": "https://ehr.example/fhir, https://other.example/r4",
            "MEDPOLICY_CDS_PA_NEEDED": "no-auth",
        }
    )
    assert settings.clients[0].iss == client.iss
    assert settings.base_url == "https://payer.example/api"
    assert settings.may_query("https://ehr.example/fhir")
    assert not settings.may_query("https://ehr.example/fhir-evil")
    assert not settings.may_query("https://attacker.example/fhir")
    assert settings.pa_needed == "no-auth"
    with pytest.raises(ValueError, match="jwks"):
        CdsSettings.from_env({"MEDPOLICY_CDS_CLIENTS": json.dumps({"iss": {}})})


def test_no_case_data_in_log_lines(
    served: tuple[LiveServer, CdsClient], caplog: pytest.LogCaptureFixture
) -> None:
    from cds_client import condition, observation, order_sign_request, service_request

    _, client = served
    request = order_sign_request(
        [service_request("sr-secret-order", "77425", patient="pt-secret-4242")],
        conditions=[condition("c", "C20", patient="pt-secret-4242")],
        observations=[observation("t", "21905-5", patient="pt-secret-4242", valueString="cT4b")],
        patient_id="pt-secret-4242",
    )
    with caplog.at_level(logging.DEBUG):
        assert client.call("medpolicy-crd-order-sign", request).status_code == 200
        assert client.call("medpolicy-crd-order-sign", request, token="not-a-jwt").status_code == 401
    text = caplog.text
    assert text  # something was logged
    for secret in ("pt-secret-4242", "sr-secret-order", "C20", "cT4b", "not-a-jwt"):
        assert secret not in text


def test_a_tampered_or_malformed_token_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    """The claims are read before the signature is checked, so tampering must always fail it."""
    _, client = served
    good = client.token(client.url("/cds-services"))
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "iss": client.iss, "sub": "admin"}).encode())
    _refused(
        client.discover(token=f"{header}.{forged.decode().rstrip('=')}.{signature}"), "invalid_signature"
    )
    _refused(client.discover(token=f"{header}.{payload}.{signature[:-4]}AAAA"), "invalid_signature")
    _refused(
        client.discover(token=f"{header}.{payload}.{signature}="), "invalid_token"
    )  # padding: not canonical
    _refused(client.discover(token=f"{header}.{payload}"), "invalid_token")
    _refused(client.discover(token=f"{header}!.{payload}.{signature}"), "invalid_token")


def test_a_token_not_yet_valid_is_refused(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    token = client.token(client.url("/cds-services"), nbf=int(time.time()) + 3600)
    _refused(client.discover(token=token), "token_issued_in_future")


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[Callable[[bool], tuple[list[str], CdsClient]]]:
    """Two app instances (as two server processes would be) on one SQLite store, one signing client;
    both know themselves by the same public base URL, so one token is valid at either."""
    from medpolicy.interop.cdshooks import CdsSettings
    from medpolicy.service.app import create_app
    from medpolicy.service.testing import running_server, settings_for_tests

    with ExitStack() as stack:

        def start(shared_replay: bool) -> tuple[list[str], CdsClient]:
            client = CdsClient(base_url="https://medpolicy.example")
            urls = []
            for _ in range(2):
                app = create_app(settings_for_tests(tmp_path))
                app.state.cds_settings = CdsSettings(
                    clients=(client.trusted(),),
                    base_url="https://medpolicy.example",
                    shared_replay=shared_replay,
                )
                urls.append(stack.enter_context(running_server(app=app)).base_url)
            return urls, client

        yield start


ORDER = {
    "hook": "order-sign",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {
        "userId": "Practitioner/1",
        "patientId": "p1",
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": []},
    },
}


@pytest.mark.parametrize("shared_replay", [True, False])
def test_a_replay_sent_to_another_server_process_is_refused_when_replay_is_shared(
    two_servers: Callable[[bool], tuple[list[str], CdsClient]], shared_replay: bool
) -> None:
    (first, second), client = two_servers(shared_replay)
    path = "/cds-services/medpolicy-crd-order-sign"
    token = client.token(f"https://medpolicy.example{path}")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.post(first + path, json=ORDER, headers=headers).status_code == 200
    replayed = httpx.post(second + path, json=ORDER, headers=headers)
    if shared_replay:
        assert replayed.status_code == 401, replayed.text
        assert replayed.json()["issue"][0]["details"]["coding"][0]["code"] == "token_replayed"
        # and a fresh token still works on either
        fresh = {"Authorization": f"Bearer {client.token(f'https://medpolicy.example{path}')}"}
        assert httpx.post(second + path, json=ORDER, headers=fresh).status_code == 200
    else:
        # each process only remembers its own tokens: the reason `serve --workers` shares them
        assert replayed.status_code == 200


def test_verifying_without_fetching_asks_for_the_fetch_and_records_nothing() -> None:
    """The service verifies on its event loop with ``fetch=False``; a JWK Set still to be fetched is
    signalled (and then fetched from a thread) without the token's jti being spent."""
    client = CdsClient(base_url="x")
    url = "https://ehr.test.example/jwks.json"
    fetched: list[str] = []

    def fetch(u: str) -> dict[str, Any]:
        fetched.append(u)
        return client.jwks()

    verifier = CdsJwtVerifier([TrustedClient(iss=client.iss, jwks_url=url)], jwks_fetcher=fetch)
    aud = "https://svc/cds-services"
    token = client.token(aud)
    with pytest.raises(JwksFetchNeeded):
        verifier.verify(token, aud, fetch=False)
    assert fetched == []
    assert verifier.verify(token, aud).jti  # the same token is still good: nothing was recorded
    assert fetched == [url]
    assert verifier.verify(client.token(aud), aud, fetch=False).kid == client.kid  # cached now
    with pytest.raises(JwtError) as replayed:
        verifier.verify(token, aud, fetch=False)
    assert replayed.value.code == "token_replayed"


def test_an_issuer_known_by_its_jwks_url_is_served(tmp_path: Path) -> None:
    """A client configured by JWK Set URL (served here over loopback HTTP): its first call makes the
    service fetch the keys, later calls use them from the cache."""
    client = CdsClient(base_url="http://placeholder")
    hits: list[str] = []

    class Jwks(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            hits.append(self.path)
            data = json.dumps(client.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    app = create_app(settings_for_tests(tmp_path))
    app.state.cds_settings = CdsSettings(clients=(TrustedClient(iss=client.iss, jwks_url=url),))
    try:
        with running_server(app=app) as server:
            client.base_url = server.base_url
            request = order_sign_request(
                [service_request("sr1", "77425")], conditions=[condition("c-rectal", "C20")]
            )
            for _ in range(3):
                response = client.call("medpolicy-crd-order-sign", request)
                assert response.status_code == 200, response.text
                assert response.json()["systemActions"]
            assert hits == ["/jwks.json"]
            other = CdsClient(base_url=server.base_url, http=client.http)  # a key not published
            _refused(other.call("medpolicy-crd-order-sign", request), "invalid_signature")
            assert hits == ["/jwks.json"]  # the same kid: no reason to fetch again
    finally:
        client.http.close()
        httpd.shutdown()
        httpd.server_close()
