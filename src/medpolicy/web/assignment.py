"""The queue's work filters: my work (assigned to me), policy, provider, state and due date.

Pure over the store's records: `apply_filters` reads the casework (assignee, providers) of the rows
the queue already listed, in one query, and keeps those that match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["CASEWORK_MESSAGES", "DUE_FILTERS", "QueueFilters", "apply_filters"]

DUE_FILTERS = {
    "overdue": "Overdue",
    "today": "Due today",
    "week": "Due within 7 days",
}
CASEWORK_MESSAGES = {
    "assigned": "The request is assigned.",
    "taken": "You took the request: it is in your work.",
    "released": "The request is back in the queue.",
    "note": "Your note is added.",
    "p2p_offer": "A peer-to-peer discussion is offered.",
    "p2p_schedule": "The peer-to-peer discussion is scheduled.",
    "p2p_record": "The peer-to-peer outcome is recorded.",
    "document": "The document is attached.",
}


@dataclass(frozen=True)
class QueueFilters:
    policy: str = ""
    provider: str = ""
    state: str = ""
    due: str = ""
    mine: str = ""  # a username: only requests assigned to them

    @classmethod
    def of(cls, **values: str) -> QueueFilters:
        clean = {k: (v or "").strip()[:100] for k, v in values.items()}
        if clean.get("due") not in DUE_FILTERS:
            clean["due"] = ""
        return cls(**clean)

    @property
    def any(self) -> bool:
        return bool(self.policy or self.provider or self.state or self.due)


def _due_ok(due_at: datetime, due: str, now: datetime, tz: ZoneInfo) -> bool:
    if due == "overdue":
        return due_at < now
    if due == "today":
        local_now = now.astimezone(tz)
        return due_at.astimezone(tz).date() == local_now.date() and due_at >= now
    if due == "week":
        return now <= due_at <= now + timedelta(days=7)
    return True


def apply_filters(
    store: Any, rows: Sequence[Any], filters: QueueFilters, *, now: datetime, tz: ZoneInfo
) -> list[Any]:
    """The queue rows matching `filters`, each with its casework attached (`row.casework`)."""
    casework = store.casework_for([r.pa.id for r in rows])
    out = []
    provider = filters.provider.lower()
    for row in rows:
        cw = casework.get(row.pa.id)
        row = replace(row, casework=cw)
        if filters.mine and (cw is None or cw.assignee != filters.mine):
            continue
        if filters.policy and row.pa.policy_id != filters.policy:
            continue
        if filters.state and row.pa.state != filters.state:
            continue
        if filters.due and not _due_ok(row.pa.due_at, filters.due, now, tz):
            continue
        if provider:
            parties = cw.parties if cw is not None else None
            words = " ".join(
                str(x).lower()
                for p in ((parties.requesting, parties.servicing) if parties else ())
                if p is not None
                for x in (p.name, p.npi, p.organization, p.organization_npi)
                if x
            )
            if provider not in words and provider not in row.pa.submitter.lower():
                continue
        out.append(row)
    return out
