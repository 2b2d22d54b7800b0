"""The store: determinations, prior-authorization requests and their audit trail.

`Store` is the only way in. Every method that writes commits before it returns, so a caller that
answers 2xx after a call has a committed record. Reads return frozen records (`DeterminationRecord`,
`PARequest`, `AuditEvent`) that serialise with `to_dict()`.

    store = Store.open("sqlite:///data/medpolicy.db", policies=load_policies())   # runs migrations
    record = store.decide_and_save(case, client_id="ehr-1")
    pa, created = store.create_pa_request(case, submitter="ehr-1", urgency="expedited",
                                          idempotency_key="abc")
    pa = store.apply_action(pa.id, "deny", actor="dr-who", role="physician", reason="...")
    events = store.list_audit(pa.id)

Errors (all `StoreError`, each with a stable `code` and an HTTP `status`):
`NotFoundError` (`determination_not_found`, `prior_auth_not_found`, 404), `IdempotencyConflictError`
(`idempotency_key_reused`, 409), `ConcurrentUpdateError` (`concurrent_update`, 409),
`InvalidActionError` (422), and the life-cycle errors of `medpolicy.store.lifecycle`
(`action_not_permitted` 403, `invalid_transition` 409, `reason_required` 422).
`medpolicy.CaseError` from the engine passes through untouched, and nothing is stored.

The methods live in mixins, one job each: `determinations` (decide, store and read determinations),
`pa_requests` (requests, the engine's steps, actions and corrections, audit and reads),
`interop_records` (CDS Hooks feedback, used JWT ids, DTR error reports) and `casework` (with
`documents`). This module holds `Store` itself: its engines, sessions, writers and life.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from medpolicy.store import audit_chain
from medpolicy.store.casework import CaseworkMixin
from medpolicy.store.db import Checkpointer, GroupCommitWriter, SqliteAppender, make_engine
from medpolicy.store.determinations import engine_version
from medpolicy.store.errors import (
    ConcurrentUpdateError,
    IdempotencyConflictError,
    InvalidActionError,
    NotFoundError,
    StoreError,
)
from medpolicy.store.interop_records import InteropRecordsMixin
from medpolicy.store.models import DeterminationRow
from medpolicy.store.pa_requests import DUE_IN, PARequestsMixin
from medpolicy.store.pa_requests import SUBMIT as SUBMIT
from medpolicy.store.records import (
    AuditEvent,
    DeterminationRecord,
    PARequest,
    new_id,
    request_hash,
    utcnow,
)

__all__ = [  # the records and errors are re-exported: `from medpolicy.store.store import PARequest` works
    "DUE_IN",
    "AuditEvent",
    "ConcurrentUpdateError",
    "DeterminationRecord",
    "IdempotencyConflictError",
    "InvalidActionError",
    "NotFoundError",
    "PARequest",
    "Store",
    "StoreError",
    "make_engine",
    "new_id",
    "request_hash",
]

if TYPE_CHECKING:
    from medpolicy import PolicySet

log = logging.getLogger("medpolicy.store")


class Store(PARequestsMixin, InteropRecordsMixin, CaseworkMixin):
    """Determinations, prior-authorization requests and their audit, in SQLite or PostgreSQL.

    `policies` is the `PolicySet` used when the store must decide (new requests, new facts).
    `clock` gives the current UTC time (tests pass a fixed one).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        policies: PolicySet | None = None,
        clock: Callable[[], datetime] = utcnow,
        engine_version_label: str | None = None,
        auto_approve_extracted: bool = False,
    ) -> None:
        self.engine = engine
        self.policies = policies
        # The plan's choice: may the engine approve on facts read from documents that nobody confirmed?
        self.auto_approve_extracted = auto_approve_extracted
        self.clock = clock
        self.engine_version = engine_version_label or engine_version()
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        audit_chain.install(self._write_sessions)  # every new audit row is sealed into its hash chain
        # SQLite: the group commit's inserts go through the driver (see SqliteAppender)
        self._appender = (
            SqliteAppender(engine, DeterminationRow.metadata.tables["determinations"])
            if self.is_sqlite
            else None
        )
        self._writer = GroupCommitWriter(lambda rows: self._insert_determinations(rows))
        self._jti_writer = GroupCommitWriter(lambda rows: self._insert_jtis(rows))
        self._jti_inserts = 0
        # One writer at a time in this process on SQLite: queue here instead of spinning on the lock.
        self._write_lock: threading.Lock | None = threading.Lock() if self.is_sqlite else None
        self._checkpointer: Checkpointer | None = None
        self._deciders = None  # see DeterminationsMixin.decide
        self._deciders_lock = threading.Lock()
        database = engine.url.database
        if self.is_sqlite and database and database != ":memory:" and not database.startswith("file:"):
            self._checkpointer = Checkpointer(engine)

    # -- life ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        policies: PolicySet | None = None,
        migrate: bool = True,
        clock: Callable[[], datetime] = utcnow,
        sqlite_synchronous: str | None = None,
    ) -> Store:
        """Connect to `url`, bring its schema up to date (unless `migrate=False`), return a Store."""
        engine = make_engine(
            url,
            sqlite_synchronous=sqlite_synchronous or os.environ.get("MEDPOLICY_SQLITE_SYNCHRONOUS", "FULL"),
        )
        if migrate:
            from medpolicy.store.migrate import upgrade

            upgrade(engine)
        return cls(engine, policies=policies, clock=clock)

    def close(self) -> None:
        self._writer.close()
        self._jti_writer.close()
        if self._appender is not None:
            self._appender.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction, committed on exit (rolled back on error)."""
        with self._write_lock or nullcontext(), self._write_sessions.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session
