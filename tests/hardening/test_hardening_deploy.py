"""Deployment defaults a payer's security officer would sign (docs/security.md, "Deployment defaults")."""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medpolicy.interop.jwt_auth import CdsJwtVerifier, JwtError, TrustedClient
from medpolicy.service.app import create_app
from medpolicy.service.run import Deployment, check_deployment, uvicorn_options
from medpolicy.service.settings import SettingsError
from medpolicy.service.testing import MEDICALLY_NECESSARY, SUBMITTER_TOKEN, running_server, settings_for_tests


@contextmanager
def serving(folder: Path, deployment: Deployment) -> Iterator[int]:
    """The app on loopback with the uvicorn options `serve` would use; yields the port."""
    app = create_app(settings_for_tests(folder))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **uvicorn_options(deployment)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_behind_a_tls_proxy_the_cookie_is_secure_and_hsts_is_sent(tmp_path: Path) -> None:
    with serving(tmp_path, Deployment(proxy_headers=True, forwarded_allow_ips="127.0.0.1")) as port:
        page = httpx.get(f"http://127.0.0.1:{port}/login", headers={"X-Forwarded-Proto": "https"})
        assert page.status_code == 200
        assert "secure" in page.headers["set-cookie"].lower()
        assert page.headers["strict-transport-security"].startswith("max-age=")
        plain = httpx.get(f"http://127.0.0.1:{port}/login")
        assert "secure" not in plain.headers["set-cookie"].lower()
        assert "strict-transport-security" not in plain.headers


def test_forwarded_headers_are_ignored_unless_trusted(tmp_path: Path) -> None:
    with serving(tmp_path, Deployment()) as port:
        page = httpx.get(f"http://127.0.0.1:{port}/login", headers={"X-Forwarded-Proto": "https"})
        assert "secure" not in page.headers["set-cookie"].lower()
        assert "strict-transport-security" not in page.headers


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_service_terminates_tls_itself(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with serving(tmp_path, Deployment(ssl_certfile=str(cert), ssl_keyfile=str(key))) as port:
        response = httpx.get(f"https://127.0.0.1:{port}/login", verify=False)  # noqa: S501 - a test certificate
        assert response.status_code == 200
        assert "secure" in response.headers["set-cookie"].lower()
        assert "strict-transport-security" in response.headers


def test_demo_refuses_a_non_loopback_host() -> None:
    with pytest.raises(SettingsError, match="loopback"):
        check_deployment("0.0.0.0", 8000, True, Deployment())  # noqa: S104 - the point of the test
    result = subprocess.run(
        [sys.executable, "-m", "medpolicy", "serve", "--demo", "--host", "0.0.0.0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_serve_outside_demo_needs_a_public_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside --demo, `serve` refuses to start without the URL clients call (with or without CDS
    clients configured): the CDS JWT audience must never come from a Host header."""
    monkeypatch.setenv("MEDPOLICY_CDS_BASE_URL", "")  # unset now; restored (absent) after the test
    monkeypatch.delenv("MEDPOLICY_CDS_CLIENTS", raising=False)
    with pytest.raises(SettingsError, match="public base URL"):
        check_deployment("10.0.0.5", 8000, False, Deployment())
    with pytest.raises(SettingsError, match="public base URL"):
        check_deployment("127.0.0.1", 8000, False, Deployment())  # loopback too: only --demo is exempt
    monkeypatch.setenv(
        "MEDPOLICY_CDS_CLIENTS", '{"https://ehr.example": {"jwks_url": "https://ehr.example/jwks"}}'
    )
    with pytest.raises(SettingsError, match="public base URL"):
        check_deployment("10.0.0.5", 8000, False, Deployment())
    with pytest.raises(SettingsError, match="https://"):
        check_deployment("10.0.0.5", 8000, False, Deployment(public_base_url="pa.payer.example"))
    check_deployment("10.0.0.5", 8000, False, Deployment(public_base_url="https://pa.payer.example/"))
    assert os.environ["MEDPOLICY_CDS_BASE_URL"] == "https://pa.payer.example"
    monkeypatch.setenv("MEDPOLICY_CDS_BASE_URL", "https://api.payer.example")  # the environment does too
    check_deployment("10.0.0.5", 8000, False, Deployment())
    check_deployment("127.0.0.1", 8000, True, Deployment())  # --demo: its own loopback address
    assert os.environ["MEDPOLICY_CDS_BASE_URL"] == "https://api.payer.example"


def test_the_serve_command_refuses_to_start_without_a_public_base_url(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MEDPOLICY_CDS_BASE_URL", "MEDPOLICY_CDS_CLIENTS")
    }
    result = subprocess.run(
        [sys.executable, "-m", "medpolicy", "serve", "--port", "18190"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, "MEDPOLICY_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr
    assert "--public-base-url" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_the_database_file_is_private(tmp_path: Path) -> None:
    folder = tmp_path / "fresh" / "data"
    app = create_app(settings_for_tests(folder))
    try:
        db = folder / "medpolicy.db"
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        app.state.medpolicy.store.close()


def test_cors_is_off_unless_configured(tmp_path: Path) -> None:
    with (
        running_server(settings_for_tests(tmp_path)) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        response = client.options(
            "/v1/determinations",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in response.headers
        response = client.post(
            "/v1/determinations",
            json={"case": MEDICALLY_NECESSARY},
            headers={"Origin": "https://evil.example", "Authorization": f"Bearer {SUBMITTER_TOKEN}"},
        )
        assert "access-control-allow-origin" not in response.headers


def test_docs_are_served_offline_under_the_csp(tmp_path: Path) -> None:
    with (
        running_server(settings_for_tests(tmp_path)) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        page = client.get("/docs")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text
        assert "https://" not in page.text
        assert "<script>" not in page.text  # no inline script: the CSP would block it
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js"):
            response = client.get(f"/docs/assets/{asset}")
            assert response.status_code == 200
            assert len(response.content) > 100
        assert client.get("/docs/assets/..%2Fcore.py").status_code == 404


def test_a_jwt_whose_exp_is_nan_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update({"kid": "k1", "alg": "ES384"})
    verifier = CdsJwtVerifier([TrustedClient(iss="ehr", jwks={"keys": [public]})])
    now = int(time.time())
    aud = "https://svc/cds-services/x"
    for claims in (
        {"exp": math.nan, "iat": now},
        {"exp": math.inf, "iat": now},
        {"exp": now + 60, "iat": now, "nbf": math.nan},
        {"exp": now + 60, "iat": now, "jti": "j" * 201},
    ):
        full = {"iss": "ehr", "aud": aud, "jti": str(uuid.uuid4()), **claims}
        token = jwt.encode(full, key, algorithm="ES384", headers={"kid": "k1"})
        with pytest.raises(JwtError) as info:
            verifier.verify(token, aud)
        assert info.value.code == "invalid_token"
    big = jwt.encode(
        {"iss": "ehr", "aud": aud, "pad": "x" * 1_000_000}, key, algorithm="ES384", headers={"kid": "k1"}
    )
    with pytest.raises(JwtError, match="longer than"):
        verifier.verify(big, aud)
