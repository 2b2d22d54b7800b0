"""Workbench users and sessions, in the store's database (tables of migration 0002_web_users).

* Passwords are hashed with argon2id (argon2-cffi defaults); a hash made with older parameters is
  upgraded at the next successful sign-in.
* A session is a random 256-bit token in an HttpOnly cookie; the database keeps only its SHA-256, so
  a copy of the database opens no session. Each session has its own CSRF token.
* Lock-out: after `Lockout.max_failures` failed attempts in a row an account refuses every sign-in,
  the right password included, for `Lockout.duration`; the counter starts again afterwards. The count
  and the lock are atomic in the database: each attempt is counted (one UPDATE) before its password
  is checked, and a right password signs in only if no other attempt started meanwhile and the
  account is not locked, so a burst of guesses cannot slip a sign-in (or an unlock) between them.
* A locked account and an unknown username answer alike (`SignIn(None)` after the same password
  hashing work); `locked_until` is for administrators, never for the sign-in page.
* Security events (failed sign-ins, lock-outs, unlocks, account creation, role changes) are logged
  by `medpolicy.security_log` with the principal and no patient data.

    users = UserStore(store.engine, clock=store.clock)
    users.add_user("nurse", "a long password", "nurse", display_name="Nora Nurse, RN")
    result = users.authenticate("nurse", "a long password")   # SignIn(user=..., locked_until=None)
    token, csrf = users.create_session(result.user)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    case,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from medpolicy.security_log import principal_of_user, security_event
from medpolicy.store.lifecycle import ENGINE_NAME, Role
from medpolicy.store.models import UTCDateTime
from medpolicy.store.records import utcnow

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "Lockout",
    "SignIn",
    "User",
    "UserError",
    "UserStore",
    "WebRole",
]

MIN_PASSWORD_LENGTH = 12
SESSION_LIFETIME = timedelta(hours=12)

metadata = MetaData()
users_table = Table(
    "web_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
sessions_table = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("web_users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)


class WebRole(StrEnum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return {"nurse": "Nurse reviewer", "physician": "Physician reviewer", "admin": "Administrator"}[
            self.value
        ]

    @property
    def lifecycle_role(self) -> Role | None:
        """The role this user acts in on a request (administrators take no clinical action)."""
        return {"nurse": Role.NURSE, "physician": Role.PHYSICIAN}.get(self.value)


class UserError(ValueError):
    """A user cannot be created or changed: `code` is stable (user_exists, weak_password, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: WebRole
    failed_attempts: int
    locked_until: datetime | None
    disabled: bool

    @property
    def lifecycle_role(self) -> Role | None:
        return self.role.lifecycle_role


@dataclass(frozen=True)
class Lockout:
    """How many failed sign-ins in a row lock an account, and for how long."""

    max_failures: int = 5
    duration: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SignIn:
    """The result of a sign-in attempt: `user` when it succeeded; `locked_until` when locked out."""

    user: User | None
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=WebRole(row.role),
        failed_attempts=row.failed_attempts,
        locked_until=row.locked_until,
        disabled=bool(row.disabled),
    )


class UserStore:
    """Users and sessions of the workbench, on the store's SQLAlchemy engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        lockout: Lockout | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.lockout = lockout or Lockout()
        self.hasher = hasher or PasswordHasher()
        # SQLite: take the write lock at BEGIN, so two writers queue instead of failing to upgrade.
        self._write_engine = (
            engine.execution_options(sqlite_begin="IMMEDIATE") if engine.dialect.name == "sqlite" else engine
        )
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # -- accounts ------------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str,
        role: WebRole | str,
        *,
        display_name: str | None = None,
        by: str | None = None,
    ) -> User:
        """Create an account. `by`: the principal creating it (for the security log)."""
        username = username.strip()
        if not username or len(username) > 100 or not username.isprintable() or " " in username:
            raise UserError("invalid_username", "a username is 1 to 100 printable characters, no spaces")
        if username.lower() in (ENGINE_NAME, "system"):
            raise UserError("reserved_username", f"{username!r} is reserved for the engine")
        try:
            role = WebRole(role)
        except ValueError:
            known = ", ".join(r.value for r in WebRole)
            raise UserError("invalid_role", f"unknown role {role!r}; one of {known}") from None
        _check_password(password)
        values = {
            "username": username,
            "display_name": (display_name or username).strip()[:200],
            "role": role.value,
            "password_hash": self.hasher.hash(password),
            "failed_attempts": 0,
            "locked_until": None,
            "disabled": False,
            "created_at": self.clock(),
        }
        try:
            with self._write_engine.begin() as conn:
                conn.execute(insert(users_table).values(**values))
        except IntegrityError:
            raise UserError("user_exists", f"a user named {username!r} exists") from None
        user = self.get_user(username)
        assert user is not None
        security_event(
            "account_created", principal=by or "cli", user=principal_of_user(username), role=role.value
        )
        return user

    def set_role(self, username: str, role: WebRole | str, *, by: str | None = None) -> User:
        """Change an account's role; its open sessions end (they were granted under the old role)."""
        try:
            role = WebRole(role)
        except ValueError:
            known = ", ".join(r.value for r in WebRole)
            raise UserError("invalid_role", f"unknown role {role!r}; one of {known}") from None
        user = self.get_user(username)
        if user is None:
            raise UserError("user_not_found", f"no user named {username!r}")
        with self._write_engine.begin() as conn:
            conn.execute(update(users_table).where(users_table.c.id == user.id).values(role=role.value))
            conn.execute(delete(sessions_table).where(sessions_table.c.user_id == user.id))
        security_event(
            "role_changed",
            principal=by or "cli",
            user=principal_of_user(username),
            old=user.role.value,
            new=role.value,
        )
        changed = self.get_user(username)
        assert changed is not None
        return changed

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users_table).where(users_table.c.username == username)).first()
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users_table).order_by(users_table.c.username)).all()
        return [_user(r) for r in rows]

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        with self._write_engine.begin() as conn:
            done = conn.execute(
                update(users_table)
                .where(users_table.c.username == username)
                .values(password_hash=self.hasher.hash(password), failed_attempts=0, locked_until=None)
            )
        if done.rowcount == 0:
            raise UserError("user_not_found", f"no user named {username!r}")

    def unlock(self, username: str, *, by: str | None = None) -> None:
        with self._write_engine.begin() as conn:
            done = conn.execute(
                update(users_table)
                .where(users_table.c.username == username)
                .values(failed_attempts=0, locked_until=None)
            )
        if done.rowcount:
            security_event("unlock", principal=by or "cli", user=principal_of_user(username))

    # -- sign-in -------------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> SignIn:
        """Check a password, counting failures and locking the account after too many.

        Each attempt is counted before the password is checked, in one UPDATE that only a not-locked
        account takes (a lock that has run out starts the count again). The right password signs in
        only when this attempt is within the limit, no attempt started after it, and no lock was set
        meanwhile; then the count is reset. A wrong one locks the account once the count reaches the
        limit. Unknown, disabled and locked accounts do the same hashing work and answer alike.
        """
        now = self.clock()
        user = self.get_user(username.strip())
        if user is None or user.disabled:
            # Same work as for a real account: the answer's timing does not tell who exists.
            _verify(self.hasher, self._dummy_hash, password)
            security_event("sign_in_failed", principal="-", reason="unknown_or_disabled_account")
            return SignIn(None)
        principal = principal_of_user(user.username)
        c = users_table.c
        with self._write_engine.begin() as conn:
            attempt = conn.execute(
                update(users_table)
                .where(c.id == user.id, or_(c.locked_until.is_(None), c.locked_until <= now))
                .values(
                    failed_attempts=case((c.locked_until.is_not(None), 1), else_=c.failed_attempts + 1),
                    locked_until=None,
                )
                .returning(c.failed_attempts, c.password_hash)
            ).first()
        if attempt is None:  # locked: the same work and the same answer as a wrong password
            _verify(self.hasher, self._dummy_hash, password)
            security_event("sign_in_refused_locked", principal=principal)
            return SignIn(None, locked_until=self._locked_until(user.id))
        number, stored = int(attempt.failed_attempts), str(attempt.password_hash)
        if _verify(self.hasher, stored, password) and number <= self.lockout.max_failures:
            values: dict[str, Any] = {"failed_attempts": 0}
            if self.hasher.check_needs_rehash(stored):
                values["password_hash"] = self.hasher.hash(password)
            with self._write_engine.begin() as conn:
                done = conn.execute(
                    update(users_table)
                    .where(c.id == user.id, c.locked_until.is_(None), c.failed_attempts == number)
                    .values(**values)
                )
            if done.rowcount == 1:
                security_event("sign_in", principal=principal)
                return SignIn(self.get_user(user.username))
            security_event("sign_in_refused_concurrent_attempts", principal=principal)
            return SignIn(None, locked_until=self._locked_until(user.id))
        security_event("sign_in_failed", principal=principal, attempt=number)
        until = now + self.lockout.duration
        with self._write_engine.begin() as conn:
            locked = conn.execute(
                update(users_table)
                .where(
                    c.id == user.id,
                    c.locked_until.is_(None),
                    c.failed_attempts >= self.lockout.max_failures,
                )
                .values(failed_attempts=0, locked_until=until)
            )
        if locked.rowcount == 1:
            security_event("lockout", principal=principal, until=until.isoformat())
        # Sessions already open stay open: failed guesses by someone else must not sign the user out.
        return SignIn(None, locked_until=self._locked_until(user.id))

    def _locked_until(self, user_id: int) -> datetime | None:
        with self.engine.connect() as conn:
            value: datetime | None = conn.execute(
                select(users_table.c.locked_until).where(users_table.c.id == user_id)
            ).scalar_one_or_none()
        return value if value is not None and value > self.clock() else None

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, user: User) -> tuple[str, str]:
        """A new session for `user`: (token for the cookie, CSRF token for its forms)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        with self._write_engine.begin() as conn:
            conn.execute(delete(sessions_table).where(sessions_table.c.expires_at <= now))
            conn.execute(
                insert(sessions_table).values(
                    id=_hash_token(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + SESSION_LIFETIME,
                )
            )
        return token, csrf

    def session(self, token: str | None) -> tuple[User, str] | None:
        """The user and CSRF token of a live session, or None."""
        if not token or len(token) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(sessions_table.c.csrf_token, sessions_table.c.expires_at, users_table)
                .join(users_table, users_table.c.id == sessions_table.c.user_id)
                .where(sessions_table.c.id == _hash_token(token))
            ).first()
        if row is None or row.expires_at <= self.clock() or row.disabled:
            return None
        return _user(row), str(row.csrf_token)

    def end_session(self, token: str | None) -> None:
        if not token:
            return
        with self._write_engine.begin() as conn:
            conn.execute(delete(sessions_table).where(sessions_table.c.id == _hash_token(token)))

    def end_sessions(self, user_id: int) -> None:
        with self._write_engine.begin() as conn:
            conn.execute(delete(sessions_table).where(sessions_table.c.user_id == user_id))


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of CSRF tokens (False when either is missing)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError("weak_password", f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise UserError("weak_password", "a password has at most 1024 characters")


def _verify(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return bool(hasher.verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
