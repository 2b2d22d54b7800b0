"""``/reports``: the prior-authorization metrics CMS-0057-F asks payers to publish, for any dates.

For the requests decided in the period (the decision's date in the plan's time zone): how many were
approved and denied and their share, how many were approved after an appeal and after a peer-to-peer
discussion, how many were decided within their due time, and the median and average time from
receipt to decision, for standard and expedited requests apart. Requests withdrawn or closed as not
governed are counted beside them (they are not decisions). `prior_auth_metrics` is pure.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medpolicy.store.records import AuditEvent, PARequest
from medpolicy.web.plan import load_plan
from medpolicy.web.reviewer_context import decision_of
from medpolicy.web.views import _signed_in, _store, _to_login, render, web_state

__all__ = ["Metrics", "TimeStats", "prior_auth_metrics", "router"]

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class TimeStats:
    urgency: str
    decided: int
    median_hours: float | None
    average_hours: float | None
    on_time: int


@dataclass(frozen=True)
class Metrics:
    start: date
    end: date
    decided: int
    approved: int
    denied: int
    approved_after_appeal: int
    approved_after_peer_to_peer: int
    on_time: int
    withdrawn: int
    closed_not_governed: int
    times: tuple[TimeStats, ...]

    def share(self, n: int) -> str:
        return f"{100 * n / self.decided:.1f}%" if self.decided else "-"


def prior_auth_metrics(
    items: Iterable[tuple[PARequest, Sequence[AuditEvent]]], start: date, end: date, tz: ZoneInfo
) -> Metrics:
    """The metrics of requests decided from `start` to `end` (inclusive, local dates in `tz`)."""
    approved = denied = after_p2p = on_time = withdrawn = closed = 0
    hours: dict[str, list[float]] = {"standard": [], "expedited": []}
    in_time: dict[str, int] = {"standard": 0, "expedited": 0}

    def within(when: datetime) -> bool:
        return start <= when.astimezone(tz).date() <= end

    for pa, events in items:
        if pa.state in ("withdrawn", "closed_not_governed"):
            last = events[-1].at if events else pa.updated_at
            if within(last):
                withdrawn += pa.state == "withdrawn"
                closed += pa.state == "closed_not_governed"
            continue
        decision = decision_of(pa, events)
        if decision is None or not within(decision.at):
            continue
        if pa.state == "approved":
            approved += 1
            after_p2p += decision.after_peer_to_peer
        else:
            denied += 1
        on_time += decision.on_time
        bucket = pa.urgency if pa.urgency in hours else "standard"
        hours[bucket].append((decision.at - pa.received_at).total_seconds() / 3600)
        in_time[bucket] += decision.on_time
    times = tuple(
        TimeStats(
            urgency,
            len(values),
            round(statistics.median(values), 1) if values else None,
            round(statistics.fmean(values), 1) if values else None,
            in_time[urgency],
        )
        for urgency, values in hours.items()
    )
    return Metrics(
        start=start,
        end=end,
        decided=approved + denied,
        approved=approved,
        denied=denied,
        approved_after_appeal=0,  # appeals are not yet recorded in medpolicy
        approved_after_peer_to_peer=after_p2p,
        on_time=on_time,
        withdrawn=withdrawn,
        closed_not_governed=closed,
        times=times,
    )


def _date(value: str, default: date) -> tuple[date, str | None]:
    if not value:
        return default, None
    try:
        return date.fromisoformat(value), None
    except ValueError:
        return default, f"{value!r} is not a date (YYYY-MM-DD); showing {default.isoformat()} instead"


@router.get("/reports")
async def reports(request: Request, start: str = "", end: str = "") -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    plan = load_plan()
    today = web_state(request).clock().astimezone(plan.zone).date()
    first, problem_a = _date(start, today.replace(month=1, day=1))
    last, problem_b = _date(end, today)
    problems = [p for p in (problem_a, problem_b) if p]
    if first > last:
        problems.append("The start date is after the end date; the dates are swapped.")
        first, last = last, first
    store = _store(request)
    metrics = await run_in_threadpool(
        lambda: prior_auth_metrics(list(store.iter_decisions()), first, last, plan.zone)
    )
    return render(
        request,
        "reports.html",
        user=auth[0],
        csrf=auth[1],
        m=metrics,
        problems=problems,
        timezone=plan.timezone,
        last_year=(today - timedelta(days=365)).isoformat(),
    )
