"""A real service on loopback, for tests and benchmarks: `running_server(settings)`.

    with running_server(settings_for_tests(tmp_path)) as server:
        httpx.get(server.url("/v1/prior-auth"), headers=server.headers())

The server is uvicorn in a thread on 127.0.0.1 at a free port, serving `create_app(settings)` (or an
app you pass). `settings_for_tests` gives a fresh SQLite store in a folder and three clients:
`test-submitter` (role submitter), `test-nurse` (nurse) and `test-physician` (physician).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from medpolicy.service.app import create_app
from medpolicy.service.settings import ClientConfig, Settings

# Fixed tokens of the test clients: they open only throwaway test servers on loopback.
SUBMITTER_TOKEN = "test-submitter-token-0123456789"  # noqa: S105 - test fixture, not a secret
OTHER_SUBMITTER_TOKEN = "test-other-submitter-token-0123"  # noqa: S105 - test fixture, not a secret
NURSE_TOKEN = "test-nurse-token-0123456789abcd"  # noqa: S105 - test fixture, not a secret
PHYSICIAN_TOKEN = "test-physician-token-0123456789"  # noqa: S105 - test fixture, not a secret

TEST_CLIENTS = (
    ClientConfig(client_id="test-submitter", token=SUBMITTER_TOKEN),
    ClientConfig(client_id="test-other-submitter", token=OTHER_SUBMITTER_TOKEN),
    ClientConfig(client_id="test-nurse", token=NURSE_TOKEN, roles=frozenset({"nurse"})),
    ClientConfig(client_id="test-physician", token=PHYSICIAN_TOKEN, roles=frozenset({"physician"})),
)


# Example cases for the Blue KC IORT policy (facts as in docs/architecture.md), one per outcome.
BASE: dict[str, Any] = {"date_of_service": "2024-03-04", "procedure_codes": ["77425"]}
MEDICALLY_NECESSARY: dict[str, Any] = {
    **BASE,
    "diagnosis_codes": ["C20"],
    "margin_status": "positive",
    "t_stage": "pT4b",
    "recurrent": False,
    "metastatic": False,
    "treatment_intent": "curative",
}
INVESTIGATIONAL: dict[str, Any] = {
    **BASE,
    "diagnosis_codes": ["C50.911"],
    "margin_status": "negative",
    "t_stage": "pT2",
    "recurrent": False,
    "metastatic": False,
    "treatment_intent": "curative",
}
INFORMATION_NEEDED: dict[str, Any] = {**BASE, "diagnosis_codes": ["C20"]}
NOT_APPLICABLE: dict[str, Any] = {**BASE, "procedure_codes": ["99213"], "diagnosis_codes": ["C20"]}
INVALID: dict[str, Any] = {
    **BASE,
    "diagnosis_codes": ["C20"],
    "margin_status": "sort of",
    "margin_distance_mm": -3,
}
# The facts that turn INFORMATION_NEEDED into MEDICALLY_NECESSARY.
MISSING_FACTS: dict[str, Any] = {k: v for k, v in MEDICALLY_NECESSARY.items() if k not in INFORMATION_NEEDED}


# Registered reviewers a reviewer client may act for (`on_behalf_of`): (username, role, display name).
TEST_REVIEWERS = (
    ("nurse.ann", "nurse", "Ann Nurse, RN"),
    ("dr.bo", "physician", "Bo Physician, MD"),
)


def add_test_reviewers(store: Any) -> None:
    """Register TEST_REVIEWERS in `store` (idempotent)."""
    from medpolicy.web.users import UserError, UserStore

    users = UserStore(store.engine, clock=store.clock)
    for username, role, name in TEST_REVIEWERS:
        try:
            users.add_user(username, "reviewer-password-" + username, role, display_name=name)
        except UserError as exc:
            if exc.code != "user_exists":
                raise


def settings_for_tests(folder: Path, **overrides: Any) -> Settings:
    """Settings for a test: a fresh SQLite store under `folder`, the test clients, any overrides."""
    values: dict[str, Any] = {"data_dir": folder, "clients": TEST_CLIENTS}
    values.update(overrides)
    return Settings(**values)


@dataclass
class LiveServer:
    """A running service: its base URL, app, settings and the bearer tokens of the test clients."""

    base_url: str
    app: FastAPI
    settings: Settings
    token: str = SUBMITTER_TOKEN
    other_token: str = OTHER_SUBMITTER_TOKEN
    nurse_token: str = NURSE_TOKEN
    physician_token: str = PHYSICIAN_TOKEN

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        """`Authorization: Bearer <token>` (default: the submitter's), plus `extra` headers."""
        return {"Authorization": f"Bearer {token or self.token}", **extra}

    @property
    def store(self) -> Any:
        return self.app.state.medpolicy.store


@contextmanager
def running_server(
    settings: Settings | None = None, *, app: FastAPI | None = None, log_level: str = "warning"
) -> Iterator[LiveServer]:
    """Serve `app` (default: `create_app(settings)`) on 127.0.0.1 at a free port until the block ends."""
    if app is None:
        if settings is None:
            raise ValueError("give settings or an app")
        app = create_app(settings)
    settings = settings or app.state.medpolicy.settings
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}"
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        assert settings is not None
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", app=app, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
