"""Sign-in lock-out on SQLite and PostgreSQL: the failure count and the lock are atomic in the store,
so a burst of parallel guesses locks the account once, and a right password hidden in a burst of
wrong ones neither signs in nor unlocks; locked and unknown accounts answer alike; security events
are logged with the principal and no patient data."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher

from medpolicy.store import Store
from medpolicy.web.users import Lockout, SignIn, UserStore

PASSWORD = "the-right-password-01"


class BurstHasher(PasswordHasher):
    """argon2 (cheap parameters) whose verify waits until every attempt of a burst is inside it: every
    attempt has been counted before any password check finishes, the worst interleaving there is."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.barrier: threading.Barrier | None = None

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        if self.barrier is not None:
            self.barrier.wait(timeout=60)
        return bool(super().verify(hash, password))


def _users(store: Store, hasher: PasswordHasher | None = None) -> UserStore:
    users = UserStore(store.engine, clock=store.clock, lockout=Lockout(max_failures=5), hasher=hasher)
    users.add_user("nurse.nora", PASSWORD, "nurse", display_name="Nora Nurse, RN")
    return users


def _burst(users: UserStore, hasher: BurstHasher, passwords: list[str]) -> list[SignIn]:
    hasher.barrier = threading.Barrier(len(passwords))
    with ThreadPoolExecutor(len(passwords)) as pool:
        return list(pool.map(lambda p: users.authenticate("nurse.nora", p), passwords))


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "medpolicy.security" and f"event={name} " in r.getMessage()
    ]


def test_twenty_parallel_wrong_passwords_lock_the_account_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    hasher = BurstHasher()
    users = _users(store, hasher)
    caplog.set_level(logging.INFO, logger="medpolicy.security")
    results = _burst(users, hasher, ["wrong-password-000"] * 20)
    assert not any(r.ok for r in results)
    user = users.get_user("nurse.nora")
    assert user is not None
    assert user.locked_until is not None
    assert len(_events(caplog, "lockout")) == 1  # set once, never set and cleared over and over
    hasher.barrier = None
    assert not users.authenticate("nurse.nora", PASSWORD).ok  # still locked for the right password


def test_a_right_password_in_a_burst_of_wrong_ones_neither_signs_in_nor_unlocks(store: Store) -> None:
    hasher = BurstHasher()
    users = _users(store, hasher)
    passwords = ["wrong-password-000"] * 19
    passwords.insert(7, PASSWORD)
    results = _burst(users, hasher, passwords)
    assert not any(r.ok for r in results)
    user = users.get_user("nurse.nora")
    assert user is not None
    assert user.locked_until is not None


def test_the_count_is_of_failures_in_a_row(store: Store) -> None:
    users = _users(store, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for _ in range(4):
        assert not users.authenticate("nurse.nora", "wrong-password-000").ok
    assert users.authenticate("nurse.nora", PASSWORD).ok  # the fifth, right: signs in, count reset
    for _ in range(4):
        assert not users.authenticate("nurse.nora", "wrong-password-000").ok
    user = users.get_user("nurse.nora")
    assert user is not None
    assert user.locked_until is None
    assert user.failed_attempts == 4


class RecordingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[Any] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(hash)
        return bool(super().verify(hash, password))


def test_locked_and_unknown_accounts_answer_alike(store: Store) -> None:
    hasher = RecordingHasher()
    users = _users(store, hasher)
    for _ in range(5):
        users.authenticate("nurse.nora", "wrong-password-000")
    verified = hasher.verified
    verified.clear()
    locked = users.authenticate("nurse.nora", PASSWORD)
    unknown = users.authenticate("nobody.here", PASSWORD)
    assert (locked.ok, locked.user, unknown.ok, unknown.user) == (False, None, False, None)
    assert len(verified) == 2  # both did the same hashing work (against the dummy hash)
    assert verified[0] == verified[1]


def test_security_events_name_the_principal_and_nothing_else(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="medpolicy.security")
    users = _users(store, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for _ in range(5):
        users.authenticate("nurse.nora", "wrong-password-000")
    users.authenticate("typed-my-secret-password-here", "x")
    users.unlock("nurse.nora", by="user:admin.ada")
    users.set_role("nurse.nora", "physician", by="user:admin.ada")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "medpolicy.security")
    assert "event=account_created principal=cli user=user:nurse.nora role=nurse" in logged
    assert "event=sign_in_failed principal=user:nurse.nora attempt=1" in logged
    assert "event=lockout principal=user:nurse.nora until=" in logged
    assert "event=sign_in_failed principal=- reason=unknown_or_disabled_account" in logged
    assert "event=unlock principal=user:admin.ada user=user:nurse.nora" in logged
    assert (
        "event=role_changed principal=user:admin.ada user=user:nurse.nora old=nurse new=physician" in logged
    )
    assert "typed-my-secret" not in logged
    assert "wrong-password" not in logged
