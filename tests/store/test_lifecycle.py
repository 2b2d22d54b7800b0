"""The prior-authorization life cycle (pure): who may take which action from which state."""

from __future__ import annotations

import pytest

from medpolicy.store.lifecycle import (
    FINAL_STATES,
    Action,
    ActionNotPermittedError,
    InvalidTransitionError,
    LifecycleError,
    ReasonRequiredError,
    Role,
    State,
    allowed_actions,
    engine_action,
    plan,
)

MET = "medically_necessary"


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        ("medically_necessary", Action.APPROVE),
        ("information_needed", Action.REQUEST_INFORMATION),
        ("investigational", Action.ROUTE_TO_PHYSICIAN),
        ("not_medically_necessary", Action.ROUTE_TO_PHYSICIAN),
        ("not_applicable", None),
    ],
)
def test_the_engine_approves_pends_or_routes_but_never_denies(outcome: str, action: Action | None) -> None:
    assert engine_action(outcome) is action


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("outcome", ["investigational", "not_medically_necessary", MET])
def test_the_system_can_never_deny(state: State, outcome: str) -> None:
    with pytest.raises(ActionNotPermittedError, match="a system may not deny"):
        plan(state, Action.DENY, Role.SYSTEM, outcome=outcome, reason="engine says so")


@pytest.mark.parametrize("role", [Role.NURSE, Role.SUBMITTER])
def test_only_a_physician_may_deny(role: Role) -> None:
    with pytest.raises(ActionNotPermittedError) as info:
        plan(State.PENDING_PHYSICIAN_REVIEW, Action.DENY, role, outcome="investigational", reason="no")
    assert info.value.code == "action_not_permitted"
    assert info.value.status == 403


def test_a_physician_denial_goes_to_denied() -> None:
    t = plan(
        State.PENDING_PHYSICIAN_REVIEW,
        Action.DENY,
        Role.PHYSICIAN,
        outcome="investigational",
        reason="IORT for this site is investigational under the policy",
    )
    assert (t.from_state, t.to_state) == (State.PENDING_PHYSICIAN_REVIEW, State.DENIED)


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_denial_must_give_a_reason(reason: str | None) -> None:
    with pytest.raises(ReasonRequiredError, match="specific reason") as info:
        plan(
            State.PENDING_PHYSICIAN_REVIEW,
            Action.DENY,
            Role.PHYSICIAN,
            outcome="investigational",
            reason=reason,
        )
    assert (info.value.code, info.value.status) == ("reason_required", 422)


def test_a_nurse_may_approve_only_when_criteria_are_met() -> None:
    t = plan(State.RECEIVED, Action.APPROVE, Role.NURSE, outcome=MET, reason=None)
    assert t.to_state is State.APPROVED
    for outcome in (
        "investigational",
        "not_medically_necessary",
        "information_needed",
        "not_applicable",
        None,
    ):
        with pytest.raises(ActionNotPermittedError, match="only when the criteria are met"):
            plan(State.PENDING_PHYSICIAN_REVIEW, Action.APPROVE, Role.NURSE, outcome=outcome, reason=None)


def test_the_system_may_approve_only_when_criteria_are_met() -> None:
    assert (
        plan(State.RECEIVED, Action.APPROVE, Role.SYSTEM, outcome=MET, reason=None).to_state is State.APPROVED
    )
    with pytest.raises(ActionNotPermittedError):
        plan(State.RECEIVED, Action.APPROVE, Role.SYSTEM, outcome="information_needed", reason=None)


def test_a_physician_may_approve_against_the_engine() -> None:
    t = plan(
        State.PENDING_PHYSICIAN_REVIEW, Action.APPROVE, Role.PHYSICIAN, outcome="investigational", reason="x"
    )
    assert t.to_state is State.APPROVED


def test_a_nurse_routes_to_a_physician_and_requests_information() -> None:
    assert (
        plan(State.RECEIVED, Action.ROUTE_TO_PHYSICIAN, Role.NURSE, outcome=None, reason=None).to_state
        is State.PENDING_PHYSICIAN_REVIEW
    )
    assert (
        plan(
            State.PENDING_PHYSICIAN_REVIEW, Action.REQUEST_INFORMATION, Role.NURSE, outcome=None, reason=None
        ).to_state
        is State.INFORMATION_NEEDED
    )


def test_only_the_submitter_may_withdraw() -> None:
    t = plan(
        State.INFORMATION_NEEDED,
        Action.WITHDRAW,
        Role.SUBMITTER,
        outcome=None,
        reason=None,
        actor_is_submitter=True,
    )
    assert t.to_state is State.WITHDRAWN
    with pytest.raises(ActionNotPermittedError, match="only the submitter"):
        plan(
            State.RECEIVED,
            Action.WITHDRAW,
            Role.SUBMITTER,
            outcome=None,
            reason=None,
            actor_is_submitter=False,
        )
    for role in (Role.NURSE, Role.PHYSICIAN, Role.SYSTEM):
        with pytest.raises(ActionNotPermittedError):
            plan(State.RECEIVED, Action.WITHDRAW, role, outcome=None, reason=None)


def test_provide_information_asks_the_engine_again() -> None:
    t = plan(
        State.INFORMATION_NEEDED,
        Action.PROVIDE_INFORMATION,
        Role.SUBMITTER,
        outcome="information_needed",
        reason=None,
        actor_is_submitter=True,
    )
    assert t.to_state is None


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
@pytest.mark.parametrize("action", list(Action))
def test_nothing_leaves_a_final_state(final: State, action: Action) -> None:
    for role in Role:
        with pytest.raises(LifecycleError):
            plan(final, action, role, outcome=MET, reason="because", actor_is_submitter=True)


def test_a_transition_from_the_wrong_state_is_a_conflict() -> None:
    with pytest.raises(
        InvalidTransitionError, match="cannot route to physician a request that is pending"
    ) as info:
        plan(State.PENDING_PHYSICIAN_REVIEW, Action.ROUTE_TO_PHYSICIAN, Role.NURSE, outcome=None, reason=None)
    assert (info.value.code, info.value.status) == ("invalid_transition", 409)


def test_unknown_action_and_role_are_named() -> None:
    with pytest.raises(LifecycleError, match="unknown action 'escalate'") as info:
        plan(State.RECEIVED, "escalate", Role.NURSE, outcome=None, reason=None)
    assert info.value.code == "unknown_action"
    with pytest.raises(LifecycleError, match="unknown role 'admin'"):
        plan(State.RECEIVED, Action.APPROVE, "admin", outcome=MET, reason=None)


def test_allowed_actions_for_a_workbench() -> None:
    assert allowed_actions(State.PENDING_PHYSICIAN_REVIEW, Role.PHYSICIAN, outcome="investigational") == [
        Action.APPROVE,
        Action.REQUEST_INFORMATION,
        Action.DENY,
    ]
    assert allowed_actions(State.PENDING_PHYSICIAN_REVIEW, Role.NURSE, outcome="investigational") == [
        Action.REQUEST_INFORMATION
    ]
    assert allowed_actions(State.RECEIVED, Role.NURSE, outcome=MET) == [
        Action.APPROVE,
        Action.REQUEST_INFORMATION,
        Action.ROUTE_TO_PHYSICIAN,
    ]
    assert allowed_actions(State.DENIED, Role.PHYSICIAN, outcome="investigational") == []
