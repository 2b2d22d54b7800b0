"""Conflicting facts go to a person: the engine says a determination rests on a conflict, the life
cycle never approves it automatically, and the reviewer sees the conflict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medpolicy import Outcome, PolicySet, decide
from medpolicy.store import Store
from medpolicy.store.lifecycle import (
    Action,
    ActionNotPermittedError,
    Role,
    engine_action,
    plan,
    rests_on_conflict,
)

RECTAL = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"]}
CLOSE_BUT_10_MM = {**RECTAL, "margin_status": "close", "margin_distance_mm": 10, "t_stage": "pT4b"}


def test_a_decisive_conflict_is_flagged_and_shown_in_the_json(policies: PolicySet) -> None:
    d = decide(CLOSE_BUT_10_MM, policies)
    assert d.outcome is Outcome.MEDICALLY_NECESSARY  # the given value is used ...
    assert d.rests_on_conflict  # ... but the outcome rests on it
    body = d.to_dict()
    assert "rests_on_conflict" in body["flags"]
    (c,) = body["conflicts"]
    assert (c["fact"], c["given"], c["alternative"], c["decisive"]) == (
        "margin_status",
        "close",
        "negative",
        True,
    )
    assert "margin_distance_mm 10 classifies as 'negative'" in c["message"]
    assert body == d._build_dict()
    compact = d.to_dict(detail="compact")
    assert compact["flags"] == body["flags"]
    assert compact["conflicts"] == body["conflicts"]
    assert "explanation" not in compact


def test_a_conflict_that_cannot_change_the_outcome_is_shown_but_not_flagged(policies: PolicySet) -> None:
    d = decide({**RECTAL, "margin_status": "close", "margin_distance_mm": 0.8, "t_stage": "pT4b"}, policies)
    assert d.conflicts == [
        {
            "fact": "margin_status",
            "given": "close",
            "alternative": "positive",
            "message": d.conflicts[0]["message"],
            "decisive": False,
        }
    ]
    assert not d.rests_on_conflict


def test_the_engine_routes_criteria_met_on_a_conflict_to_a_physician() -> None:
    assert engine_action("medically_necessary", conflict=True) is Action.ROUTE_TO_PHYSICIAN
    assert engine_action("medically_necessary") is Action.APPROVE
    assert engine_action("investigational", conflict=True) is Action.ROUTE_TO_PHYSICIAN
    with pytest.raises(ActionNotPermittedError, match="rests on conflicting facts"):
        plan("received", "approve", Role.SYSTEM, outcome="medically_necessary", reason=None, conflict=True)
    # a person may still approve once they have looked
    plan("pending_physician_review", "approve", Role.PHYSICIAN, outcome="medically_necessary", reason=None)


def test_rests_on_conflict_reads_the_stored_determination() -> None:
    assert rests_on_conflict({"flags": ["rests_on_conflict"]})
    assert not rests_on_conflict({"flags": ["policy_review_overdue"]})
    assert not rests_on_conflict({})
    assert not rests_on_conflict(None)


@pytest.fixture
def store(tmp_path: Path, policies: PolicySet) -> Any:
    s = Store.open(f"sqlite:///{tmp_path / 'c.db'}", policies=policies)
    yield s
    s.close()


def test_the_store_never_approves_a_request_that_rests_on_a_conflict(store: Any) -> None:
    pa, _ = store.create_pa_request(CLOSE_BUT_10_MM, submitter="ehr-1")
    assert pa.state == "pending_physician_review"
    (_, routed) = store.list_audit(pa.id)
    assert routed.action == "route_to_physician"
    assert routed.reason.startswith("the determination rests on conflicting facts")
    assert "margin_distance_mm 10" in routed.reason
    # without the conflict the same request is approved by the engine
    ok, _ = store.create_pa_request({**CLOSE_BUT_10_MM, "margin_distance_mm": 1.5}, submitter="ehr-1")
    assert ok.state == "approved"


@pytest.mark.parametrize(
    "case",
    [
        {
            **RECTAL,
            "margin_status": "positive",
            "t_stage": "pT4b",
            "tumor_site": "rectum",
            "diagnosis_codes": ["C18.7"],
        },
        {
            **RECTAL,
            "margin_status": "positive",
            "t_stage": "rT2",
            "recurrent": True,
            "margin_distance_mm": 10,
        },
        {
            "date_of_service": "2003-05-01",
            "procedure_codes": ["77469"],
            "diagnosis_codes": ["C20", "C78.7"],
            "metastatic": False,
            "treatment_intent": "curative",
            "expected_curative": True,
        },
    ],
)
def test_each_kind_of_conflict_reaches_a_person(store: Any, case: dict[str, Any]) -> None:
    pa, _ = store.create_pa_request(case, submitter="ehr-1")
    assert pa.recommendation == "medically_necessary" or pa.determination.outcome == "medically_necessary"
    assert pa.state == "pending_physician_review"
