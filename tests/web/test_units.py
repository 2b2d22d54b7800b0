"""Unit tests of the workbench's parts: the queue clock, letters, accounts and lock-out, the policy
browser's citations, and the missing-facts form. Real store (SQLite in a temp folder), real policies."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from medpolicy import load_policies
from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY
from medpolicy.store import Store
from medpolicy.web import present
from medpolicy.web.cli import DEMO_USERS, add_user, seed_demo_users
from medpolicy.web.clock import AMBER_WITHIN, due_clock
from medpolicy.web.letters import APPEAL_DAYS, LetterError, build_letter, letter_pdf
from medpolicy.web.policy_view import build_policy_view
from medpolicy.web.settings import WebSettings, WebSettingsError
from medpolicy.web.users import Lockout, UserError, UserStore, WebRole

from .conftest import NOT_MEDICALLY_NECESSARY

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# -- the queue clock -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urgency", "left", "level"),
    [
        ("expedited", timedelta(hours=72), "ok"),
        ("expedited", timedelta(hours=12), "ok"),
        ("expedited", timedelta(hours=11, minutes=59), "amber"),
        ("expedited", timedelta(minutes=1), "amber"),
        ("expedited", timedelta(0), "red"),
        ("expedited", -timedelta(hours=3), "red"),
        ("standard", timedelta(days=7), "ok"),
        ("standard", timedelta(hours=24), "ok"),
        ("standard", timedelta(hours=23), "amber"),
        ("standard", timedelta(hours=13), "amber"),  # amber for standard although expedited would be ok
        ("standard", -timedelta(days=1), "red"),
    ],
)
def test_due_clock_turns_amber_then_red(urgency: str, left: timedelta, level: str) -> None:
    clock = due_clock(NOW + left, NOW, urgency, "information_needed")
    assert clock.level == level


def test_due_clock_thresholds_are_the_constants() -> None:
    assert AMBER_WITHIN["expedited"] == timedelta(hours=12)  # type: ignore[index]
    assert AMBER_WITHIN["standard"] == timedelta(hours=24)  # type: ignore[index]


def test_due_clock_texts_and_decided() -> None:
    assert due_clock(NOW + timedelta(days=2, hours=5), NOW, "standard", "received").text == "2 d 5 h left"
    assert due_clock(NOW - timedelta(hours=3, minutes=10), NOW, "standard", "received").text == (
        "3 h 10 min overdue"
    )
    done = due_clock(NOW - timedelta(days=3), NOW, "expedited", "approved")
    assert (done.level, done.label) == ("done", "Decided")


# -- a store with requests ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("store")
    s = Store.open(f"sqlite:///{folder / 'web.db'}", policies=load_policies())
    yield s
    s.close()


@pytest.fixture(scope="module")
def iort() -> Any:
    return load_policies().get("bluekc-iort")


def _denied(store: Store, case: dict[str, Any], reason: str) -> Any:
    pa, _ = store.create_pa_request(case, submitter="ehr-1", subject="Patient/77")
    assert pa.state == "pending_physician_review"
    return store.apply_action(pa.id, "deny", "dr.paul", "physician", reason=reason)


def test_approval_letter(store: Store, iort: Any) -> None:
    pa, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1", subject="Patient/77")
    assert pa.state == "approved"  # the engine approves when the criteria are met
    letter = build_letter(pa, store.list_audit(pa.id), iort)
    text = letter.text()
    assert letter.kind == "approval"
    assert letter.basis is None
    assert "approved" in letter.title.lower()
    assert "77425: IORT delivery by electron beam, one session" in text  # the policy's own label
    assert "version 2009-10-06" in text
    assert "Rectal cancer with positive or close margins with T4 lesions or recurrent disease" in text
    assert "The cancer is rectal cancer: met" in text
    assert "Patient/77" in text
    assert "ehr-1" in text


def test_investigational_denial_letter(store: Store, iort: Any) -> None:
    pa = _denied(store, INVESTIGATIONAL, "IORT for breast cancer is investigational under this policy")
    letter = build_letter(pa, store.list_audit(pa.id), iort)
    text = letter.text()
    assert (letter.kind, letter.basis) == ("denial", "investigational")
    assert "investigational" in letter.title
    # the specific reason, in plain words, and the one the physician gave
    assert "considered investigational (experimental)" in text
    assert "IORT for breast cancer is investigational under this policy" in text
    # the policy, version and criteria relied on, with the policy's sentences
    assert "Intraoperative Radiation Therapy (IORT) (bluekc-iort), version 2009-10-06" in text
    assert "All other oncologic applications are investigational: met" in text
    assert "Use of intraoperative radiation therapy is considered investigational" in text
    # what would change it
    assert "What would change this decision" in text
    assert "The cancer is rectal cancer" in text.split("What would change this decision")[1]
    # rights: appeal in 180 days, peer to peer, external review (investigational track)
    assert f"within {APPEAL_DAYS} days" in text
    assert "Peer-to-peer discussion" in text
    assert "external review of an experimental or investigational treatment" in text
    assert "free of charge" in text
    assert "consumer assistance" in text
    # the two kinds of denial are kept apart
    assert "not medically necessary" not in text.lower()
    # never the AMA's descriptor text
    assert "77425: IORT delivery by electron beam, one session" in text


def test_not_medically_necessary_denial_letter(store: Store, iort: Any) -> None:
    pa = _denied(store, NOT_MEDICALLY_NECESSARY, "IORT given with palliative intent")
    letter = build_letter(pa, store.list_audit(pa.id), iort)
    text = letter.text()
    assert (letter.kind, letter.basis) == ("denial", "not_medically_necessary")
    assert "not medically necessary" in letter.title
    assert "not medically necessary for this patient" in text
    assert "IORT given with palliative intent" in text
    assert "version 2002-09-01" in text
    assert "IORT is given as palliative treatment: met" in text
    assert "external review of the medical-necessity decision" in text
    assert f"within {APPEAL_DAYS} days" in text
    assert "investigational" not in text.lower()


def test_letter_pdf_is_a_pdf_with_the_letter(store: Store, iort: Any) -> None:
    pa = _denied(store, INVESTIGATIONAL, "investigational for this site")
    pdf = letter_pdf(build_letter(pa, store.list_audit(pa.id), iort))
    assert pdf.startswith(b"%PDF-")
    assert b"%%EOF" in pdf[-1024:]
    assert len(pdf) > 2000


def test_no_letter_for_an_open_request(store: Store, iort: Any) -> None:
    pa, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    with pytest.raises(LetterError):
        build_letter(pa, store.list_audit(pa.id), iort)


# -- accounts, passwords, lock-out ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def users(store: Store) -> tuple[UserStore, Clock]:
    clock = Clock()
    us = UserStore(store.engine, clock=clock, lockout=Lockout(max_failures=5, duration=timedelta(minutes=15)))
    return us, clock


def _unique(prefix: str) -> str:
    import secrets

    return f"{prefix}-{secrets.token_hex(4)}"


def test_passwords_are_argon2_hashed(users: tuple[UserStore, Clock], store: Store) -> None:
    us, _ = users
    name = _unique("hash")
    us.add_user(name, "correct horse battery", "nurse")
    from sqlalchemy import text

    with store.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM web_users WHERE username = :u"), {"u": name}
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert PasswordHasher().verify(stored, "correct horse battery")


def test_sign_in_and_sessions(users: tuple[UserStore, Clock]) -> None:
    us, clock = users
    name = _unique("sess")
    us.add_user(name, "correct horse battery", "physician", display_name="Dr. Who")
    result = us.authenticate(name, "correct horse battery")
    assert result.ok
    assert result.user is not None
    assert result.user.role is WebRole.PHYSICIAN
    token, csrf = us.create_session(result.user)
    found = us.session(token)
    assert found is not None
    assert found[0].username == name
    assert found[1] == csrf
    assert us.session(token + "x") is None
    clock.now += timedelta(hours=13)  # sessions last 12 hours
    assert us.session(token) is None
    token2, _ = us.create_session(result.user)
    us.end_session(token2)
    assert us.session(token2) is None


def test_lock_out_after_five_failures_for_fifteen_minutes(users: tuple[UserStore, Clock]) -> None:
    us, clock = users
    name = _unique("lock")
    us.add_user(name, "correct horse battery", "nurse")
    for attempt in range(1, 5):
        result = us.authenticate(name, "wrong password")
        assert (result.ok, result.locked_until) == (False, None), attempt
    fifth = us.authenticate(name, "wrong password")
    assert not fifth.ok
    assert fifth.locked_until == NOW + timedelta(minutes=15)
    # locked: even the right password is refused
    still = us.authenticate(name, "correct horse battery")
    assert not still.ok
    assert still.locked_until == NOW + timedelta(minutes=15)
    clock.now = NOW + timedelta(minutes=14, seconds=59)
    assert not us.authenticate(name, "correct horse battery").ok
    clock.now = NOW + timedelta(minutes=15, seconds=1)
    assert us.authenticate(name, "correct horse battery").ok


def test_a_success_resets_the_failure_count(users: tuple[UserStore, Clock]) -> None:
    us, _ = users
    name = _unique("reset")
    us.add_user(name, "correct horse battery", "nurse")
    for _ in range(4):
        us.authenticate(name, "wrong password")
    assert us.authenticate(name, "correct horse battery").ok
    for _ in range(4):
        assert us.authenticate(name, "wrong password").locked_until is None


def test_admin_unlock(users: tuple[UserStore, Clock]) -> None:
    us, _ = users
    name = _unique("unlock")
    us.add_user(name, "correct horse battery", "nurse")
    for _ in range(5):
        us.authenticate(name, "wrong password")
    assert not us.authenticate(name, "correct horse battery").ok
    us.unlock(name)
    assert us.authenticate(name, "correct horse battery").ok


def test_unknown_user_is_refused_like_a_wrong_password(users: tuple[UserStore, Clock]) -> None:
    us, _ = users
    result = us.authenticate("nobody-at-all", "whatever password")
    assert not result.ok
    assert result.locked_until is None


@pytest.mark.parametrize(
    ("username", "password", "role", "code"),
    [
        ("x1", "short", "nurse", "weak_password"),
        ("x2", "long enough password", "surgeon", "invalid_role"),
        ("with space", "long enough password", "nurse", "invalid_username"),
    ],
)
def test_add_user_refuses(
    users: tuple[UserStore, Clock], username: str, password: str, role: str, code: str
) -> None:
    us, _ = users
    with pytest.raises(UserError) as info:
        us.add_user(username, password, role)
    assert info.value.code == code


def test_cli_add_user_and_demo_users(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    user = add_user(url, "nora", "a long password here", "nurse", display_name="Nora")
    assert (user.username, user.role) == ("nora", WebRole.NURSE)
    with pytest.raises(UserError) as info:
        add_user(url, "nora", "a long password here", "nurse")
    assert info.value.code == "user_exists"
    store = Store.open(url)
    try:
        out = io.StringIO()
        created = seed_demo_users(store, out=out)
        assert created == [u for u, *_ in DEMO_USERS]
        for username, password, _role, _name in DEMO_USERS:
            assert f"username {username}" in out.getvalue()
            assert password in out.getvalue()
            assert UserStore(store.engine).authenticate(username, password).ok
        assert seed_demo_users(store, out=io.StringIO()) == []  # idempotent
    finally:
        store.close()


def test_web_settings_from_env() -> None:
    s = WebSettings.from_env(
        {
            "MEDPOLICY_WEB_LOCKOUT_ATTEMPTS": "3",
            "MEDPOLICY_WEB_LOCKOUT_MINUTES": "30",
            "MEDPOLICY_WEB_SECURE_COOKIES": "true",
        }
    )
    assert s.lockout == Lockout(3, timedelta(minutes=30))
    assert s.secure_cookies is True
    assert WebSettings.from_env({}).secure_cookies is None
    assert WebSettings.from_env({}).lockout == Lockout(5, timedelta(minutes=15))
    with pytest.raises(WebSettingsError):
        WebSettings.from_env({"MEDPOLICY_WEB_LOCKOUT_ATTEMPTS": "many"})


# -- the policy browser ------------------------------------------------------------------------------


def test_every_citation_is_highlighted_and_linked(iort: Any) -> None:
    view = build_policy_view(iort)
    assert view.unplaced == []
    html = str(view.source_html)
    for criterion in view.criteria:
        assert criterion.marks, criterion.id
        for mark in criterion.marks:
            assert f'id="{mark}"' in html
    assert html.count("<mark") == html.count("</mark>")
    # the sentence of the policy statement, highlighted, links to its criterion
    rule = next(c for c in view.criteria if c.id == "rectal-margins-t4-or-recurrent")
    assert f'href="#{rule.anchor}"' in html


# -- the missing-facts form --------------------------------------------------------------------------


def test_questions_and_answers(iort: Any) -> None:
    from medpolicy import decide, load_policies

    det = decide(INFORMATION_NEEDED, load_policies()).to_dict()
    fields = present.question_fields(det["missing_facts"], iort)
    assert [f.name for f in fields] == ["margin_status", "t_stage", "recurrent"]
    margin = fields[0]
    assert margin.input == "select"
    assert ("positive", "Positive, microscopic (R1)") in margin.options
    assert fields[2].options == (("yes", "Yes"), ("no", "No"))
    answers = present.parse_answers(
        {"fact_margin_status": "positive", "fact_t_stage": " pT4b ", "fact_recurrent": ""}, fields
    )
    assert answers == {"margin_status": "positive", "t_stage": "pT4b"}
    assert present.parse_answers({"fact_recurrent": "no"}, fields) == {"recurrent": False}


# -- the same on PostgreSQL --------------------------------------------------------------------------


@pytest.mark.postgres
def test_accounts_sessions_and_lock_out_on_postgresql() -> None:
    import os
    import secrets

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    url = os.environ.get("MEDPOLICY_TEST_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    admin = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is unreachable in CI ({type(exc).__name__})")
        pytest.skip(f"PostgreSQL is unreachable ({type(exc).__name__})")
    schema = f"medpolicy_web_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        store = Store.open(scoped.render_as_string(hide_password=False))
        try:
            clock = Clock()
            us = UserStore(store.engine, clock=clock)
            us.add_user("pg.nurse", "correct horse battery", "nurse")
            with pytest.raises(UserError):
                us.add_user("pg.nurse", "correct horse battery", "nurse")
            user = us.authenticate("pg.nurse", "correct horse battery").user
            assert user is not None
            token, csrf = us.create_session(user)
            assert us.session(token) == (user, csrf)
            for _ in range(5):
                us.authenticate("pg.nurse", "wrong password")
            assert us.authenticate("pg.nurse", "correct horse battery").locked_until == NOW + timedelta(
                minutes=15
            )
            assert us.session(token) is not None  # someone else's guesses do not sign the user out
        finally:
            store.close()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
