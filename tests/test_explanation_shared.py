"""The explanation's parts shared between determinations (``explanation._key_parts``) are what each
determination would get on its own: basis, statement, parameters and rationale, for every policy, on
cases that differ in id and date but fall under the same result, and on cases that derive facts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from case_strategies import cases
from medpolicy import CaseError, PolicySet, decide, load_policies
from medpolicy.explanation import _basis, _deciding_facts, _parameters, _rationale, explanation, fact_label

POLICIES: PolicySet = load_policies()


def reference(d: Any) -> dict[str, Any]:
    """The explanation's parts computed for this determination alone (as before they were shared)."""
    names = _deciding_facts(d)
    basis, statement = _basis(d)
    case = d.case
    facts = [
        {
            "name": n,
            "label": fact_label(n),
            "value": case.display.get(n),
            "unit": d.policy.fact(n).unit,
            "source": case.sources.get(n, "unknown"),
        }
        for n in names
    ]
    return {
        "facts": facts,
        "basis": basis,
        "statement": statement,
        "parameters": _parameters(d, names),
        "rationale": _rationale(d),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cases(),
    st.lists(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2026, 1, 1)), min_size=2, max_size=3),
)
def test_shared_parts_are_each_determinations_own(raw: dict[str, Any], dates: list[dt.date]) -> None:
    for n, day in enumerate(dates):
        case = {**raw, "id": f"case-{n}", "date_of_service": day.isoformat()}
        try:
            d = decide(case, POLICIES)
        except CaseError:
            return
        got = explanation(d)
        assert {k: got[k] for k in ("facts", "basis", "statement", "parameters", "rationale")} == reference(d)


def test_a_caller_changing_its_explanation_does_not_change_the_next(policies: PolicySet) -> None:
    case = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"]}
    case |= {"margin_distance_mm": 0.5, "t_stage": "pT4b"}
    first = explanation(decide(case, policies))
    assert first["parameters"], "the margin band's threshold is a parameter this decision used"
    first["parameters"][0]["value"] = "changed"
    first["rationale"] = None
    again = explanation(decide({**case, "id": "another"}, policies))
    assert again["parameters"][0]["value"] != "changed"
    assert again == {**first, "parameters": again["parameters"], "rationale": again["rationale"]}
