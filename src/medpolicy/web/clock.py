"""The due-time clock of the queue: how long a request has left, and when it turns amber and red.

Decision clocks (CMS-0057-F): 72 hours for an expedited request, 7 calendar days for a standard one
(`medpolicy.store.DUE_IN` sets `due_at`). The queue shows a request

* green ("on time") while more than `AMBER_WITHIN[urgency]` remains,
* amber ("due soon") when less than that remains (12 h for expedited, 24 h for standard),
* red ("overdue") once the due time has passed.

A decided (final) request has no clock. Pure: `now` is always passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from medpolicy.store.lifecycle import FINAL_STATES, State, Urgency

AMBER_WITHIN: dict[Urgency, timedelta] = {
    Urgency.EXPEDITED: timedelta(hours=12),
    Urgency.STANDARD: timedelta(hours=24),
}

Level = Literal["ok", "amber", "red", "done"]


@dataclass(frozen=True)
class DueClock:
    level: Level
    remaining: timedelta  # negative once overdue
    text: str  # "2 d 5 h left", "3 h 10 min overdue", "decided"

    @property
    def label(self) -> str:
        return {"ok": "On time", "amber": "Due soon", "red": "Overdue", "done": "Decided"}[self.level]


def due_clock(due_at: datetime, now: datetime, urgency: str, state: str) -> DueClock:
    """The clock of one request at `now`."""
    remaining = due_at - now
    if State(state) in FINAL_STATES:
        return DueClock("done", remaining, "decided")
    if remaining <= timedelta(0):
        return DueClock("red", remaining, f"{_span(-remaining)} overdue")
    amber = AMBER_WITHIN[Urgency(urgency)]
    level: Level = "amber" if remaining < amber else "ok"
    return DueClock(level, remaining, f"{_span(remaining)} left")


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"
