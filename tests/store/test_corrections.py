"""Corrections of submitted facts, in the store (SQLite and PostgreSQL): never silent, always with a
reason and the old value, and an approval resting on a nurse's correction needs a physician."""

from __future__ import annotations

from typing import Any

import pytest

from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY, MISSING_FACTS
from medpolicy.store import (
    Action,
    ActionNotPermittedError,
    InvalidActionError,
    InvalidTransitionError,
    ReasonRequiredError,
    Role,
    State,
    Store,
)
from medpolicy.store.lifecycle import CORRECT

# What the attacking nurse client sent: the provider's breast cancer rewritten into a rectal one.
REWRITE: dict[str, Any] = {"diagnosis_codes": ["C20"], "margin_status": "positive", "t_stage": "pT4b"}


def test_a_nurse_cannot_approve_by_rewriting_the_providers_facts(store: Store) -> None:
    pa, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    before = store.list_audit(pa.id)
    with pytest.raises(ReasonRequiredError) as no_reason:
        store.apply_action(pa.id, Action.APPROVE, "nurse-ann", Role.NURSE, case_update=REWRITE)
    assert no_reason.value.code == "correction_reason_required"
    with pytest.raises(ActionNotPermittedError, match="needs a physician"):
        store.apply_action(
            pa.id, Action.APPROVE, "nurse-ann", Role.NURSE, reason="the EHR had it wrong", case_update=REWRITE
        )
    after = store.get_pa_request(pa.id)
    assert after.state == State.PENDING_PHYSICIAN_REVIEW
    assert after.case == INVESTIGATIONAL  # nothing was overwritten
    assert store.list_audit(pa.id) == before
    assert len(store.list_determinations(pa.id)) == 1


def test_a_correction_is_its_own_event_with_old_value_new_value_who_and_why(store: Store) -> None:
    pa, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    corrected = store.correct_facts(
        pa.id,
        {"diagnosis_codes": ["C20"]},
        actor="nurse-ann",
        role=Role.NURSE,
        reason="the operative report says rectal primary",
        principal="client:um-platform",
    )
    assert corrected.state == State.PENDING_PHYSICIAN_REVIEW  # a correction moves nothing
    assert corrected.case["diagnosis_codes"] == ["C20"]
    event = store.list_audit(pa.id)[-1]
    assert (event.action, event.actor, event.principal, event.role) == (
        CORRECT,
        "nurse-ann",
        "client:um-platform",
        "nurse",
    )
    assert event.reason == "the operative report says rectal primary"
    assert event.details == {"fact": "diagnosis_codes", "from": ["C50.911"], "to": ["C20"], "derived": False}
    assert event.determination_id == corrected.determination_id
    assert store.list_determinations(pa.id)[0].case == INVESTIGATIONAL  # the original stays on record


def test_a_correction_needs_a_reason_a_reviewer_and_an_open_request(store: Store) -> None:
    pa, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    with pytest.raises(ReasonRequiredError):
        store.correct_facts(pa.id, {"t_stage": "pT4b"}, actor="nurse-ann", role=Role.NURSE, reason="  ")
    with pytest.raises(ActionNotPermittedError):
        store.correct_facts(pa.id, {"t_stage": "pT4b"}, actor="ehr-1", role=Role.SUBMITTER, reason="x")
    with pytest.raises(InvalidActionError) as nothing:
        store.correct_facts(pa.id, {"t_stage": "pT2"}, actor="nurse-ann", role=Role.NURSE, reason="same")
    assert nothing.value.code == "nothing_to_correct"
    store.apply_action(pa.id, Action.DENY, "dr-who", Role.PHYSICIAN, reason="investigational")
    with pytest.raises(InvalidTransitionError):
        store.correct_facts(pa.id, {"t_stage": "pT4b"}, actor="dr-who", role=Role.PHYSICIAN, reason="late")


def test_an_approval_resting_on_a_nurses_correction_needs_a_physician(store: Store) -> None:
    pa, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    store.correct_facts(pa.id, REWRITE, actor="nurse-ann", role=Role.NURSE, reason="operative report")
    assert store.get_pa_request(pa.id).recommendation == "medically_necessary"
    with pytest.raises(ActionNotPermittedError, match="needs a physician"):
        store.apply_action(pa.id, Action.APPROVE, "nurse-ann", Role.NURSE, reason="criteria met")
    approved = store.apply_action(pa.id, Action.APPROVE, "dr-who", Role.PHYSICIAN, reason="criteria met")
    assert approved.state == State.APPROVED


def test_filling_in_a_missing_fact_stays_a_nurses_job(store: Store) -> None:
    pa, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    approved = store.apply_action(
        pa.id, Action.APPROVE, "nurse-ann", Role.NURSE, reason="margin by phone", case_update=MISSING_FACTS
    )
    assert approved.state == State.APPROVED
    assert CORRECT not in [e.action for e in store.list_audit(pa.id)]


def test_the_engine_does_not_approve_on_a_nurses_correction_either(store: Store) -> None:
    pa, _ = store.create_pa_request({**INFORMATION_NEEDED, "t_stage": "pT3"}, submitter="ehr-1")
    assert pa.state == State.INFORMATION_NEEDED
    store.correct_facts(pa.id, {"t_stage": "pT4b"}, actor="nurse-ann", role=Role.NURSE, reason="path report")
    back = {k: v for k, v in MISSING_FACTS.items() if k != "t_stage"}
    after = store.apply_action(pa.id, Action.PROVIDE_INFORMATION, "ehr-1", Role.SUBMITTER, case_update=back)
    assert after.recommendation == "medically_necessary"
    assert after.state == State.PENDING_PHYSICIAN_REVIEW
    assert store.list_audit(pa.id)[-1].reason == (
        "the criteria are met on facts a nurse corrected; only a physician may approve"
    )


def test_a_physician_overrides_a_derived_fact(store: Store) -> None:
    anal = {
        **MEDICALLY_NECESSARY,
        "diagnosis_codes": ["C21.1"],
        "t_stage": "pT4",
    }  # the anus chapter has no T4b
    pa, _ = store.create_pa_request(anal, submitter="ehr-1")
    assert pa.recommendation == "investigational"
    corrected = store.correct_facts(
        pa.id,
        {"tumor_site": "rectum"},
        actor="dr-who",
        role=Role.PHYSICIAN,
        reason="anorectal junction tumour treated as rectal per the tumour board",
    )
    assert corrected.recommendation == "medically_necessary"
    event = store.list_audit(pa.id)[-1]
    assert event.details == {"fact": "tumor_site", "from": "anus", "to": "rectum", "derived": True}
    approved = store.apply_action(pa.id, Action.APPROVE, "dr-who", Role.PHYSICIAN, reason="criteria met")
    assert approved.state == State.APPROVED


def test_the_engines_name_is_reserved(store: Store) -> None:
    pa, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    for actor in ("medpolicy", " MedPolicy "):
        with pytest.raises(InvalidActionError) as info:
            store.apply_action(pa.id, Action.APPROVE, actor, Role.PHYSICIAN, reason="x")
        assert info.value.code == "reserved_actor"
