"""`medpolicy.service.run.serve` in its own process: migrations, demo data, address, demo tokens."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from medpolicy.service.run import DEMO_CLIENTS, demo_cases


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(code: str, env: dict[str, str], cwd: Path) -> tuple[str, subprocess.Popen[str]]:
    """Run `serve` in its own process (``code`` with ``{port}`` filled in); wait until it answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", code.format(port=port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return base, proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MEDPOLICY_CLIENTS"}}
    return {**env, "MEDPOLICY_DATA_DIR": str(tmp_path / "data"), **extra}


@pytest.fixture
def served(tmp_path: Path) -> tuple[str, Path, subprocess.Popen[str]]:
    code = "from medpolicy.service.run import serve; serve('127.0.0.1', {port}, None, True)"
    base, proc = _start(code, _env(tmp_path), tmp_path)
    return base, tmp_path, proc


def test_serve_migrates_seeds_and_prints_address_and_tokens(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, folder, proc = served
    try:
        ehr = {"Authorization": f"Bearer {DEMO_CLIENTS[0].token}"}
        nurse = {"Authorization": f"Bearer {DEMO_CLIENTS[1].token}"}
        items = httpx.get(f"{base}/v1/prior-auth?limit=500", headers=nurse).json()["items"]
        states = {r["state"] for r in items}
        assert len(items) >= 6
        assert {"approved", "pending_physician_review", "denied", "information_needed", "withdrawn"} <= states
        assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+ \(M-\d{6}\)", r["subject"]) for r in items)
        assert httpx.get(f"{base}/v1/prior-auth", headers=ehr).status_code == 200
        assert httpx.get(f"{base}/v1/prior-auth").status_code == 401
        assert (folder / "data" / "medpolicy.db").exists()
        # The demo reviewer accounts printed at start-up can sign in to the workbench.
        with httpx.Client(base_url=base) as browser:
            page = browser.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            signed = browser.post(
                "/login",
                data={
                    "csrf_token": token.group(1),
                    "username": "nurse",
                    "password": "nurse-demo-password",
                    "next": "/",
                },
            )
            assert signed.status_code == 303
            assert "Review queue" in browser.get("/").text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"medpolicy service on {base}" in out
    assert "nurse / nurse-demo-password" in out
    for client in DEMO_CLIENTS:
        assert client.token in out
    # the addresses and credentials come last and briefly: nothing but uvicorn's own lines after them
    tail = out[out.index("medpolicy service on") :].splitlines()
    assert len(tail) < 20
    assert "Traceback" not in err


def test_the_readmes_cds_hooks_call_works_against_the_demo(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    """As the README shows: a JWT from `medpolicy cds-token` for the order-sign URL, and the example
    order-sign request, answered with CRD coverage information; the demo key stays the owner's."""
    base, folder, proc = served
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    assert "$(.venv/bin/medpolicy cds-token $URL)" in readme
    assert "-d @docs/examples/crd-order-sign-iort.json" in readme
    url = f"{base}/cds-services/medpolicy-crd-order-sign"
    cli = [str(Path(sys.executable).with_name("medpolicy")), "cds-token"]  # the installed command
    try:
        token = subprocess.run(
            [*cli, url], env=_env(folder), cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        body = (root / "docs" / "examples" / "crd-order-sign-iort.json").read_bytes()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        (action,) = answer.json()["systemActions"]
        (info,) = [e for e in action["resource"]["extension"] if e["url"].endswith("coverage-information")]
        details = {
            e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in info["extension"]
        }
        assert details["covered"] == "covered"
        assert details["pa-needed"] == "auth-needed"
        assert answer.json()["cards"][0]["summary"]
        replayed = httpx.post(url, content=body, headers=headers)
        assert replayed.status_code == 401  # each token once
        assert (folder / "data" / "demo-cds-client.pem").stat().st_mode & 0o077 == 0
        wrong = subprocess.run(
            [*cli, "not-a-url"], env=_env(folder), cwd=folder, capture_output=True, text=True
        )
        assert wrong.returncode == 2
        assert "invalid_audience" in wrong.stderr
        elsewhere = subprocess.run(
            [*cli, url], env=_env(folder / "empty"), cwd=folder, capture_output=True, text=True
        )
        assert elsewhere.returncode == 2
        assert "no_demo_key" in elsewhere.stderr
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "CDS Hooks  Authorization: Bearer $(.venv/bin/medpolicy cds-token" in out


def test_demo_cases_come_from_the_policies() -> None:
    cases = demo_cases()
    outcomes = {c.outcome for c in cases}
    assert {"medically_necessary", "investigational", "information_needed", "not_applicable"} <= outcomes
    for demo in cases:
        assert demo.name
        assert isinstance(demo.case.get("date_of_service", ""), str)  # JSON values, as a client sends


def test_serve_with_two_workers_shares_the_port_and_the_store(tmp_path: Path) -> None:
    env = _env(tmp_path, MEDPOLICY_CLIENTS="ehr:ehr-token-0123456789abcdef")
    code = (
        "from medpolicy.service.run import Deployment, serve; "
        "serve('127.0.0.1', {port}, None, False, 2, Deployment(public_base_url='http://127.0.0.1:{port}'))"
    )
    base, proc = _start(code, env, tmp_path)
    try:
        auth = {"Authorization": "Bearer ehr-token-0123456789abcdef"}
        case = {"date_of_service": "2024-03-04", "procedure_codes": ["77425"], "diagnosis_codes": ["C25.0"]}
        ids = set()
        for _ in range(20):  # spread over both workers
            r = httpx.post(f"{base}/v1/determinations", json={"case": case}, headers=auth)
            assert r.status_code == 201, r.text
            ids.add(r.json()["id"])
        for ident in ids:  # each record is readable whichever worker answers
            assert httpx.get(f"{base}/v1/determinations/{ident}", headers=auth).status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "2 worker processes" in out
    assert "Traceback" not in err
