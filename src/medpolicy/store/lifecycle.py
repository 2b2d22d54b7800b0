"""The life cycle of a prior-authorization request: states, actions, and who may take them.

Pure: no I/O, no clock, no database. The store asks `plan(...)` whether an action is allowed and
what state it leads to, then records the transition as an audit event.

States::

    received ──┬─ approve ─────────────────────────▶ approved      (final)
               ├─ request_information ─▶ information_needed
               ├─ route_to_physician ──▶ pending_physician_review
               └─ deny (physician) ───────────────▶ denied        (final)
    any open state ── withdraw (the submitter) ──▶ withdrawn     (final)
    received (no code of the policy) ── close_not_governed ──▶ closed_not_governed (final, no decision)
    information_needed ── a reviewer's answers make the outcome definite ──▶ ready_to_approve
                                                                          or pending_physician_review

Who may do what:

* `system` (the engine) may approve, request information, and route to a physician. It never
  denies: a case the policy calls investigational or not medically necessary is routed to
  `pending_physician_review` with the engine's recommendation. It never approves a determination
  that rests on conflicting facts either (`rests_on_conflict`): that goes to a physician too.
* `nurse` may approve only when the latest determination says the criteria are met
  (`medically_necessary`), may request information, and may route to a physician.
* `physician` may approve, deny (always with a reason), and request information.
* `submitter` may withdraw its own request, and may supply information
  (`provide_information`), after which the engine decides again.

Corrections: a fact the provider submitted (or the policy derived) is never overwritten silently.
A reviewer who changes one makes a correction (`CORRECT`), its own audited event with the old and
new value and a required reason. Filling in a fact that was missing is not a correction. An approval
that rests on a fact a nurse corrected needs a physician (`plan(..., nurse_corrected=True)`): neither
a nurse nor the engine may give it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

_E = TypeVar("_E", bound=StrEnum)


class State(StrEnum):
    RECEIVED = "received"
    INFORMATION_NEEDED = "information_needed"
    PENDING_PHYSICIAN_REVIEW = "pending_physician_review"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"
    READY_TO_APPROVE = "ready_to_approve"
    CLOSED_NOT_GOVERNED = "closed_not_governed"


class Action(StrEnum):
    APPROVE = "approve"
    REQUEST_INFORMATION = "request_information"
    ROUTE_TO_PHYSICIAN = "route_to_physician"
    DENY = "deny"
    WITHDRAW = "withdraw"
    PROVIDE_INFORMATION = "provide_information"
    CLOSE_NOT_GOVERNED = "close_not_governed"


class Role(StrEnum):
    SYSTEM = "system"
    NURSE = "nurse"
    PHYSICIAN = "physician"
    SUBMITTER = "submitter"


class Urgency(StrEnum):
    EXPEDITED = "expedited"
    STANDARD = "standard"


ENGINE_NAME = "medpolicy"  # the engine's name in the audit trail: reserved, never a client's or a user's
CORRECT = "correct_fact"  # the action of a correction event (not a transition: the state stays)
CORRECTING_ROLES = frozenset({Role.NURSE, Role.PHYSICIAN})

FINAL_STATES = frozenset({State.APPROVED, State.DENIED, State.WITHDRAWN, State.CLOSED_NOT_GOVERNED})
OPEN_STATES = frozenset(State) - FINAL_STATES
REVIEW_STATES = frozenset(
    {State.RECEIVED, State.INFORMATION_NEEDED, State.PENDING_PHYSICIAN_REVIEW, State.READY_TO_APPROVE}
)
NOT_APPLICABLE = "not_applicable"

# Outcome strings of medpolicy.Outcome (kept as strings: this module does not import the core).
CRITERIA_MET = "medically_necessary"
ADVERSE_OUTCOMES = frozenset({"investigational", "not_medically_necessary"})
INFORMATION_NEEDED = "information_needed"
#: The DeterminationV1 flag of a determination that rests on conflicting facts.
CONFLICT_FLAG = "rests_on_conflict"

# action -> (the states it may start from, the state it leads to; None = the engine decides again)
_TARGETS: dict[Action, tuple[frozenset[State], State | None]] = {
    Action.APPROVE: (REVIEW_STATES, State.APPROVED),
    Action.REQUEST_INFORMATION: (
        frozenset(
            {
                State.RECEIVED,
                State.PENDING_PHYSICIAN_REVIEW,
                State.INFORMATION_NEEDED,
                State.READY_TO_APPROVE,
            }
        ),
        State.INFORMATION_NEEDED,
    ),
    Action.ROUTE_TO_PHYSICIAN: (
        frozenset({State.RECEIVED, State.INFORMATION_NEEDED, State.READY_TO_APPROVE}),
        State.PENDING_PHYSICIAN_REVIEW,
    ),
    Action.DENY: (REVIEW_STATES, State.DENIED),
    Action.WITHDRAW: (OPEN_STATES, State.WITHDRAWN),
    Action.PROVIDE_INFORMATION: (REVIEW_STATES, None),
    Action.CLOSE_NOT_GOVERNED: (frozenset({State.RECEIVED}), State.CLOSED_NOT_GOVERNED),
}

_PERMITTED: dict[Role, frozenset[Action]] = {
    Role.SYSTEM: frozenset({Action.APPROVE, Action.REQUEST_INFORMATION, Action.ROUTE_TO_PHYSICIAN}),
    Role.NURSE: frozenset(
        {Action.APPROVE, Action.REQUEST_INFORMATION, Action.ROUTE_TO_PHYSICIAN, Action.CLOSE_NOT_GOVERNED}
    ),
    Role.PHYSICIAN: frozenset(
        {Action.APPROVE, Action.DENY, Action.REQUEST_INFORMATION, Action.CLOSE_NOT_GOVERNED}
    ),
    Role.SUBMITTER: frozenset({Action.WITHDRAW, Action.PROVIDE_INFORMATION}),
}


class LifecycleError(Exception):
    """An action the life cycle does not allow. `code` is stable; `status` is its HTTP status."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class ActionNotPermittedError(LifecycleError):
    """The role may not take this action (or not on this request)."""

    def __init__(self, message: str) -> None:
        super().__init__("action_not_permitted", message, 403)


class InvalidTransitionError(LifecycleError):
    """The action cannot be taken from the request's current state."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_transition", message, 409)


class ReasonRequiredError(LifecycleError):
    """The action needs a reason and none was given."""

    def __init__(self, message: str, code: str = "reason_required") -> None:
        super().__init__(code, message, 422)


def check_correction(state: State | str, role: Role | str, reason: str | None) -> None:
    """May `role` correct facts of a request in `state` (with `reason`)? Raises a LifecycleError."""
    state = State(state)
    role = _parse(Role, role, "role")
    if role not in CORRECTING_ROLES:
        raise ActionNotPermittedError(
            f"a {role.value} may not correct a fact the provider submitted; only a reviewer may"
        )
    if state not in REVIEW_STATES:
        raise InvalidTransitionError(f"cannot correct the facts of a request that is {_words(state)}")
    if not (reason and reason.strip()):
        raise ReasonRequiredError(
            "changing a fact the provider submitted is a correction and must state its reason",
            code="correction_reason_required",
        )


@dataclass(frozen=True)
class Transition:
    """An allowed action: from `from_state` to `to_state` (None: the engine decides again)."""

    action: Action
    from_state: State
    to_state: State | None


def plan(
    state: State | str,
    action: Action | str,
    role: Role | str,
    *,
    outcome: str | None,
    reason: str | None,
    actor_is_submitter: bool = False,
    conflict: bool = False,
    nurse_corrected: bool = False,
) -> Transition:
    """Check that `role` may take `action` on a request in `state`; return the transition.

    `outcome` is the latest determination's outcome (a `medpolicy.Outcome` value);
    `nurse_corrected`: the current facts include a nurse's correction of a submitted fact. Raises
    `ActionNotPermittedError`, `InvalidTransitionError` or `ReasonRequiredError`.
    """
    state = State(state)
    action = _parse(Action, action, "action")
    role = _parse(Role, role, "role")
    if action not in _PERMITTED[role]:
        raise ActionNotPermittedError(f"a {role.value} may not {_words(action)}")
    if role is Role.SUBMITTER and not actor_is_submitter:
        raise ActionNotPermittedError(f"only the submitter of the request may {_words(action)}")
    sources, target = _TARGETS[action]
    if state not in sources:
        raise InvalidTransitionError(f"cannot {_words(action)} a request that is {_words(state)}")
    if action is Action.DENY and not (reason and reason.strip()):
        raise ReasonRequiredError("a denial must state its specific reason")
    if action is Action.APPROVE and role is Role.NURSE and outcome != CRITERIA_MET:
        raise ActionNotPermittedError(
            "a nurse may approve only when the criteria are met; route the request to a physician"
        )
    if action is Action.CLOSE_NOT_GOVERNED and outcome != NOT_APPLICABLE:
        raise InvalidTransitionError(
            "only a request with no code this policy governs can be closed as not governed"
        )
    if action is Action.APPROVE and role is Role.SYSTEM and outcome != CRITERIA_MET:
        raise ActionNotPermittedError("the engine may approve only when the criteria are met")
    if action is Action.APPROVE and role is Role.SYSTEM and conflict:
        raise ActionNotPermittedError(
            "the engine may not approve a determination that rests on conflicting facts; "
            "route it to a reviewer"
        )
    if action is Action.APPROVE and role in (Role.NURSE, Role.SYSTEM) and nurse_corrected:
        raise ActionNotPermittedError(
            "an approval that rests on a fact a nurse corrected needs a physician; "
            "route the request to a physician"
        )
    return Transition(action, state, target)


def rests_on_conflict(determination: Mapping[str, Any] | None) -> bool:
    """Whether a stored determination (DeterminationV1) rests on conflicting facts: its outcome would
    change with the value the other facts point to. Nothing that does is approved automatically."""
    return bool(determination) and CONFLICT_FLAG in (determination or {}).get("flags", ())


def engine_action(
    outcome: str, *, conflict: bool = False, rests_on_unconfirmed: bool = False
) -> Action | None:
    """What the engine does with a determination: approve, pend for information, or route.

    The engine never denies: investigational and not medically necessary go to a physician with the
    engine's recommendation. Criteria met on conflicting facts (`conflict`) go to a physician too, with
    the conflict shown: the engine approves nothing that rests on a conflict. `not_applicable` (no
    policy governs the request) leaves the request `received`, for a reviewer to triage: returns None.
    Neither does it approve on facts read from documents that no person confirmed
    (`rests_on_unconfirmed`): the request stays `received` for a reviewer, who confirms the facts and
    approves.
    """
    if outcome == CRITERIA_MET and conflict:
        return Action.ROUTE_TO_PHYSICIAN
    if outcome == CRITERIA_MET:
        return None if rests_on_unconfirmed else Action.APPROVE
    if outcome == INFORMATION_NEEDED:
        return Action.REQUEST_INFORMATION
    if outcome in ADVERSE_OUTCOMES:
        return Action.ROUTE_TO_PHYSICIAN
    return None


def follow_determination(outcome: str) -> State | None:
    """Where a reviewer's answers lead once they make the outcome definite: `ready_to_approve` when
    the criteria are met, `pending_physician_review` when adverse; None while information is needed."""
    if outcome == CRITERIA_MET:
        return State.READY_TO_APPROVE
    if outcome in ADVERSE_OUTCOMES:
        return State.PENDING_PHYSICIAN_REVIEW
    return None


def allowed_actions(
    state: State | str, role: Role | str, *, outcome: str | None, nurse_corrected: bool = False
) -> list[Action]:
    """Actions `role` may take now (reason requirements aside), for buttons in a workbench."""
    result = []
    for action in Action:
        try:
            plan(
                state,
                action,
                role,
                outcome=outcome,
                reason="-",
                actor_is_submitter=True,
                nurse_corrected=nurse_corrected,
            )
        except LifecycleError:
            continue
        result.append(action)
    return result


def _parse(enum: type[_E], value: _E | str, what: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(m.value for m in enum)
        raise LifecycleError(f"unknown_{what}", f"unknown {what} {value!r}; one of {known}", 422) from None


def _words(value: StrEnum) -> str:
    return value.value.replace("_", " ")
