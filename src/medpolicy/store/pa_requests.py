"""Prior-authorization requests in the store: receive one (idempotent by key), let the engine move it
as it may, take the reviewers' and the submitter's actions and corrections through the life cycle
(`medpolicy.store.lifecycle`), and read requests, their audit events and who read their patient data.

`PARequestsMixin` is part of `Store` (the methods are `Store` methods).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from medpolicy.extract.proposal import EXTRACTED, extracted_facts, rests_on_unconfirmed
from medpolicy.store import audit_chain, corrections, lifecycle
from medpolicy.store.determinations import DeterminationsMixin, _json_native
from medpolicy.store.errors import (
    ConcurrentUpdateError,
    IdempotencyConflictError,
    InvalidActionError,
    NotFoundError,
)
from medpolicy.store.lifecycle import Action, Role, State, Urgency
from medpolicy.store.models import DeterminationRow, PAEventRow, PAReadRow, PARequestRow
from medpolicy.store.records import AuditEvent, PARequest, event_record, new_id, pa_record, request_hash

__all__ = ["DUE_IN", "SUBMIT", "PARequestsMixin"]

SUBMIT = "submit"  # the action of the first audit event of every request
DUE_IN: Mapping[Urgency, timedelta] = {
    Urgency.EXPEDITED: timedelta(hours=72),
    Urgency.STANDARD: timedelta(days=7),
}


class PARequestsMixin(DeterminationsMixin):
    """The prior-authorization request methods of `Store` (see the module docstring)."""

    if TYPE_CHECKING:
        is_sqlite: bool
        auto_approve_extracted: bool

        def _write(self) -> AbstractContextManager[Session]: ...

    # -- prior-authorization requests ---------------------------------------------------------

    def create_pa_request(
        self,
        case: Mapping[str, Any],
        *,
        submitter: str,
        urgency: Urgency | str = Urgency.STANDARD,
        idempotency_key: str | None = None,
        subject: str | None = None,
        policy_id: str | None = None,
        principal: str | None = None,
        sources: Mapping[str, str] | None = None,
        extraction: Mapping[str, Any] | None = None,
    ) -> tuple[PARequest, bool]:
        """Receive a request, decide it, and move it as the engine may. Returns (request, created).

        A retry with the same `idempotency_key` and the same body returns the original request and
        `created=False`; the same key with another body raises `IdempotencyConflictError`. The engine
        approves when the criteria are met, pends for information, and routes investigational or
        not medically necessary to a physician; it never denies.
        """
        try:
            urgency = Urgency(urgency)
        except ValueError:
            raise InvalidActionError(
                f"urgency must be 'expedited' or 'standard', not {urgency!r}", code="invalid_urgency"
            ) from None
        fingerprint = request_hash(case, urgency.value, subject, policy_id)
        if idempotency_key is not None:
            existing = self._by_idempotency_key(submitter, idempotency_key, fingerprint)
            if existing is not None:
                return existing, False

        determination = self.decide(case, policy_id=policy_id, sources=sources)  # CaseError: nothing stored
        request_id = new_id("pa")
        det_row = self._determination_row(case, determination, client_id=submitter, pa_request_id=request_id)
        if extraction:  # facts read from attached documents: their evidence stays with the determination
            det_row.determination = {**det_row.determination, "extraction": _json_native(extraction)}
        now = self.clock()
        row = PARequestRow(
            id=request_id,
            submitter=submitter,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            urgency=urgency.value,
            state=State.RECEIVED.value,
            subject=subject,
            received_at=now,
            due_at=now + DUE_IN[urgency],
            updated_at=now,
            policy_id=policy_id or det_row.policy_id,
            case=det_row.case,
            determination_id=det_row.id,
            recommendation=det_row.outcome,
            decision_reason=None,
            version=1,
        )
        events = [
            PAEventRow(
                request_id=request_id,
                at=now,
                actor=submitter,
                role=Role.SUBMITTER.value,
                action=SUBMIT,
                from_state=None,
                to_state=State.RECEIVED.value,
                reason=f"{urgency.value} request received",
                determination_id=None,
                principal=principal or f"client:{submitter}",
            )
        ]
        events += self._engine_step(row, det_row, now)
        try:
            with self._write() as session:
                session.add(det_row)
                session.add(row)
                session.flush()
                session.add_all(events)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # A concurrent submission with the same key won the race: answer with its request.
            existing = self._by_idempotency_key(submitter, idempotency_key, fingerprint)
            if existing is None:  # pragma: no cover - the conflict was something else
                raise
            return existing, False
        return self.get_pa_request(request_id), True

    def _by_idempotency_key(self, submitter: str, key: str, fingerprint: str) -> PARequest | None:
        with self._read() as session:
            row = session.scalars(
                select(PARequestRow).where(
                    PARequestRow.submitter == submitter, PARequestRow.idempotency_key == key
                )
            ).one_or_none()
            if row is None:
                return None
            if row.request_hash != fingerprint:
                raise IdempotencyConflictError(
                    f"idempotency key {key!r} was used for a different request ({row.id})"
                )
            det = session.get(DeterminationRow, row.determination_id) if row.determination_id else None
            return pa_record(row, det)

    def _engine_step(
        self, row: PARequestRow, det_row: DeterminationRow, now: datetime, *, nurse_corrected: bool = False
    ) -> list[PAEventRow]:
        """What the engine does with its latest determination; updates `row.state`, returns events."""
        conflict = lifecycle.rests_on_conflict(det_row.determination)
        action = lifecycle.engine_action(
            det_row.outcome,
            conflict=conflict,
            rests_on_unconfirmed=not self.auto_approve_extracted
            and rests_on_unconfirmed(det_row.determination),
        )
        current = State(row.state)
        if action is None:
            return []
        if action is Action.APPROVE and nurse_corrected:  # only a physician approves on corrected facts
            action = Action.ROUTE_TO_PHYSICIAN
        if action is Action.ROUTE_TO_PHYSICIAN and current is State.PENDING_PHYSICIAN_REVIEW:
            return []
        transition = lifecycle.plan(
            current, action, Role.SYSTEM, outcome=det_row.outcome, reason=None, conflict=conflict
        )
        assert transition.to_state is not None
        reason = {
            Action.APPROVE: "the policy's criteria are met",
            Action.REQUEST_INFORMATION: "information is needed to decide",
            Action.ROUTE_TO_PHYSICIAN: (
                "the criteria are met on facts a nurse corrected; only a physician may approve"
                if nurse_corrected
                else f"the engine recommends {det_row.outcome.replace('_', ' ')}; only a physician may deny"
            ),
        }[action]
        if conflict:
            shown = "; ".join(
                str(c.get("message")) for c in det_row.determination.get("conflicts", ()) if c.get("decisive")
            )
            reason = f"the determination rests on conflicting facts, for a reviewer to settle: {shown}"
        row.state = transition.to_state.value
        if action is Action.APPROVE:
            row.decision_reason = reason
        return [
            PAEventRow(
                request_id=row.id,
                at=now,
                actor=lifecycle.ENGINE_NAME,
                principal=lifecycle.ENGINE_NAME,
                role=Role.SYSTEM.value,
                action=action.value,
                from_state=current.value,
                to_state=transition.to_state.value,
                reason=reason,
                determination_id=det_row.id,
            )
        ]

    def _follow_determination(
        self, row: PARequestRow, det_row: DeterminationRow, now: datetime, *, nurse_corrected: bool = False
    ) -> list[PAEventRow]:
        """After a reviewer's answers make the outcome definite, the state follows it: ready to
        approve (criteria met) or routed to a physician (adverse, or criteria met on a conflict or on
        facts a nurse corrected). The engine's event records it."""
        target = lifecycle.follow_determination(det_row.outcome)
        current = row.state
        if target is None or current != State.INFORMATION_NEEDED.value:
            return []
        physician_needed = nurse_corrected or lifecycle.rests_on_conflict(det_row.determination)
        if target is State.READY_TO_APPROVE and physician_needed:
            target = State.PENDING_PHYSICIAN_REVIEW
            reason = (
                "the criteria are met on facts a nurse corrected or on conflicting facts; "
                "only a physician may approve"
            )
        elif target is State.READY_TO_APPROVE:
            reason = "the answers meet the policy's criteria; ready for a reviewer's approval"
        else:
            reason = f"the engine recommends {det_row.outcome.replace('_', ' ')}; only a physician may deny"
        row.state = target.value
        return [
            PAEventRow(
                request_id=row.id,
                at=now,
                actor=lifecycle.ENGINE_NAME,
                principal=lifecycle.ENGINE_NAME,
                role=Role.SYSTEM.value,
                action=(
                    Action.ROUTE_TO_PHYSICIAN.value
                    if target is State.PENDING_PHYSICIAN_REVIEW
                    else "ready_to_approve"
                ),
                from_state=current,
                to_state=target.value,
                reason=reason,
                determination_id=det_row.id,
            )
        ]

    def get_pa_request(self, request_id: str) -> PARequest:
        with self._read() as session:
            row = session.get(PARequestRow, request_id)
            if row is None:
                raise NotFoundError(
                    f"no prior-authorization request {request_id!r}", code="prior_auth_not_found"
                )
            det = session.get(DeterminationRow, row.determination_id) if row.determination_id else None
            return pa_record(row, det)

    def list_pa_requests(
        self,
        *,
        state: State | str | None = None,
        search: str | None = None,
        submitter: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[PARequest]:
        """Requests, soonest due first. `search` matches id, subject, policy, submitter or case text."""
        query = select(PARequestRow)
        if state is not None:
            query = query.where(PARequestRow.state == State(state).value)
        if submitter is not None:
            query = query.where(PARequestRow.submitter == submitter)
        if search:
            pattern = f"%{search.strip().lower()}%"
            query = query.where(
                or_(
                    func.lower(PARequestRow.id).like(pattern),
                    func.lower(PARequestRow.subject).like(pattern),
                    func.lower(PARequestRow.policy_id).like(pattern),
                    func.lower(PARequestRow.submitter).like(pattern),
                    func.lower(cast(PARequestRow.case, String)).like(pattern),
                )
            )
        query = query.order_by(PARequestRow.due_at, PARequestRow.id).limit(limit).offset(offset)
        with self._read() as session:
            rows = session.scalars(query).all()
            det_ids = [r.determination_id for r in rows if r.determination_id]
            dets = {
                d.id: d
                for d in session.scalars(select(DeterminationRow).where(DeterminationRow.id.in_(det_ids)))
            }
            return [pa_record(r, dets.get(r.determination_id or "")) for r in rows]

    def apply_action(
        self,
        request_id: str,
        action: Action | str,
        actor: str,
        role: Role | str,
        reason: str | None = None,
        case_update: Mapping[str, Any] | None = None,
        *,
        principal: str | None = None,
    ) -> PARequest:
        """Take `action` on a request as `actor` in `role`; record the audit event; return the request.

        `actor` is the person (a registered reviewer's username, or the submitting client); the
        `principal` is who was authenticated ("client:<id>" or "user:<username>"; by default the
        actor's). `case_update` adds facts (null makes a fact unknown): the engine decides again and
        the new determination is stored before the action is checked, so an approval is judged on the
        new facts. A reviewer's change of a fact that had a value (submitted, or derived by the policy)
        is a correction: it needs a reason and is recorded as its own event (`lifecycle.CORRECT`,
        with old and new value), and an approval resting on a nurse's correction needs a physician.
        The action `lifecycle.CORRECT` records corrections alone, leaving the state as it is.
        `provide_information` (the submitter's) must carry facts; after it the engine moves the
        request as it may (approve, pend, route to a physician).
        """
        correcting_only = str(action) == lifecycle.CORRECT
        if not correcting_only:
            try:
                action = Action(action)
            except ValueError:
                known = ", ".join([a.value for a in Action] + [lifecycle.CORRECT])
                raise InvalidActionError(
                    f"unknown action {action!r}; one of {known}", code="unknown_action"
                ) from None
        try:
            role = Role(role)
        except ValueError:
            raise InvalidActionError(f"unknown role {role!r}", code="unknown_role") from None
        if not actor or not actor.strip():
            raise InvalidActionError("an action needs an actor", code="actor_required")
        if role is not Role.SYSTEM and lifecycle.ENGINE_NAME in (actor.strip().lower(), principal):
            raise InvalidActionError(
                f"{lifecycle.ENGINE_NAME!r} is the engine's own name; no one else may act under it",
                code="reserved_actor",
            )
        if (action is Action.PROVIDE_INFORMATION or correcting_only) and not case_update:
            raise InvalidActionError(
                f"{action} needs the new facts in case_update", code="case_update_required"
            )
        if action is Action.WITHDRAW and case_update:
            raise InvalidActionError("a withdrawal carries no facts", code="case_update_not_allowed")
        reason = reason.strip() if reason and reason.strip() else None
        if principal is None:
            principal = f"client:{actor}" if role is Role.SUBMITTER else f"user:{actor}"

        current = self.get_pa_request(request_id)
        det_row: DeterminationRow | None = None
        fixes: list[corrections.Correction] = []
        if case_update:
            facts = (
                current.determination.determination.get("facts") if current.determination else None
            ) or {}
            if role is not Role.SUBMITTER:  # the provider's own new facts are information, not corrections
                fixes = corrections.classify(current.case, facts, case_update)
            if fixes or correcting_only:
                lifecycle.check_correction(current.state, role, reason)
            if correcting_only and not fixes:
                raise InvalidActionError(
                    "nothing to correct: each fact given had no value or already has this one "
                    "(fill in a missing fact with request_information)",
                    code="nothing_to_correct",
                )
            new_case = {**current.case, **case_update}
            still_extracted = {  # a fact read from a document stays unconfirmed until a person gives it
                k: EXTRACTED
                for k in extracted_facts(current.determination.determination if current.determination else {})
                if k not in case_update
            }
            determination = self.decide(  # CaseError: nothing changes
                new_case, policy_id=current.policy_id, sources=still_extracted or None
            )
            det_row = self._determination_row(
                new_case, determination, client_id=current.submitter, pa_request_id=request_id
            )

        with self._write() as session:
            query = select(PARequestRow).where(PARequestRow.id == request_id)
            if not self.is_sqlite:
                query = query.with_for_update()
            row = session.scalars(query).one()
            if row.version != current.version:
                raise ConcurrentUpdateError(
                    f"request {request_id!r} changed while this action was prepared; retry"
                )
            earlier = session.execute(
                select(PAEventRow.role, PAEventRow.details)
                .where(PAEventRow.request_id == request_id, PAEventRow.action == lifecycle.CORRECT)
                .order_by(PAEventRow.id)
            ).all()
            history = [(r, d) for r, d in earlier] + [(role.value, f.details()) for f in fixes]
            by_nurse = corrections.nurse_corrected(det_row.case if det_row else row.case, history)
            outcome = det_row.outcome if det_row is not None else row.recommendation
            transition: lifecycle.Transition | None = None
            if not correcting_only:
                assert isinstance(action, Action)
                transition = lifecycle.plan(
                    row.state,
                    action,
                    role,
                    outcome=outcome,
                    reason=reason,
                    actor_is_submitter=actor == row.submitter,
                    nurse_corrected=by_nurse,
                )
            now = self.clock()
            if det_row is not None:
                session.add(det_row)
                row.case = det_row.case
                row.determination_id = det_row.id
                row.recommendation = det_row.outcome
            from_state = row.state
            to_state = (
                transition.to_state.value
                if transition is not None and transition.to_state is not None
                else from_state
            )
            who = {"actor": actor, "principal": principal, "role": role.value, "request_id": request_id}
            events = [
                PAEventRow(
                    **who,
                    at=now,
                    action=lifecycle.CORRECT,
                    from_state=from_state,
                    to_state=from_state,
                    reason=reason,
                    determination_id=det_row.id if det_row is not None else None,
                    details=fix.details(),
                )
                for fix in fixes
            ]
            if transition is not None:
                events.append(
                    PAEventRow(
                        **who,
                        at=now,
                        action=transition.action.value,
                        from_state=from_state,
                        to_state=to_state,
                        reason=reason,
                        determination_id=det_row.id if det_row is not None else None,
                    )
                )
            row.state = to_state
            if action in (Action.APPROVE, Action.DENY):
                row.decision_reason = reason or (
                    "the policy's criteria are met" if action is Action.APPROVE else None
                )
            if transition is not None and transition.to_state is None and det_row is not None:
                events += self._engine_step(row, det_row, now, nurse_corrected=by_nurse)
            elif det_row is not None and role in (Role.NURSE, Role.PHYSICIAN):
                events += self._follow_determination(row, det_row, now, nurse_corrected=by_nurse)
            row.updated_at = now
            session.add_all(events)
            try:
                session.flush()  # the mapper's version counter makes this UPDATE ... WHERE version = n
            except StaleDataError:  # pragma: no cover - the row lock (or SQLite's write lock) prevents it
                raise ConcurrentUpdateError(
                    f"request {request_id!r} changed while this action was applied; retry"
                ) from None
        return self.get_pa_request(request_id)

    def correct_facts(
        self,
        request_id: str,
        facts: Mapping[str, Any],
        *,
        actor: str,
        role: Role | str,
        reason: str | None,
        principal: str | None = None,
    ) -> PARequest:
        """Correct facts of a request without moving it (see `apply_action`): one audited event per
        changed fact, with old value, new value, who and the required reason."""
        return self.apply_action(
            request_id, lifecycle.CORRECT, actor, role, reason, facts, principal=principal
        )

    def record_read(self, request_id: str, *, principal: str, actor: str, what: str) -> None:
        """Record that a person read a request's patient data (HIPAA access accounting)."""
        self.record_reads([request_id], principal=principal, actor=actor, what=what)

    def record_reads(self, request_ids: Sequence[str], *, principal: str, actor: str, what: str) -> None:
        """Record one read of each request's patient data shown at once (a list, a queue): a row per
        request, so "who read this request" stays one indexed lookup (`list_reads`). One transaction
        and one seal of the chain for them all."""
        if not request_ids:
            return
        at = self.clock()
        rows: list[dict[str, Any]] = [
            {"request_id": request_id, "at": at, "principal": principal, "actor": actor, "what": what}
            for request_id in dict.fromkeys(request_ids)  # each request once, in the order shown
        ]
        with self._write() as session:
            audit_chain.seal_values(session.connection(), "pa_reads", rows)
            session.execute(insert(PAReadRow), rows)

    def list_reads(self, request_id: str) -> list[dict[str, Any]]:
        """Who read a request's patient data, oldest first: {at, principal, actor, what}."""
        with self._read() as session:
            rows = session.scalars(
                select(PAReadRow).where(PAReadRow.request_id == request_id).order_by(PAReadRow.id)
            ).all()
            return [{"at": r.at, "principal": r.principal, "actor": r.actor, "what": r.what} for r in rows]

    transition = apply_action

    def list_audit(self, request_id: str) -> list[AuditEvent]:
        """Every audit event of a request, oldest first (raises NotFoundError for an unknown request)."""
        with self._read() as session:
            if session.get(PARequestRow, request_id) is None:
                raise NotFoundError(
                    f"no prior-authorization request {request_id!r}", code="prior_auth_not_found"
                )
            rows = session.scalars(
                select(PAEventRow).where(PAEventRow.request_id == request_id).order_by(PAEventRow.id)
            ).all()
            return [event_record(r) for r in rows]

    def count_pa_requests(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(PARequestRow)) or 0)
