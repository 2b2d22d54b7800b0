"""The medpolicy store: determinations, prior-authorization requests and their audit trail.

SQLAlchemy 2 with Alembic migrations (run on `Store.open`). SQLite by default (WAL mode); PostgreSQL when
the URL names one. Modules: `store` (the `Store` API: engines, sessions, writers), `records` (what it
returns), `errors`, `lifecycle` (the states of a request and who may move it, pure), `db` (engines, group
commit, WAL checkpoints), `models` (tables) and `migrations` (Alembic). Mixed into `Store`, one job each:
`determinations` (decide, store and read determinations), `pa_requests` (requests, the engine's steps,
actions and corrections, audit events and reads of patient data), `interop_records` (CDS Hooks feedback,
used JWT ids, DTR error reports), `casework` (members and providers, assignment, notes, peer-to-peer,
structured denials, citations) and `documents` (clinical documents).
"""

from medpolicy.store import audit_chain
from medpolicy.store.db import make_engine
from medpolicy.store.errors import (
    ConcurrentUpdateError,
    IdempotencyConflictError,
    InvalidActionError,
    NotFoundError,
    StoreError,
    TokenReplayedError,
)
from medpolicy.store.lifecycle import (
    Action,
    ActionNotPermittedError,
    InvalidTransitionError,
    LifecycleError,
    ReasonRequiredError,
    Role,
    State,
    Urgency,
)
from medpolicy.store.records import AuditEvent, DeterminationRecord, PARequest
from medpolicy.store.store import DUE_IN, Store

__all__ = [
    "DUE_IN",
    "Action",
    "ActionNotPermittedError",
    "AuditEvent",
    "ConcurrentUpdateError",
    "DeterminationRecord",
    "IdempotencyConflictError",
    "InvalidActionError",
    "InvalidTransitionError",
    "LifecycleError",
    "NotFoundError",
    "PARequest",
    "ReasonRequiredError",
    "Role",
    "State",
    "Store",
    "StoreError",
    "TokenReplayedError",
    "Urgency",
    "audit_chain",
    "make_engine",
]
