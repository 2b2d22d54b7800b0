"""Property: for any claim lines and facts (valid or not), screening answers as ``decide`` does: the same
outcome, version and missing facts, or, where ``decide`` rejects the case, the line in the errors with
the same error code."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

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
        "margin_status": st.sampled_from(["negative", "close", "positive", "R2", "wide"]),
        "margin_distance_mm": st.sampled_from([0.5, 1.0, 2.0, 3.5]),
        "t_stage": st.sampled_from(["pT4b", "pT3", "rT2", "ypT4a", "T9"]),
        "recurrent": st.booleans(),
        "metastatic": st.booleans(),
        "treatment_intent": st.sampled_from(["curative", "palliative"]),
    },
)
LINE = st.tuples(CODES, DX, DATES, FACTS)


def _iso(raw: str) -> str:
    return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}" if raw.isdigit() and len(raw) == 8 else raw


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=12))
def test_screening_answers_as_decide_for_any_lines(lines: list[tuple[Any, ...]], tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    facts_cols = [
        "margin_status",
        "margin_distance_mm",
        "t_stage",
        "recurrent",
        "metastatic",
        "treatment_intent",
    ]
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
    s = screen([folder / "c.csv"], out, facts=folder / "f.csv")
    assert s.balanced
    got = {r[0]: r for r in result_rows(out)}
    errors = {e["claim_id"]: e["code"] for e in s.errors}
    for k, (code, dx, date, facts) in enumerate(lines):
        case: dict[str, Any] = {"procedure_codes": [code.strip()], "date_of_service": _iso(date), **facts}
        if dx:
            case["diagnosis_codes"] = dx
        try:
            det = decide(case, POLICIES)
        except CaseError as e:
            rejected = {x.code for x in e.errors}
        else:
            rejected = set()
        if rejected == {"t_category_not_in_site_chapter"}:
            # Known gap (docs/screening.md): screening classifies each column on its own, so the
            # cross-check of a staging against the AJCC chapter of the site the codes give is not made.
            continue
        if rejected:
            assert errors.get(f"c{k}") in rejected, case
            continue
        row = got[f"c{k}"]
        assert (row[2], row[3] or "", row[4]) == (
            det.outcome.value,
            ",".join(m.name for m in det.missing_facts),
            det.version.id if det.version else None,
        ), case
