"""Every case beside every policy decides as it says (outcome, deciding criteria, missing facts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from medpolicy import Policy, load_policies
from medpolicy.checking import PolicyCase, load_cases, run_case

POLICIES = load_policies()
CASES = [(p, c) for p in POLICIES for c in load_cases(p)]


def test_the_iort_policy_has_at_least_60_cases() -> None:
    assert sum(1 for p, _ in CASES if p.id == "bluekc-iort") >= 60


@pytest.mark.parametrize(("policy", "case"), CASES, ids=[f"{p.id}:{c.name}" for p, c in CASES])
def test_case(policy: Policy, case: PolicyCase) -> None:
    result = run_case(policy, case)
    assert result.ok, "\n".join(result.failures)


def test_a_wrong_expectation_is_reported(iort: Policy) -> None:
    good = next(c for c in load_cases(iort) if c.name == "rectal pT4b positive margin")
    wrong = PolicyCase(
        good.name,
        good.case,
        {**good.expect, "outcome": "investigational", "missing": ["t_stage"]},
        good.file,
        good.line,
    )
    failures = run_case(iort, wrong).failures
    assert any(f.startswith("outcome: expected investigational, got medically_necessary") for f in failures)
    assert any(f.startswith("missing: expected ['t_stage'], got []") for f in failures)


def test_every_version_and_every_boundary_is_covered(iort: Policy) -> None:
    dates = {str(c.case.get("date_of_service")) for c in load_cases(iort)}
    for v in iort.versions:
        assert v.effective_from.isoformat() in dates, f"no case on the first day of {v.id}"
        before = (v.effective_from - dt.timedelta(days=1)).isoformat()
        assert before in dates, f"no case on the day before {v.id}"


def test_cases_live_beside_the_policy(iort: Policy) -> None:
    assert Path(iort.folder, "cases").is_dir()
    assert {Path(c.file).parent.name for c in load_cases(iort)} == {"cases"}
