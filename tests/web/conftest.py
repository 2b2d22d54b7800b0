"""Fixtures of the workbench tests: a real service on loopback with a real SQLite store, reviewers'
accounts, helpers to create requests and to sign in over HTTP, and headless Chromium for the browser
tests (found by `find_chromium`; skipped with a reason locally when absent, a failure when CI=true)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from medpolicy.service.testing import (
    INFORMATION_NEEDED,
    INVESTIGATIONAL,
    MEDICALLY_NECESSARY,
    LiveServer,
    running_server,
    settings_for_tests,
)
from medpolicy.store import PARequest, Store
from medpolicy.web import configure
from medpolicy.web.settings import WebSettings
from medpolicy.web.users import UserStore

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """Where Chromium is: $MEDPOLICY_CHROMIUM, else the first of CHROMIUM_NAMES on the PATH (Debian's
    /usr/bin/chromium, Ubuntu's chromium-browser, Chrome), else Playwright's own download (None: the
    tests skip, or fail under CI=true)."""
    explicit = os.environ.get("MEDPOLICY_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    for candidate in sorted(cache.glob("chromium*/chrome-linux*/chrome"), reverse=True):
        if candidate.is_file():
            return str(candidate)
    return None


CHROMIUM = find_chromium()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

NURSE = ("nurse.nora", "nurse-password-0001")
PHYSICIAN = ("dr.paul", "physician-password-01")
ADMIN = ("admin.ada", "admin-password-00001")

# A palliative case under the 2002 version: not medically necessary (as opposed to investigational).
NOT_MEDICALLY_NECESSARY: dict[str, Any] = {
    "date_of_service": "2003-05-01",
    "procedure_codes": ["77469"],
    "diagnosis_codes": ["C20"],
    "treatment_intent": "palliative",
}
CASES = {
    "information_needed": INFORMATION_NEEDED,
    "investigational": INVESTIGATIONAL,
    "medically_necessary": MEDICALLY_NECESSARY,
    "not_medically_necessary": NOT_MEDICALLY_NECESSARY,
}


@dataclass
class Workbench:
    server: LiveServer
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def store(self) -> Store:
        store: Store = self.server.store
        return store

    @property
    def users(self) -> UserStore:
        users: UserStore = self.server.app.state.medpolicy_web.users
        return users

    def create(self, kind: str, *, urgency: str = "standard", member: str = "Patient/member-1") -> PARequest:
        pa, _ = self.store.create_pa_request(
            CASES[kind], submitter="test-submitter", urgency=urgency, subject=member
        )
        return pa

    def client(self, who: tuple[str, str] | None = None) -> httpx.Client:
        """An HTTP client, signed in as `who` (username, password) when given."""
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)
        self.clients.append(client)  # closed when the module's server stops
        if who is not None:
            response = sign_in(client, *who)
            assert response.status_code == 303, response.text
        return client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": username, "password": password, "next": "/"},
    )


def _add_accounts(users: UserStore) -> None:
    users.add_user(*NURSE, "nurse", display_name="Nora Nurse, RN")
    users.add_user(*PHYSICIAN, "physician", display_name="Dr. Paul Physician")
    users.add_user(*ADMIN, "admin", display_name="Ada Admin")


@pytest.fixture(scope="module")
def workbench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    with running_server(settings_for_tests(tmp_path_factory.mktemp("web"))) as server:
        state = configure(server.app, settings=WebSettings())
        _add_accounts(state.users)
        bench = Workbench(server)
        try:
            yield bench
        finally:
            for client in bench.clients:
                client.close()


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        reason = (
            "Chromium was not found (MEDPOLICY_CHROMIUM, chromium or chromium-browser on the PATH, or "
            "Playwright's download): `apt-get install -y chromium` (.ci/run installs it)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def screenshot(page: Any, name: str, *, docs: bool = False) -> Path:
    """Save a full-page screenshot to test-artifacts/screenshots. The main pages (`docs`) are also
    copied to docs/screenshots when MEDPOLICY_UPDATE_SCREENSHOTS=1, so a test run leaves the tracked
    files alone unless asked to refresh them."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    if docs and os.environ.get("MEDPOLICY_UPDATE_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SHOTS / f"{name}.png")
    return path
