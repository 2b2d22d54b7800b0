"""What the request page shows beside the policy's answer: the member and providers, who works the
request, its documents and notes, the peer-to-peer discussion, the denial pick-list, and when and
whether on time it was decided. Pure over what the store returns (no framework)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medpolicy.store.casework import Casework, Document, Note
from medpolicy.store.records import AuditEvent, PARequest
from medpolicy.web.denials import DenialReason, denial_reasons
from medpolicy.web.present import FactRow, fact_name

__all__ = ["Decision", "casework_context", "decision_of", "field_messages"]

DECIDING_ACTIONS = frozenset({"approve", "deny"})


@dataclass(frozen=True)
class Decision:
    """When a request was decided, by whom, and whether within its due time."""

    at: datetime
    actor: str
    role: str
    action: str
    on_time: bool
    after_peer_to_peer: bool

    @property
    def label(self) -> str:
        return "On time" if self.on_time else "Late"


def decision_of(pa: PARequest, events: Sequence[AuditEvent]) -> Decision | None:
    """The decision event of a decided request (approve or deny), or None while it is open."""
    p2p_seen = False
    for event in events:
        if event.action == "peer_to_peer_held":
            p2p_seen = True
        if event.to_state in ("approved", "denied") and event.from_state != event.to_state:
            return Decision(
                at=event.at,
                actor=event.actor,
                role=event.role,
                action=event.action,
                on_time=event.at <= pa.due_at,
                after_peer_to_peer=p2p_seen,
            )
    return None


def field_messages(errors: Sequence[Any]) -> dict[str, str]:
    """Field errors of the missing-facts form by fact name, in words (``t_stage[0]`` is T stage)."""
    out: dict[str, str] = {}
    for e in errors:
        name = re.sub(r"\[\d+\]$", "", str(getattr(e, "field", "") or ""))
        message = str(getattr(e, "message", e))
        message = message[:1].upper() + message[1:]
        out[name] = (out[name] + " " if name in out else "") + message.rstrip(".") + "."
    return out


def _facts_with_citations(facts: Sequence[FactRow], casework: Casework) -> list[FactRow]:
    rows = []
    for row in facts:
        cite = casework.citations.get(row.name)
        if cite is not None and row.source == "entered":
            row = dataclasses.replace(row, detail=f"{row.detail}; from {cite.words()}")
        rows.append(row)
    return rows


def casework_context(
    pa: PARequest,
    *,
    casework: Casework,
    documents: Sequence[Document],
    notes: Sequence[Note],
    events: Sequence[AuditEvent],
    determination: Mapping[str, Any],
    facts: Sequence[FactRow],
    reviewers: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The request page's extra context (merged into the view's own)."""
    physician_notes = [n for n in notes if n.for_physician]
    reasons: list[DenialReason] = denial_reasons(determination) if determination else []
    outcome = determination.get("outcome") or pa.recommendation
    return {
        "casework": casework,
        "parties": casework.parties,
        "documents": documents,
        "notes": list(reversed(notes)),  # newest first
        "note_to_physician": physician_notes[-1] if physician_notes else None,
        "p2p": casework.peer_to_peer,
        "denial_reasons": reasons,
        "decision": decision_of(pa, events),
        "not_governed": outcome == "not_applicable",
        "reviewers": reviewers,
        "facts": _facts_with_citations(facts, casework),
        "fact_name": fact_name,
    }
