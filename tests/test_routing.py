"""Routing: which policy decides a case is a function of the plan's configuration (plan.yaml) and the
case's line of business and group; none or several is a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medpolicy import CaseError, NoPolicyApplies, Outcome, PolicyLoadError, PolicySet, decide, load_policies

ROOT = Path(__file__).resolve().parents[1] / "policies"
RECTAL = {
    "date_of_service": "2025-09-01",
    "procedure_codes": ["77425"],
    "diagnosis_codes": ["C20"],
    "margin_status": "positive",
    "t_stage": "pT4b",
}


def test_a_case_without_a_line_of_business_goes_to_the_commercial_default(policies: PolicySet) -> None:
    d = decide(RECTAL, policies)
    assert d.policy.id == "bluekc-iort"
    assert d.outcome is Outcome.MEDICALLY_NECESSARY


@pytest.mark.parametrize(
    ("routing", "policy_id"),
    [
        ({"line_of_business": "commercial"}, "bluekc-iort"),
        ({"line_of_business": "commercial", "group": "SOME-OTHER-GROUP"}, "bluekc-iort"),
        ({"line_of_business": "commercial", "group": "EXAMPLE-PPO"}, "example-iort-commercial"),
        ({"line_of_business": "medicare_advantage"}, "example-iort-medicare-advantage"),
        (
            {"line_of_business": "medicare_advantage", "group": "EXAMPLE-PPO"},
            "example-iort-medicare-advantage",
        ),
    ],
)
def test_the_line_of_business_and_group_choose_the_policy(
    policies: PolicySet, routing: dict[str, str], policy_id: str
) -> None:
    d = decide({**RECTAL, **routing}, policies)
    assert d.policy.id == policy_id
    assert d.case.metadata == routing  # recorded with the determination


def test_no_policy_in_force_for_medicaid_is_an_error_naming_the_policies(policies: PolicySet) -> None:
    with pytest.raises(NoPolicyApplies, match="medicaid members") as exc:
        decide({**RECTAL, "line_of_business": "medicaid"}, policies)
    assert "bluekc-iort" in str(exc.value)


def test_an_unknown_line_of_business_is_a_field_error(policies: PolicySet) -> None:
    with pytest.raises(CaseError) as exc:
        decide({**RECTAL, "line_of_business": "medicare"}, policies)
    (err,) = exc.value.errors
    assert (err.code, err.field, err.value) == ("invalid_value", "line_of_business", "medicare")


def test_a_request_no_policy_governs_falls_to_the_one_policy_in_force(policies: PolicySet) -> None:
    d = decide({**RECTAL, "procedure_codes": ["99213"]}, policies)
    assert (d.policy.id, d.outcome) == ("bluekc-iort", Outcome.NOT_APPLICABLE)


def test_a_service_stated_in_the_case_routes_like_a_code(policies: PolicySet) -> None:
    case = {
        **RECTAL,
        "procedure_codes": ["77770"],
        "intraoperative_radiation": True,
        "delivery_method": "HDR",
    }
    d = decide({**case, "line_of_business": "commercial", "group": "EXAMPLE-HMO"}, policies)
    assert (d.policy.id, d.outcome) == ("example-iort-commercial", Outcome.MEDICALLY_NECESSARY)


def _copy(tmp_path: Path, plan: str) -> Path:
    for name in ("bluekc-iort", "example-iort-commercial", "example-iort-medicare-advantage"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "plan.yaml").write_text(plan)
    return tmp_path


def test_routes_that_give_one_member_two_policies_are_refused_at_load(tmp_path: Path) -> None:
    root = _copy(
        tmp_path,
        "plan: test\nroutes:\n  - {policy: bluekc-iort, line_of_business: [commercial]}\n"
        "  - {policy: example-iort-commercial, line_of_business: [commercial]}\n",
    )
    with pytest.raises(PolicyLoadError) as exc:
        load_policies(root)
    (problem,) = exc.value.problems
    assert problem.file.endswith("plan.yaml")
    assert problem.line == 4
    assert "a case must have one policy" in problem.message


def test_a_route_to_an_unknown_policy_names_file_and_line(tmp_path: Path) -> None:
    root = _copy(tmp_path, "plan: test\nroutes:\n  - {policy: nope, line_of_business: [commercial]}\n")
    with pytest.raises(PolicyLoadError) as exc:
        load_policies(root)
    assert [(p.line, "unknown policy 'nope'" in p.message) for p in exc.value.problems] == [(3, True)]


def test_without_a_plan_several_governing_policies_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path, "")
    (root / "plan.yaml").unlink()
    policies = load_policies(root)
    assert policies.plan is None
    with pytest.raises(NoPolicyApplies, match="3 policies govern"):
        decide(RECTAL, policies)
    assert decide(RECTAL, policies, policy_id="bluekc-iort").outcome is Outcome.MEDICALLY_NECESSARY


def test_without_a_default_a_case_must_name_its_line_of_business(tmp_path: Path) -> None:
    root = _copy(tmp_path, "plan: test\nroutes:\n  - {policy: bluekc-iort, line_of_business: [commercial]}\n")
    policies = load_policies(root)
    with pytest.raises(NoPolicyApplies, match="names no line_of_business"):
        decide(RECTAL, policies)
    assert decide({**RECTAL, "line_of_business": "commercial"}, policies).policy.id == "bluekc-iort"


def test_a_batch_decider_routes_each_case_like_decide(policies: PolicySet) -> None:
    from medpolicy.deciding import decider

    one = decider(policies)
    cases = [
        RECTAL,
        {**RECTAL, "line_of_business": "medicare_advantage"},
        {**RECTAL, "line_of_business": "commercial", "group": "EXAMPLE-PPO"},
        {**RECTAL, "procedure_codes": ["99213"]},
        {**RECTAL, "procedure_codes": ["77770"], "intraoperative_radiation": True, "group": "EXAMPLE-HMO"},
    ]
    for case in cases * 2:
        a, b = one(case), decide(case, policies)
        assert (a.policy.id, a.outcome) == (b.policy.id, b.outcome)
    with pytest.raises(NoPolicyApplies):
        one({**RECTAL, "line_of_business": "medicaid"})
