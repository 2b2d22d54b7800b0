"""Casework on a prior-authorization request: who it is about, who works it, documents, notes,
peer-to-peer, structured denials (tables of migration 0007_reviewer_day).

`CaseworkMixin` is part of `Store` (the methods are `Store` methods). Every change writes an audit
event in `pa_events` beside the request's state changes: assignment (`assign`), a note (`note`), a
document added (`document_added`) and every view of a document (`document_viewed`), the
peer-to-peer steps (`peer_to_peer_offered`, `peer_to_peer_scheduled`, `peer_to_peer_held`), a fact
cited from a document (`fact_cited`). Documents and notes are append-only (database triggers).

    store.set_parties(pa.id, parties)
    doc = store.add_document(pa.id, data, title="Pathology report", added_by="ehr-1", source="pas")
    store.list_documents(pa.id); store.get_document(doc.id, actor="nurse", role="nurse")
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from medpolicy.parties import Parties
from medpolicy.store.documents import (
    DOCUMENT_MAX_BYTES,
    DOCUMENT_TYPES,
    Document,
    DocumentError,
    DocumentsMixin,
    sniff_media_type,
)
from medpolicy.store.errors import InvalidActionError, NotFoundError
from medpolicy.store.lifecycle import Action, ActionNotPermittedError, Role, State
from medpolicy.store.models import PAEventRow, PARequestRow, UTCDateTime
from medpolicy.store.records import PARequest

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DOCUMENT_MAX_BYTES",
    "DOCUMENT_TYPES",
    "Casework",
    "CaseworkMixin",
    "Citation",
    "Document",
    "DocumentError",
    "DocumentsMixin",
    "Note",
    "sniff_media_type",
]

_JSON = JSON().with_variant(JSONB(), "postgresql")
metadata = MetaData()
casework_table = Table(
    "pa_casework",
    metadata,
    Column("request_id", String(40), ForeignKey("pa_requests.id"), primary_key=True),
    Column("member_id", String(200)),
    Column("member_name", String(200)),
    Column("provider_search", Text),
    Column("parties", _JSON, nullable=False),
    Column("assignee", String(100)),
    Column("assigned_at", UTCDateTime()),
    Column("denial_code", String(100)),
    Column("peer_to_peer", _JSON, nullable=False),
    Column("citations", _JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
notes_table = Table(
    "pa_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(40), ForeignKey("pa_requests.id"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("author", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("for_physician", Boolean, nullable=False),
)

REVIEWERS = frozenset({Role.NURSE.value, Role.PHYSICIAN.value})
P2P_OUTCOMES = ("upheld", "overturned")


@dataclass(frozen=True)
class Note:
    id: int
    request_id: str
    at: datetime
    author: str
    role: str
    text: str
    for_physician: bool


@dataclass(frozen=True)
class Citation:
    """Where a reviewer found a fact: a document, and a page or the quoted words."""

    fact: str
    document_id: str
    document_title: str
    page: str | None
    quote: str | None
    actor: str
    at: str

    def words(self) -> str:
        where = f"“{self.document_title}”"
        if self.page:
            where += f", page {self.page}"
        if self.quote:
            where += f": “{self.quote}”"
        return where


@dataclass(frozen=True)
class Casework:
    request_id: str
    parties: Parties
    assignee: str | None = None
    assigned_at: datetime | None = None
    denial_code: str | None = None
    peer_to_peer: Mapping[str, Any] = field(default_factory=dict)
    citations: Mapping[str, Citation] = field(default_factory=dict)


def _casework(row: Any) -> Casework:
    citations = {
        name: Citation(fact=name, **value)
        for name, value in (row.citations or {}).items()
        if isinstance(value, Mapping)
    }
    return Casework(
        request_id=row.request_id,
        parties=Parties.from_dict(row.parties),
        assignee=row.assignee,
        assigned_at=row.assigned_at,
        denial_code=row.denial_code,
        peer_to_peer=dict(row.peer_to_peer or {}),
        citations=citations,
    )


def _require_role(role: str, allowed: frozenset[str], what: str) -> None:
    if role not in allowed:
        raise ActionNotPermittedError(f"a {role} may not {what}")


class CaseworkMixin(DocumentsMixin):
    """The casework methods of `Store` (see the module docstring)."""

    if TYPE_CHECKING:
        clock: Callable[[], datetime]

        def _write(self) -> AbstractContextManager[Session]: ...
        def _read(self) -> AbstractContextManager[Session]: ...
        def get_pa_request(self, request_id: str) -> PARequest: ...
        def apply_action(
            self,
            request_id: str,
            action: Action | str,
            actor: str,
            role: Role | str,
            reason: str | None = None,
            case_update: Mapping[str, Any] | None = None,
        ) -> PARequest: ...

    # -- helpers ---------------------------------------------------------------------------------

    def _event(
        self, session: Session, request_id: str, actor: str, role: str, action: str, reason: str | None
    ) -> None:
        row = session.get(PARequestRow, request_id)
        if row is None:
            raise NotFoundError(f"no prior-authorization request {request_id!r}", code="prior_auth_not_found")
        session.add(
            PAEventRow(
                request_id=request_id,
                at=self.clock(),
                actor=actor,
                role=role,
                action=action,
                from_state=row.state,
                to_state=row.state,
                reason=reason,
                determination_id=None,
            )
        )

    def _ensure_casework(self, session: Session, request_id: str) -> None:
        if session.execute(
            select(casework_table.c.request_id).where(casework_table.c.request_id == request_id)
        ).first():
            return
        if session.get(PARequestRow, request_id) is None:
            raise NotFoundError(f"no prior-authorization request {request_id!r}", code="prior_auth_not_found")
        session.execute(
            insert(casework_table).values(
                request_id=request_id,
                parties={},
                peer_to_peer={},
                citations={},
                updated_at=self.clock(),
            )
        )

    def _update_casework(self, session: Session, request_id: str, **values: Any) -> None:
        self._ensure_casework(session, request_id)
        session.execute(
            update(casework_table)
            .where(casework_table.c.request_id == request_id)
            .values(updated_at=self.clock(), **values)
        )

    # -- members and providers -------------------------------------------------------------------

    def set_parties(self, request_id: str, parties: Parties) -> None:
        """Record the member and providers of a request (from its submission)."""
        providers = [p for p in (parties.requesting, parties.servicing) if p is not None]
        search = " ".join(
            str(x).lower()
            for p in providers
            for x in (p.name, p.npi, p.organization, p.organization_npi)
            if x
        )
        member = parties.member
        with self._write() as session:
            self._update_casework(
                session,
                request_id,
                parties=parties.to_dict(),
                member_id=member.member_id.lower() if member else None,
                member_name=(member.name or "").lower() if member else None,
                provider_search=search or None,
            )

    def get_casework(self, request_id: str) -> Casework:
        found = self.casework_for([request_id])
        return found.get(request_id) or Casework(request_id, Parties())

    def casework_for(self, request_ids: Sequence[str]) -> dict[str, Casework]:
        """Casework of many requests at once (requests with none are absent)."""
        if not request_ids:
            return {}
        out: dict[str, Casework] = {}
        with self._read() as session:
            for start in range(0, len(request_ids), 500):
                chunk = list(request_ids[start : start + 500])
                for row in session.execute(
                    select(casework_table).where(casework_table.c.request_id.in_(chunk))
                ):
                    out[row.request_id] = _casework(row)
        return out

    # -- assignment ------------------------------------------------------------------------------

    def assign(self, request_id: str, assignee: str | None, *, actor: str, role: str) -> None:
        """Give the request to `assignee` (a reviewer's username; None: back to the queue)."""
        _require_role(role, REVIEWERS, "assign a request")
        with self._write() as session:
            self._update_casework(session, request_id, assignee=assignee, assigned_at=self.clock())
            if assignee is None:
                reason = "returned to the queue"
            elif assignee == actor:
                reason = f"{actor} took the request"
            else:
                reason = f"assigned to {assignee}"
            self._event(session, request_id, actor, role, "assign", reason)

    # -- notes -----------------------------------------------------------------------------------

    def add_note(
        self, request_id: str, text: str, *, author: str, role: str, for_physician: bool = False
    ) -> Note:
        """Add a note to the request's thread (`for_physician`: a nurse's note to the physician)."""
        _require_role(role, REVIEWERS, "write a note")
        text = text.strip()
        if not text:
            raise InvalidActionError("a note needs text", code="note_empty")
        if len(text) > 4000:
            raise InvalidActionError("a note is at most 4000 characters", code="note_too_long")
        now = self.clock()
        with self._write() as session:
            self._event(
                session,
                request_id,
                author,
                role,
                "note",
                "note to the physician" if for_physician else "note",
            )
            result = session.execute(
                insert(notes_table)
                .values(
                    request_id=request_id,
                    at=now,
                    author=author,
                    role=role,
                    text=text,
                    for_physician=for_physician,
                )
                .returning(notes_table.c.id)
            )
            note_id = int(result.scalar_one())
        return Note(note_id, request_id, now, author, role, text, for_physician)

    def list_notes(self, request_id: str) -> list[Note]:
        """The request's notes, oldest first."""
        with self._read() as session:
            rows = session.execute(
                select(notes_table).where(notes_table.c.request_id == request_id).order_by(notes_table.c.id)
            )
            return [
                Note(r.id, r.request_id, r.at, r.author, r.role, r.text, bool(r.for_physician)) for r in rows
            ]

    def cite_document(
        self,
        request_id: str,
        facts: Sequence[str],
        document_id: str,
        *,
        page: str | None,
        quote: str | None,
        actor: str,
        role: str,
    ) -> None:
        """Record that `facts` were read in a document of the request (a page, or quoted words)."""
        _require_role(role, REVIEWERS, "cite a document")
        docs = {d.id: d for d in self.list_documents(request_id)}
        doc = docs.get(document_id)
        if doc is None:
            raise InvalidActionError(
                f"request {request_id} has no document {document_id!r}", code="document_not_found"
            )
        page = (page or "").strip()[:20] or None
        quote = " ".join((quote or "").split())[:500] or None
        now = self.clock()
        with self._write() as session:
            self._ensure_casework(session, request_id)
            row = session.execute(
                select(casework_table.c.citations).where(casework_table.c.request_id == request_id)
            ).one()
            citations = dict(row.citations or {})
            for fact in facts:
                citations[fact] = {
                    "document_id": doc.id,
                    "document_title": doc.title,
                    "page": page,
                    "quote": quote,
                    "actor": actor,
                    "at": now.isoformat(),
                }
            self._update_casework(session, request_id, citations=citations)
            cite = Citation("", doc.id, doc.title, page, quote, actor, now.isoformat()).words()
            self._event(session, request_id, actor, role, "fact_cited", f"{', '.join(facts)} from {cite}")

    # -- peer-to-peer ----------------------------------------------------------------------------

    def peer_to_peer(
        self,
        request_id: str,
        step: str,
        *,
        actor: str,
        role: str,
        when: str | None = None,
        contact: str | None = None,
        outcome: str | None = None,
        note: str | None = None,
    ) -> PARequest:
        """A step of a peer-to-peer discussion with the requesting provider, by a physician:
        `offer`; `schedule` (when, contact); `record` (outcome `upheld` or `overturned`; an
        overturned decision approves the request). Each step is an audit event."""
        _require_role(role, frozenset({Role.PHYSICIAN.value}), "hold a peer-to-peer discussion")
        pa = self.get_pa_request(request_id)
        p2p = dict(self.get_casework(request_id).peer_to_peer)
        note = " ".join((note or "").split())[:2000] or None
        if step == "offer":
            if pa.state in (State.WITHDRAWN.value, State.CLOSED_NOT_GOVERNED.value, State.APPROVED.value):
                raise InvalidActionError(
                    f"no peer-to-peer on a request that is {pa.state.replace('_', ' ')}",
                    code="invalid_transition",
                    status=409,
                )
            p2p.update(status="offered", offered_by=actor, offered_at=self.clock().isoformat())
            action, reason = (
                "peer_to_peer_offered",
                "peer-to-peer discussion offered to the requesting provider",
            )
        elif step == "schedule":
            when = (when or "").strip()
            contact = " ".join((contact or "").split())[:200]
            if not when or not contact:
                raise InvalidActionError(
                    "scheduling a peer-to-peer needs a time and a contact", code="peer_to_peer_incomplete"
                )
            try:
                datetime.fromisoformat(when)
            except ValueError:
                raise InvalidActionError(
                    f"the peer-to-peer time {when!r} is not a date and time (YYYY-MM-DDTHH:MM)",
                    code="invalid_datetime",
                ) from None
            p2p.update(status="scheduled", scheduled_for=when, contact=contact)
            action, reason = "peer_to_peer_scheduled", f"peer-to-peer scheduled for {when} with {contact}"
        elif step == "record":
            if outcome not in P2P_OUTCOMES:
                raise InvalidActionError(
                    f"a peer-to-peer outcome is 'upheld' or 'overturned', not {outcome!r}",
                    code="invalid_peer_to_peer_outcome",
                )
            p2p.update(
                status="held", outcome=outcome, held_by=actor, held_at=self.clock().isoformat(), note=note
            )
            action = "peer_to_peer_held"
            reason = f"peer-to-peer held: decision {outcome}" + (f"; {note}" if note else "")
        else:
            raise InvalidActionError(f"unknown peer-to-peer step {step!r}", code="unknown_action")
        with self._write() as session:
            self._update_casework(session, request_id, peer_to_peer=p2p)
            self._event(session, request_id, actor, role, action, reason)
        if step == "record" and outcome == "overturned" and pa.state != State.APPROVED.value:
            return self.apply_action(
                request_id,
                Action.APPROVE,
                actor,
                role,
                "approved after a peer-to-peer discussion with the requesting provider"
                + (f": {note}" if note else ""),
            )
        return self.get_pa_request(request_id)

    # -- decisions -------------------------------------------------------------------------------

    def deny_with_code(
        self, request_id: str, *, code: str, label: str, words: str, actor: str, role: str
    ) -> PARequest:
        """Deny with a structured reason (`code` from the policy's pick-list, its `label`) and the
        physician's own words; the letter and the PAS response carry both."""
        words = " ".join((words or "").split())
        reason = label.rstrip(".") + (f". {words}" if words else "")
        pa = self.apply_action(request_id, Action.DENY, actor, role, reason)
        with self._write() as session:
            self._update_casework(session, request_id, denial_code=code)
        return pa

    def iter_decisions(self) -> Iterator[tuple[PARequest, list[Any]]]:
        """Every request with its audit events (for reports)."""
        from medpolicy.store.records import event_record, pa_record

        with self._read() as session:
            rows = list(session.scalars(select(PARequestRow).order_by(PARequestRow.received_at)))
            events: dict[str, list[Any]] = {}
            for ev in session.scalars(select(PAEventRow).order_by(PAEventRow.id)):
                events.setdefault(ev.request_id, []).append(event_record(ev))
        for row in rows:
            yield pa_record(row, None), events.get(row.id, [])
