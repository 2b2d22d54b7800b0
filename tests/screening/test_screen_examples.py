"""Screening under the two example policies (issue 14): claims generated for each policy (dates across
its versions, breast, colon, sarcoma, delivery-method and trial facts in the facts table, ICD-10-PCS
codes on inpatient claims) give, line for line, what ``decide`` gives under that policy."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from screening_helpers import assert_equivalent, result_rows

from medpolicy import decide, load_policies
from medpolicy.screening import screen
from medpolicy.screening.generator import generate_claims, write_csv, write_facts, write_x12

POLICIES = load_policies()
EXAMPLES = ["example-iort-commercial", "example-iort-medicare-advantage"]


@pytest.mark.parametrize("policy_id", EXAMPLES)
@pytest.mark.parametrize("fmt", ["csv", "837i"])
def test_generated_claims_under_an_example_policy_equal_decide(
    fmt: str, policy_id: str, tmp_path: Path
) -> None:
    policy = POLICIES.get(policy_id)
    gen = generate_claims(400, 11, policy=policy)
    claims = (
        write_csv(gen, tmp_path / "c.csv")
        if fmt == "csv"
        else write_x12(gen, tmp_path / "c.837i", institutional=True)
    )
    out = tmp_path / "r.parquet"
    s = screen([claims], out, facts=write_facts(gen, tmp_path / "f.csv"), policy_id=policy_id)
    assert s.balanced
    assert s.in_error == 0
    assert assert_equivalent(result_rows(out), {c.claim_id: c for c in gen}, fmt, policy_id) == s.written
    # the generated lines reach each version and several outcomes, and the breast criteria decide some
    got = duckdb.sql(f"SELECT DISTINCT policy_version, outcome, deciding_criteria FROM '{out}'").fetchall()
    assert {v for v, _, _ in got} >= {v.id for v in policy.versions}
    assert len({o for _, o, _ in got}) >= 3
    assert any("branch" in (d or "") for _, _, d in got)
    if fmt == "837i":
        # inpatient ICD-10-PCS procedures are lines too, governed by the policy's own PCS list
        pcs = duckdb.sql(f"SELECT DISTINCT procedure_code FROM '{out}' WHERE line_number < 0").fetchall()
        assert {c for (c,) in pcs} <= policy.governs.codes
        assert pcs


def test_the_age_from_the_birth_date_decides_the_breast_line_as_decide_does(tmp_path: Path) -> None:
    """A suitable invasive breast cancer on 2025-09-01: born 1975-09-01 (50 that day) passes, born
    1975-09-02 (49) does not; a stated age that disagrees with the birth date flags the line."""
    base = (
        "trial_enrolment,histology,tumor_size_mm,margin_distance_mm,lymphovascular_invasion,er_status,"
        "brca_variant,node_status"
    )
    rest = "true,IDC,1.6 cm,3,false,positive,false,pN0"
    (tmp_path / "c.csv").write_text(
        "claim_id,line_number,member_id,procedure_code,modifiers,diagnosis_codes,date_of_service,billed_amount\n"
        + "".join(f"b{k},1,m{k},77425,,C50.411,2025-09-01,100\n" for k in range(4))
    )
    (tmp_path / "f.csv").write_text(
        f"claim_id,date_of_birth,age,{base}\n"
        f"b0,1975-09-01,,{rest}\nb1,1975-09-02,,{rest}\nb2,1975-09-01,49,{rest}\nb3,2025-09-02,,{rest}\n"
    )
    out = tmp_path / "r.parquet"
    s = screen([tmp_path / "c.csv"], out, facts=tmp_path / "f.csv", policy_id="example-iort-commercial")
    rows = {
        r[0]: r[1:]
        for r in duckdb.sql(
            f"SELECT claim_id, outcome, rests_on_conflict, disposition FROM '{out}'"
        ).fetchall()
    }
    facts = {
        "trial_enrolment": True,
        "histology": "IDC",
        "tumor_size_mm": "1.6 cm",
        "margin_distance_mm": 3,
        "lymphovascular_invasion": False,
        "er_status": "positive",
        "brca_variant": False,
        "node_status": "pN0",
    }
    for cid, extra in {
        "b0": {"date_of_birth": "1975-09-01"},
        "b1": {"date_of_birth": "1975-09-02"},
        "b2": {"date_of_birth": "1975-09-01", "age": 49},
        "b3": {"date_of_birth": "2025-09-02"},
    }.items():
        case = {
            "procedure_codes": ["77425"],
            "diagnosis_codes": ["C50.411"],
            "date_of_service": "2025-09-01",
            **facts,
            **extra,
        }
        det = decide(case, POLICIES, policy_id="example-iort-commercial")
        assert rows[cid][:2] == (det.outcome.value, det.rests_on_conflict), cid
    assert rows["b0"][0] == "medically_necessary"
    assert rows["b1"][0] == "investigational"
    # given age 49 is used, the birth date says 50: the determination rests on the conflict
    assert rows["b2"][1:] == (True, "refer_to_review")
    assert s.balanced
