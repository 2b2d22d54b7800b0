"""The workbench's queue (`/`): the views (all open, my work, by state), search, filters and sort.
Each request the queue shows is recorded as read (`pa_reads`, what="queue page")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from medpolicy.store import PARequest, State, Store
from medpolicy.store.lifecycle import FINAL_STATES
from medpolicy.web import present
from medpolicy.web.assignment import QueueFilters, apply_filters
from medpolicy.web.clock import AMBER_WITHIN, due_clock
from medpolicy.web.plan import load_plan
from medpolicy.web.views import _policies, _signed_in, _store, _to_login, render, web_state

__all__ = ["router"]


router = APIRouter(include_in_schema=False)


# queue views: (key, label, states)
VIEWS: tuple[tuple[str, str, tuple[State, ...]], ...] = (
    (
        "open",
        "All open",
        (State.RECEIVED, State.INFORMATION_NEEDED, State.PENDING_PHYSICIAN_REVIEW, State.READY_TO_APPROVE),
    ),
    ("mine", "My work", tuple(s for s in State if s not in FINAL_STATES)),
    ("information_needed", "Information needed", (State.INFORMATION_NEEDED,)),
    ("ready", "Ready to approve", (State.READY_TO_APPROVE,)),
    ("physician", "Pending physician review", (State.PENDING_PHYSICIAN_REVIEW,)),
    ("received", "Received (triage)", (State.RECEIVED,)),
    ("decided", "Decided", (State.APPROVED, State.DENIED, State.WITHDRAWN, State.CLOSED_NOT_GOVERNED)),
)


SORTS = {"due": "Due time (soonest first)", "received": "Received (newest first)", "urgency": "Urgency"}


QUEUE_LIMIT = 500


@dataclass(frozen=True)
class QueueRow:
    pa: PARequest
    clock: Any
    member: str
    casework: Any = None


def queue_rows(
    store: Store,
    states: tuple[State, ...],
    *,
    search: str | None,
    urgency: str | None,
    sort: str,
    now: datetime,
) -> list[QueueRow]:
    found: list[PARequest] = []
    for state in states:
        found += store.list_pa_requests(state=state, search=search or None, limit=QUEUE_LIMIT)
    if urgency in ("expedited", "standard"):
        found = [p for p in found if p.urgency == urgency]
    if sort == "received":
        found.sort(key=lambda p: (p.received_at, p.id), reverse=True)
    elif sort == "urgency":
        found.sort(key=lambda p: (p.urgency != "expedited", p.due_at, p.id))
    else:
        found.sort(key=lambda p: (p.due_at, p.id))
    return [
        QueueRow(p, due_clock(p.due_at, now, p.urgency, p.state), p.subject or "not named") for p in found
    ]


@router.get("/")
def queue(
    request: Request,
    view: str = "open",
    q: str = "",
    urgency: str = "",
    sort: str = "due",
    policy: str = "",
    provider: str = "",
    state: str = "",
    due: str = "",
) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    user, csrf = auth
    views = {key: (label, states) for key, label, states in VIEWS}
    if view not in views:
        view = "open"
    if sort not in SORTS:
        sort = "due"
    store = _store(request)
    now = web_state(request).clock()
    rows = queue_rows(store, views[view][1], search=q.strip()[:100], urgency=urgency, sort=sort, now=now)
    filters = QueueFilters.of(
        policy=policy, provider=provider, state=state, due=due, mine=user.username if view == "mine" else ""
    )
    rows = apply_filters(store, rows, filters, now=now, tz=load_plan().zone)
    # Access accounting: each row shows its member (name, id, birth date), so each is a read of that
    # request's patient data, recorded like a request page's. The counts show no one: not recorded.
    store.record_reads(
        [row.pa.id for row in rows], principal=f"user:{user.username}", actor=user.username, what="queue page"
    )
    counts = {
        key: sum(1 for s in states for _ in store.list_pa_requests(state=s, limit=QUEUE_LIMIT))
        for key, _l, states in VIEWS
        if key != "mine"
    }
    counts["mine"] = len(
        apply_filters(
            store,
            queue_rows(store, views["mine"][1], search=None, urgency=None, sort="due", now=now),
            QueueFilters.of(mine=user.username),
            now=now,
            tz=load_plan().zone,
        )
    )
    return render(
        request,
        "queue.html",
        user=user,
        csrf=csrf,
        rows=rows,
        views=VIEWS,
        counts=counts,
        view=view,
        view_label=views[view][0],
        q=q,
        urgency=urgency,
        sort=sort,
        sorts=SORTS,
        now=now,
        amber=AMBER_WITHIN,
        filters=filters,
        names={u.username: u.display_name for u in web_state(request).users.list_users()},
        policies=list(_policies(request) or []),
        states=[(s.value, present.STATE_LABELS.get(s.value, s.value)) for s in State],
    )
