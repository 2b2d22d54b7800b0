"""Several policies loaded: each line routes as ``decide`` routes a case with the line's line of business
(the plan's default when it has none), and a line no policy (or several) can take is an error, as
``decide`` raises one."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import duckdb
import pytest

from medpolicy import decide, load_policies
from medpolicy.errors import CaseError, NoPolicyApplies
from medpolicy.policy import PolicySet
from medpolicy.screening import screen

POLICIES = load_policies()
HEADER = [
    "claim_id",
    "line_number",
    "member_id",
    "procedure_code",
    "modifiers",
    "diagnosis_codes",
    "date_of_service",
    "billed_amount",
    "line_of_business",
]
# (code, diagnosis codes, line of business)
LINES = [
    ("77425", "C20", "commercial"),
    ("77425", "C50.911", "medicare_advantage"),
    ("77469", "C20", "medicare_advantage"),
    ("77424", "C18.7", "medicaid"),
    ("77425", "C49.4", ""),
    ("DDY7CZZ", "C20", "medicare_advantage"),
    ("DDY7CZZ", "C20", ""),
    ("77425", "C20", "Medicare_Advantage"),
    ("77425", "C20", "self_pay"),
    ("99213", "C20", "medicaid"),
]
FACTS = {"margin_status": "positive", "t_stage": "pT4b", "metastatic": "false"}


def _write(folder: Path) -> tuple[Path, Path]:
    claims, facts = folder / "c.csv", folder / "f.csv"
    with open(claims, "w", newline="") as c, open(facts, "w", newline="") as f:
        cw, fw = csv.writer(c), csv.writer(f)
        cw.writerow(HEADER)
        fw.writerow(["claim_id", *FACTS])
        for k, (code, dx, lob) in enumerate(LINES):
            cw.writerow([f"c{k}", 1, f"m{k}", code, "", dx, "2025-09-15", 100, lob])
            fw.writerow([f"c{k}", *FACTS.values()])
    return claims, facts


def _expected(k: int) -> tuple[str, Any]:
    code, dx, lob = LINES[k]
    case: dict[str, Any] = {
        "procedure_codes": [code],
        "diagnosis_codes": [dx],
        "date_of_service": "2025-09-15",
        "margin_status": "positive",
        "t_stage": ["pT4b"],
        "metastatic": False,
    }
    if lob:
        case["line_of_business"] = lob
    if not any(code in p.governs.codes for p in POLICIES):
        return "not_governed", None  # a line no policy governs is counted, whatever its member's plan
    try:
        det = decide(case, POLICIES)
    except (CaseError, NoPolicyApplies) as e:
        code_ = e.errors[0].code if isinstance(e, CaseError) else e.code
        return "error", code_
    if det.outcome.value == "not_applicable":
        return "not_governed", None
    return det.policy.id, (det.outcome.value, det.version.id if det.version else None)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_each_line_routes_as_decide_routes_its_case(fmt: str, tmp_path: Path) -> None:
    claims, facts = _write(tmp_path)
    if fmt == "parquet":
        pq = tmp_path / "c.parquet"
        duckdb.sql(
            f"COPY (SELECT * FROM read_csv('{claims}', all_varchar = true)) TO '{pq}' (FORMAT parquet)"
        )
        claims = pq
    out = tmp_path / "r.parquet"
    s = screen([claims], out, facts=facts, policies=POLICIES)
    assert s.balanced
    rows = {
        r[0]: r[1:]
        for r in duckdb.sql(f"SELECT claim_id, policy_id, outcome, policy_version FROM '{out}'").fetchall()
    }
    errors = {e["claim_id"]: e for e in s.errors}
    routed = set()
    for k in range(len(LINES)):
        where, what = _expected(k)
        cid = f"c{k}"
        if where == "error":
            assert errors[cid]["code"] == what, (LINES[k], errors.get(cid))
            assert errors[cid]["reason"]
        elif where == "not_governed":
            assert cid not in rows
            assert cid not in errors
        else:
            assert rows[cid] == (where, *what), LINES[k]
            routed.add(where)
    # the lines went to two policies in one run, and the summary names both
    assert routed == {"bluekc-iort", "example-iort-medicare-advantage"}
    assert set(s.policy_id.split(",")) == routed
    assert s.in_error == sum(1 for k in range(len(LINES)) if _expected(k)[0] == "error") > 0


def test_a_medicaid_line_is_an_error_saying_no_policy_applies(tmp_path: Path) -> None:
    claims, facts = _write(tmp_path)
    s = screen([claims], tmp_path / "r.parquet", facts=facts, policies=POLICIES)
    medicaid = next(e for e in s.errors if e["claim_id"] == "c3")
    assert medicaid["code"] == "no_policy_applies"
    assert "medicaid" in medicaid["reason"]
    bad = next(e for e in s.errors if e["claim_id"] == "c8")
    assert (bad["code"], bad["field"]) == ("invalid_value", "line_of_business")


def test_without_a_plan_several_policies_governing_a_code_is_an_error(tmp_path: Path) -> None:
    claims, facts = _write(tmp_path)
    no_plan = PolicySet(POLICIES.policies)
    s = screen([claims], tmp_path / "r.parquet", facts=facts, policies=no_plan)
    assert s.balanced
    # 77425 is governed by all three: no line of business can choose without the plan
    assert {e["code"] for e in s.errors if e["claim_id"] == "c0"} == {"several_policies_apply"}
    # every code of these lines is governed by two policies or more (DDY7CZZ: Blue KC's and both
    # examples' ICD-10-PCS lists): nothing is screened, every governed line is reported
    assert s.written == 0
    assert s.in_error == s.governed == 9


def test_a_named_policy_screens_every_line_whatever_its_line_of_business(tmp_path: Path) -> None:
    claims, facts = _write(tmp_path)
    out = tmp_path / "r.parquet"
    s = screen([claims], out, facts=facts, policies=POLICIES, policy_id="example-iort-medicare-advantage")
    assert s.balanced
    assert {r[0] for r in duckdb.sql(f"SELECT DISTINCT policy_id FROM '{out}'").fetchall()} == {
        "example-iort-medicare-advantage"
    }
    # only a line of business decide does not know (a wrong case, an unknown plan) is refused
    assert sorted(e["claim_id"] for e in s.errors) == ["c7", "c8"]
