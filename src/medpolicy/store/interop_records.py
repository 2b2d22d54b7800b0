"""What the interoperability faces keep in the store: CDS Hooks feedback on cards, the JWT ids already
used (replay protection shared by every server worker, in group commits), and DTR
``$log-questionnaire-errors`` reports.

`InteropRecordsMixin` is part of `Store` (the methods are `Store` methods).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medpolicy.store.db import GroupCommitWriter
from medpolicy.store.errors import TokenReplayedError
from medpolicy.store.models import CdsFeedbackRow, CdsJtiRow, QuestionnaireErrorRow

__all__ = ["InteropRecordsMixin"]


class InteropRecordsMixin:
    """The CDS Hooks and DTR record methods of `Store` (see the module docstring)."""

    if TYPE_CHECKING:
        clock: Callable[[], datetime]
        _jti_writer: GroupCommitWriter
        _jti_inserts: int
        _write_lock: threading.Lock | None
        _write_engine: Engine

        def _read(self) -> AbstractContextManager[Session]: ...

    def record_cds_feedback(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Store CDS Hooks feedback: each item has service_id, client, card, outcome,
        outcome_timestamp, accepted_suggestions (ids), override_code. Committed when this returns."""
        if not items:
            return
        now = self.clock()
        rows = [{"received_at": now, **item} for item in items]
        with self._write_lock or nullcontext(), self._write_engine.begin() as conn:
            conn.execute(insert(CdsFeedbackRow), rows)

    def claim_jti(self, iss: str, jti: str, expires_at: datetime) -> Future[None]:
        """Record that ``jti`` of ``iss`` has been used, in a group commit shared with other callers.

        The future fails with ``TokenReplayedError`` when the id was already recorded, by this process
        or any other one using the same database: replay protection across server workers."""
        outer: Future[None] = Future()
        inner = self._jti_writer.submit({"iss": iss, "jti": jti, "expires_at": expires_at})

        def settle(done: Future[None]) -> None:
            exc = done.exception()
            if exc is None:
                outer.set_result(None)
            elif isinstance(exc, IntegrityError):
                outer.set_exception(TokenReplayedError("this JWT (jti) has already been used"))
            else:
                outer.set_exception(exc)

        inner.add_done_callback(settle)
        return outer

    def _insert_jtis(self, rows: list[dict[str, Any]]) -> None:
        with self._write_lock or nullcontext(), self._write_engine.begin() as conn:
            self._jti_inserts += len(rows)
            if self._jti_inserts >= 5_000:  # now and then, forget ids that can no longer be replayed
                self._jti_inserts = 0
                conn.execute(delete(CdsJtiRow).where(CdsJtiRow.expires_at < self.clock()))
            conn.execute(insert(CdsJtiRow), rows)

    def list_cds_feedback(self, *, card: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Feedback, newest first (optionally for one card)."""
        query = select(CdsFeedbackRow).order_by(CdsFeedbackRow.id.desc()).limit(limit)
        if card is not None:
            query = query.where(CdsFeedbackRow.card == card)
        with self._read() as session:
            return [
                {
                    "received_at": row.received_at,
                    "service_id": row.service_id,
                    "client": row.client,
                    "card": row.card,
                    "outcome": row.outcome,
                    "outcome_timestamp": row.outcome_timestamp,
                    "accepted_suggestions": list(row.accepted_suggestions),
                    "override_code": row.override_code,
                }
                for row in session.scalars(query)
            ]

    def summarize_cds_feedback(self) -> list[dict[str, Any]]:
        """CDS Hooks feedback counted by service, outcome and override reason code (most first)."""
        n = func.count().label("n")
        query = (
            select(CdsFeedbackRow.service_id, CdsFeedbackRow.outcome, CdsFeedbackRow.override_code, n)
            .group_by(CdsFeedbackRow.service_id, CdsFeedbackRow.outcome, CdsFeedbackRow.override_code)
            .order_by(n.desc(), CdsFeedbackRow.service_id, CdsFeedbackRow.outcome)
        )
        with self._read() as session:
            return [
                {"service_id": s, "outcome": o, "override_code": c, "count": int(k)}
                for s, o, c, k in session.execute(query)
            ]

    def record_questionnaire_errors(
        self, *, client: str, questionnaire: str, outcome: Mapping[str, Any]
    ) -> int:
        """Store a DTR ``$log-questionnaire-errors`` report; its id. Committed when this returns."""
        with self._write_lock or nullcontext(), self._write_engine.begin() as conn:
            result = conn.execute(
                insert(QuestionnaireErrorRow).returning(QuestionnaireErrorRow.id),
                {
                    "received_at": self.clock(),
                    "client": client,
                    "questionnaire": questionnaire,
                    "outcome": dict(outcome),
                },
            )
            return int(result.scalar_one())

    def list_questionnaire_errors(
        self, *, questionnaire: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """DTR error reports, newest first (optionally for one questionnaire canonical)."""
        query = select(QuestionnaireErrorRow).order_by(QuestionnaireErrorRow.id.desc()).limit(limit)
        if questionnaire is not None:
            query = query.where(QuestionnaireErrorRow.questionnaire == questionnaire)
        with self._read() as session:
            return [
                {
                    "id": row.id,
                    "received_at": row.received_at,
                    "client": row.client,
                    "questionnaire": row.questionnaire,
                    "outcome": row.outcome,
                }
                for row in session.scalars(query)
            ]
