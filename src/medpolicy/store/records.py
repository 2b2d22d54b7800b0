"""What the store hands out: frozen records of determinations, requests and audit events, and ids."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from medpolicy.store import lifecycle
from medpolicy.store.lifecycle import State
from medpolicy.store.models import DeterminationRow, PAEventRow, PARequestRow

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


#: Every 10-bit number as its two Crockford digits: an id's 26 digits in 13 lookups.
_PAIRS = tuple(_CROCKFORD[n >> 5] + _CROCKFORD[n & 31] for n in range(1024))
_SHIFTS = tuple(range(120, -1, -10))


def new_id(prefix: str) -> str:
    """A time-ordered, unguessable id: `<prefix>_` + 10 characters of milliseconds + 16 random (80 bits).

    The 26 characters are the 130-bit number (milliseconds << 80 | random) in base 32, most
    significant first, in Crockford's lowercase alphabet."""
    value = ((int(time.time() * 1000) & (2**50 - 1)) << 80) | int.from_bytes(secrets.token_bytes(10), "big")
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _StoredDetermination:
    """What every stored determination carries besides its case and its body."""

    id: str
    created_at: datetime
    client_id: str
    pa_request_id: str | None
    policy_id: str | None
    policy_version: str | None
    engine_version: str
    outcome: str

    def _head(self) -> dict[str, Any]:
        """The answer's fields before the determination and the case, in the answer's order."""
        return {
            "id": self.id,
            "created_at": _iso(self.created_at),
            "pa_request_id": self.pa_request_id,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "engine_version": self.engine_version,
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class DeterminationRecord(_StoredDetermination):
    """A stored determination."""

    case: dict[str, Any]
    determination: dict[str, Any]

    def to_dict(self, *, include_case: bool = True) -> dict[str, Any]:
        data = self._head()
        data["determination"] = self.determination
        if include_case:
            data["case"] = self.case
        return data


@dataclass(frozen=True, slots=True)
class RenderedDetermination(_StoredDetermination):
    """A determination as the service's hot path stores and answers it: a `DeterminationRecord` with
    the case and the determination as the JSON text stored for them (never parsed back into dicts:
    `to_json` is ``orjson.dumps(record.to_dict())``'s bytes)."""

    case_json: bytes
    determination_json: str

    def to_json(self) -> bytes:
        """The answer: `DeterminationRecord.to_dict()` (with the case) as compact JSON."""
        data = self._head()
        data["determination"] = orjson.Fragment(self.determination_json)
        data["case"] = orjson.Fragment(self.case_json)
        return orjson.dumps(data)


@dataclass(frozen=True)
class AuditEvent:
    """One change of a request's state (append-only)."""

    id: int
    request_id: str
    at: datetime
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str
    reason: str | None
    determination_id: str | None
    principal: str | None = None  # who was authenticated: "client:<id>", "user:<username>", "medpolicy"
    details: dict[str, Any] | None = None  # a correction's {"fact", "from", "to", "derived"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "details": self.details,
            "id": self.id,
            "request_id": self.request_id,
            "at": _iso(self.at),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "reason": self.reason,
            "determination_id": self.determination_id,
        }


@dataclass(frozen=True)
class PARequest:
    """A prior-authorization request as it stands now, with its latest determination."""

    id: str
    submitter: str
    idempotency_key: str | None
    urgency: str
    state: str
    subject: str | None
    received_at: datetime
    due_at: datetime
    updated_at: datetime
    policy_id: str | None
    case: dict[str, Any]
    determination_id: str | None
    recommendation: str | None
    decision_reason: str | None
    version: int
    determination: DeterminationRecord | None = field(default=None, compare=False)

    @property
    def is_final(self) -> bool:
        return State(self.state) in lifecycle.FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "submitter": self.submitter,
            "idempotency_key": self.idempotency_key,
            "urgency": self.urgency,
            "state": self.state,
            "subject": self.subject,
            "received_at": _iso(self.received_at),
            "due_at": _iso(self.due_at),
            "updated_at": _iso(self.updated_at),
            "policy_id": self.policy_id,
            "case": self.case,
            "determination_id": self.determination_id,
            "recommendation": self.recommendation,
            "decision_reason": self.decision_reason,
            "version": self.version,
            "determination": self.determination.to_dict(include_case=False) if self.determination else None,
        }


def request_hash(case: Mapping[str, Any], urgency: str, subject: str | None, policy_id: str | None) -> str:
    """Fingerprint of a submission, to tell a retry (same body) from a reused key (other body)."""
    canonical = json.dumps(
        {"case": case, "urgency": urgency, "subject": subject, "policy_id": policy_id},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def det_record(row: DeterminationRow) -> DeterminationRecord:
    return DeterminationRecord(
        id=row.id,
        created_at=row.created_at,
        client_id=row.client_id,
        pa_request_id=row.pa_request_id,
        policy_id=row.policy_id,
        policy_version=row.policy_version,
        engine_version=row.engine_version,
        outcome=row.outcome,
        case=row.case,
        determination=row.determination,
    )


def pa_record(row: PARequestRow, det: DeterminationRow | None) -> PARequest:
    return PARequest(
        id=row.id,
        submitter=row.submitter,
        idempotency_key=row.idempotency_key,
        urgency=row.urgency,
        state=row.state,
        subject=row.subject,
        received_at=row.received_at,
        due_at=row.due_at,
        updated_at=row.updated_at,
        policy_id=row.policy_id,
        case=row.case,
        determination_id=row.determination_id,
        recommendation=row.recommendation,
        decision_reason=row.decision_reason,
        version=row.version,
        determination=det_record(det) if det is not None else None,
    )


def event_record(row: PAEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        request_id=row.request_id,
        at=row.at,
        actor=row.actor,
        role=row.role,
        action=row.action,
        from_state=row.from_state,
        to_state=row.to_state,
        reason=row.reason,
        determination_id=row.determination_id,
        principal=row.principal,
        details=row.details,
    )
