"""Tables of the store (SQLAlchemy 2). The schema itself is made by the Alembic migrations.

* `determinations`: every determination, with the full case, policy id and version, engine version,
  outcome, the determination (`Determination.to_dict()`, which carries the trace) and its time.
  Never updated or deleted (database triggers refuse it).
* `pa_requests`: prior-authorization requests; the mutable current state of each.
* `pa_events`: append-only audit of every change of a request's state: who, role, when, from, to,
  why (triggers refuse UPDATE and DELETE).
* `pa_reads`: append-only record of who read a request's patient data (a workbench page, a letter),
  and when: HIPAA access accounting.
* `determinations`, `pa_events` and `pa_reads` are hash-chained (`chain_seq`, `chain_prev`,
  `chain_hash`; see `medpolicy.store.audit_chain`).
* `cds_feedback`: CDS Hooks feedback on cards (card id, outcome, accepted suggestions, override
  reason code; no case data).
* `cds_jti`: JWT ids (`jti`) already used by each CDS client, until they expire: replay protection
  shared by every server process.
* `dtr_questionnaire_errors`: DTR `$log-questionnaire-errors` reports (the questionnaire's canonical
  URL and the OperationOutcome the DTR application sent; no PHI by the operation's rules).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class DeterminationRow(Base):
    __tablename__ = "determinations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    client_id: Mapped[str] = mapped_column(String(200), nullable=False)
    pa_request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    policy_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    policy_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    engine_version: Mapped[str] = mapped_column(String(100), nullable=False)
    outcome: Mapped[str] = mapped_column(String(50), nullable=False)
    case: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    determination: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    chain_prev: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chain_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_determinations_created_at", "created_at"),
        Index("ix_determinations_pa_request_id", "pa_request_id"),
    )


class PARequestRow(Base):
    __tablename__ = "pa_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    submitter: Mapped[str] = mapped_column(String(200), nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    urgency: Mapped[str] = mapped_column(String(20), nullable=False)
    state: Mapped[str] = mapped_column(String(40), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    policy_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    case: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    determination_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("determinations.id"), nullable=True
    )
    recommendation: Mapped[str | None] = mapped_column(String(50), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (
        UniqueConstraint("submitter", "idempotency_key", name="uq_pa_requests_idempotency"),
        Index("ix_pa_requests_state_due", "state", "due_at"),
    )
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's declarative mapping


class PAEventRow(Base):
    __tablename__ = "pa_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40), ForeignKey("pa_requests.id"), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(40), nullable=True)
    to_state: Mapped[str] = mapped_column(String(40), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    determination_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # who was authenticated: "client:<id>" (an API client) or "user:<username>" (a workbench user);
    # `actor` is the person the event is for (a registered reviewer, the submitter, or the engine)
    principal: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    chain_prev: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chain_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_pa_events_request_id", "request_id", "id"),)


class PAReadRow(Base):
    __tablename__ = "pa_reads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    principal: Mapped[str] = mapped_column(String(200), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    what: Mapped[str] = mapped_column(String(100), nullable=False)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    chain_prev: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chain_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_pa_reads_request_id", "request_id", "id"),)


class CdsFeedbackRow(Base):
    __tablename__ = "cds_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    service_id: Mapped[str] = mapped_column(String(200), nullable=False)
    client: Mapped[str] = mapped_column(String(200), nullable=False)
    card: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    outcome_timestamp: Mapped[str] = mapped_column(String(40), nullable=False)
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    override_code: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CdsJtiRow(Base):
    __tablename__ = "cds_jti"

    iss: Mapped[str] = mapped_column(String(200), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


class QuestionnaireErrorRow(Base):
    __tablename__ = "dtr_questionnaire_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    client: Mapped[str] = mapped_column(String(200), nullable=False)
    questionnaire: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    outcome: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)


class DeterminationKeyRow(Base):
    """An `Idempotency-Key` of `POST /v1/determinations`: a retry answers with the stored determination."""

    __tablename__ = "determination_keys"

    client_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    determination_id: Mapped[str] = mapped_column(String(40), ForeignKey("determinations.id"), nullable=False)
