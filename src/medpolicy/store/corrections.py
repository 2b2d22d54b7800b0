"""Corrections of a request's facts: telling a correction from filling in a missing fact (pure).

A fact the provider submitted, or one the policy derived from them (the tumour site derived from a
diagnosis code), has a value; a reviewer who gives it another value corrects it. A fact that had no
value is filled in. Each correction becomes its own audit event whose `details` are
`{"fact", "from", "to", "derived"}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from medpolicy.store.lifecycle import CORRECT, Role


@dataclass(frozen=True)
class Correction:
    fact: str
    old: Any
    new: Any
    derived: bool  # the old value was derived by the policy, not submitted

    def details(self) -> dict[str, Any]:
        return {"fact": self.fact, "from": self.old, "to": self.new, "derived": self.derived}


def _native(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))


def classify(
    case: Mapping[str, Any], facts: Mapping[str, Any], update: Mapping[str, Any]
) -> list[Correction]:
    """The corrections in `update` (fact -> new value) of a request whose case is `case` and whose
    latest determination's facts are `facts` (`{name: {"value", "source"}}`)."""
    found = []
    for name, new in update.items():
        old = case.get(name)
        derived = False
        if old is None:
            fact = facts.get(name)
            if isinstance(fact, Mapping) and str(fact.get("source") or "").startswith("derived"):
                old, derived = fact.get("value"), True
        if old is None or _native(old) == _native(new):
            continue
        found.append(Correction(name, _native(old), _native(new), derived))
    return found


def nurse_corrected(case: Mapping[str, Any], corrections: Iterable[tuple[str, Mapping[str, Any]]]) -> bool:
    """Does `case` rest on a nurse's correction? `corrections`: (role, details) of every correction
    event, oldest first. A fact counts when its latest correction is a nurse's and still stands."""
    latest: dict[str, tuple[str, Any]] = {}
    for role, details in corrections:
        if isinstance(details, Mapping) and details.get("fact"):
            latest[str(details["fact"])] = (role, details.get("to"))
    return any(
        role == Role.NURSE.value and _native(case.get(fact)) == _native(value)
        for fact, (role, value) in latest.items()
    )


def correction_rows(events: Iterable[Any]) -> list[Any]:
    """The correction events among `events` (records or rows with `.action`)."""
    return [e for e in events if e.action == CORRECT]
