"""Hypothesis strategies for raw cases of every kind the policies decide: known and unknown facts,
codes that route to each policy, stagings and margins as clinicians write them, notes, conflicts and
metadata. Shared by the tests that compare two constructions of the same determination (``tests/`` is
on ``sys.path``: its conftest sits there and pytest prepends its folder)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

DX = ["C20", "C19", "C21.1", "C18.7", "C25.0", "C78.5", "C50.911", "C16.3", "C49.A5", "Z85.048"]
PROCS = ["77425", "77424", "77469", "77770", "45110", "19301"]
STAGINGS = ["pT4b", "TX", "cT4N1M1", "ypT3", "pT2", "rT2", "T4", "cT4a"]
MARGINS = ["negative", "close", "positive", "gross_residual", "R0", "R1"]


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """A raw case: codes always, every other fact (and the id and date of service) present or not."""
    case: dict[str, Any] = {
        "procedure_codes": draw(st.lists(st.sampled_from(PROCS), min_size=1, max_size=2, unique=True)),
        "diagnosis_codes": draw(st.lists(st.sampled_from(DX), min_size=1, max_size=2, unique=True)),
    }
    if draw(st.booleans()):
        day = draw(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 1, 1)))
        case["date_of_service"] = day.isoformat()
    if draw(st.booleans()):
        case["margin_status"] = draw(st.sampled_from(MARGINS))
    elif draw(st.booleans()):
        case["margin_distance_mm"] = draw(st.sampled_from([0.5, 1.0, 2.0, 4.5]))
    if draw(st.booleans()):
        case["t_stage"] = draw(st.sampled_from(STAGINGS))
    for fact in ("recurrent", "metastatic"):
        if draw(st.booleans()):
            case[fact] = draw(st.booleans())
    if draw(st.booleans()):
        case["treatment_intent"] = draw(st.sampled_from(["curative", "palliative"]))
    if draw(st.booleans()):
        case["id"] = draw(st.text(min_size=1, max_size=12))
    return case
