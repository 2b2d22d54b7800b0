"""Property: for any claim lines and facts (valid or not), screening answers as ``decide`` does: the same
outcome, version, missing facts and conflict flag (``rests_on_conflict``), or, where ``decide`` rejects
the case (the AJCC chapter cross-check included), the line in the errors with the same error code; a line
the policy does not govern (``Policy.governs_case``: neither its code nor the service stated) is not
written."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from screening_helpers import result_rows

from medpolicy import decide, load_policies
from medpolicy.errors import CaseError
from medpolicy.screening import screen

POLICIES = load_policies()
CODES = st.sampled_from(["77425", "77424", "77469", "DDY7CZZ", "77425 "])
DX = st.lists(
    st.sampled_from(["C20", "C19", "C18.7", "C25.0", "C49.4", "Z85.048", "C78.5", "C99.99", "C18"]),
    max_size=3,
)
DATES = st.sampled_from(
    ["2024-03-01", "2003-05-01", "2005-01-01", "1980-01-01", "2024-02-30", "20240301", "soon"]
)
FACTS = st.fixed_dictionaries(
    {},
    optional={
        "tumor_site": st.sampled_from(["rectum", "pancreas", "colon", "soft_tissue_sarcoma"]),
        "margin_status": st.sampled_from(["negative", "close", "positive", "R2", "wide"]),
        "margin_distance_mm": st.sampled_from([0.5, 1.0, 2.0, 3.5]),
        "t_stage": st.sampled_from(["pT4b", "pT3", "rT2", "ypT4a", "T9", "cT4bN1M1", "pT1cN0M0"]),
        "recurrent": st.booleans(),
        "metastatic": st.booleans(),
        "treatment_intent": st.sampled_from(["curative", "palliative"]),
    },
)
LINE = st.tuples(CODES, DX, DATES, FACTS)

# The example commercial policy: breast criteria (an age from the birth date and the date of service),
# a delivery method from the procedure code, histology from the diagnosis codes.
# Brachytherapy and other codes: in scope only when the facts state the service (``governs_service``).
EX_CODES = st.sampled_from(["77425", "77424", "77469", "77770", "77771", "99213"])
EX_DX = st.lists(
    st.sampled_from(["C50.911", "D05.10", "C20", "C18.7", "C48.0", "C78.5", "C25.0"]), max_size=2
)
EX_DATES = st.sampled_from(["2024-03-01", "2025-08-15", "2026-02-28", "2023-12-31", "20250901"])
EX_FACTS = st.fixed_dictionaries(
    {},
    optional={
        "date_of_birth": st.sampled_from(
            ["1975-08-15", "1975-08-16", "1976-02-29", "2025-09-01", "1-1-1970"]
        ),
        "age": st.sampled_from([49, 50, 51.5, 70]),
        "delivery_method": st.sampled_from(["electron_beam", "low_energy_xray", "HDR"]),
        "tumor_site": st.sampled_from(["breast", "rectum", "colon"]),
        "histology": st.sampled_from(["invasive_ductal", "dcis", "ILC"]),
        "margin_distance_mm": st.sampled_from([1.0, 2.0, 3.5]),
        "margin_status": st.sampled_from(["negative", "close", "positive"]),
        "t_stage": st.sampled_from(["pT4b", "pT1c", "rT2"]),
        "trial_enrolment": st.booleans(),
        "intraoperative_radiation": st.booleans(),
        "tumor_size_mm": st.sampled_from([12, 22, 30]),
        "lymphovascular_invasion": st.booleans(),
        "er_status": st.sampled_from(["positive", "negative"]),
        "brca_variant": st.booleans(),
        "node_status": st.sampled_from(["negative", "positive"]),
        "nuclear_grade": st.sampled_from(["low", "high"]),
        "screen_detected": st.booleans(),
    },
)
EX_LINE = st.tuples(EX_CODES, EX_DX, EX_DATES, EX_FACTS)


def _iso(raw: str) -> str:
    return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}" if raw.isdigit() and len(raw) == 8 else raw


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _check(lines: list[tuple[Any, ...]], folder: Path, policy_id: str | None) -> None:
    """Screen the lines (facts by claim) and compare every line with ``decide`` on the same case:
    outcome, missing facts, version and conflict flag, or the same error code."""
    facts_cols = sorted({k for *_, facts in lines for k in facts})
    with open(folder / "c.csv", "w", newline="") as c, open(folder / "f.csv", "w", newline="") as f:
        cw, fw = csv.writer(c), csv.writer(f)
        cw.writerow(
            [
                "claim_id",
                "line_number",
                "member_id",
                "procedure_code",
                "modifiers",
                "diagnosis_codes",
                "date_of_service",
                "billed_amount",
            ]
        )
        fw.writerow(["claim_id", *facts_cols])
        for k, (code, dx, date, facts) in enumerate(lines):
            cw.writerow([f"c{k}", 1, "m", code, "", "|".join(dx), date, 10])
            fw.writerow([f"c{k}", *(_text(facts[c]) if c in facts else "" for c in facts_cols)])
    out = folder / "r.parquet"
    s = screen([folder / "c.csv"], out, facts=folder / "f.csv", policy_id=policy_id)
    assert s.balanced
    got = {r[0]: r for r in result_rows(out)}
    flags = dict(duckdb.sql(f"SELECT claim_id, rests_on_conflict FROM '{out}'").fetchall())
    errors = {e["claim_id"]: e["code"] for e in s.errors}
    for k, (code, dx, date, facts) in enumerate(lines):
        case: dict[str, Any] = {"procedure_codes": [code.strip()], "date_of_service": _iso(date), **facts}
        if dx:
            case["diagnosis_codes"] = dx
        if policy_id is not None and not POLICIES.get(policy_id).governs_case(case):
            # not in the policy's scope (neither its code nor the service stated): counted, not
            # written, its other facts unread (as any line whose code no policy governs)
            assert f"c{k}" not in got, case
            assert f"c{k}" not in errors, case
            continue
        try:
            det = decide(case, POLICIES, policy_id=policy_id)
        except CaseError as e:
            rejected = {x.code for x in e.errors}
        else:
            rejected = set()
        if rejected:
            assert errors.get(f"c{k}") in rejected, case
            continue
        assert f"c{k}" not in errors, (case, errors[f"c{k}"])
        row = got[f"c{k}"]
        assert (row[2], row[3] or "", row[4], flags[f"c{k}"]) == (
            det.outcome.value,
            ",".join(m.name for m in det.missing_facts),
            det.version.id if det.version else None,
            det.rests_on_conflict,
        ), case


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=12))
def test_screening_answers_as_decide_for_any_lines(lines: list[tuple[Any, ...]], tmp_path: Path) -> None:
    _check(lines, Path(tempfile.mkdtemp(dir=tmp_path)), None)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(EX_LINE, min_size=1, max_size=12))
def test_screening_answers_as_decide_under_the_commercial_example(
    lines: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    _check(lines, Path(tempfile.mkdtemp(dir=tmp_path)), "example-iort-commercial")
