"""The store decides through a decider kept per policy id (routes remembered, templates of repeated
combinations): the same determinations and the same errors as ``decide``, from several threads, and
with the policies it was given, even after they are replaced."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from medpolicy import CaseError, PolicySet, decide, load_policies
from medpolicy.errors import MedpolicyError
from medpolicy.store import Store

CODES = [["77425"], ["77424", "77469"], ["77770"], ["19301"], ["0W3G0ZZ"]]
DX = [["C20"], ["C18.7"], ["C50.911"], ["C21.1"], ["C99.9"]]
MARGINS = [{}, {"margin_status": "positive"}, {"margin_status": "R0"}, {"margin_distance_mm": 0.5}]
MORE = [
    {},
    {"t_stage": "pT4b"},
    {"t_stage": "rT2", "recurrent": True},
    {"line_of_business": "medicare_advantage"},
]


def cases() -> list[dict[str, Any]]:
    out = []
    for n, (codes, dx, margin, more) in enumerate(itertools.product(CODES, DX, MARGINS, MORE)):
        day = ["2024-03-01", "2010-05-05", "1995-01-01"][n % 3]
        out.append({"id": f"c{n}", "date_of_service": day, "procedure_codes": codes, "diagnosis_codes": dx})
        out[-1] |= margin | more
    out.append({"date_of_service": "2024-03-01", "procedure_codes": ["77425"], "margin_status": "bogus"})
    out.append({"date_of_service": "2024-02-30", "procedure_codes": ["77425"]})
    return out


def answer(fn: Any, case: dict[str, Any]) -> Any:
    try:
        return fn(case).to_json(detail="full")
    except MedpolicyError as e:
        return (e.code, [fe.to_dict() for fe in e.errors] if isinstance(e, CaseError) else str(e))


@pytest.mark.parametrize("policy_id", [None, "bluekc-iort", "nope"])
def test_the_store_decides_as_decide_does(tmp_path: Path, policies: PolicySet, policy_id: str | None) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}", policies=policies)
    try:
        batch = cases() * 3  # a combination's template is learnt the second time it comes
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda c: answer(lambda x: store.decide(x, policy_id=policy_id), c), batch))
        expected = [answer(lambda x: decide(x, policies, policy_id=policy_id), c) for c in batch]
        assert got == expected
        if policy_id == "nope":
            assert got[0][0] == "policy_not_found"
    finally:
        store.close()


def test_replaced_policies_are_the_ones_used(tmp_path: Path, policies: PolicySet) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}", policies=policies)
    try:
        case = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"]}
        first = store.decide(case)
        other = load_policies()  # equal content, other objects: determinations point at them
        store.policies = other
        again = store.decide(case)
        assert again.policy is other.get(again.policy.id)
        assert again.policy is not first.policy
    finally:
        store.close()
