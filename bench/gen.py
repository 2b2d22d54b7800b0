"""Generate mixed IORT cases for the benchmarks (seeded, so every run measures the same work)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

SITES_DX = [
    ["C20"],
    ["C20"],
    ["C20"],
    ["C19"],
    ["C21.1"],
    ["C18.7"],
    ["C25.0"],
    ["C48.0"],
    ["C49.11"],
    ["C50.911"],
    ["C16.3"],
    ["C20", "Z85.048"],
    ["C78.5"],
    ["C53.9"],
    ["C71.1"],
]
MARGINS = ["negative", "close", "positive", "gross_residual", "R0", "R1", "R2"]
STAGES = ["pT4b", "cT4a", "ypT3", "rT2", "pT2", "T3", ["cT4a", "ypT3"]]
# Sites whose AJCC chapter has no T4a/T4b (anus, pancreas): a staging must follow the site's chapter.
STAGES_T4_ONLY = ["pT4", "cT4", "ypT3", "rT2", "pT2", "T3"]
PROCS = [["77425"], ["77424", "77469"], ["77469"], ["77425", "45110"], ["77770"]]


def case(rng: random.Random, *, current_only: bool = False) -> dict[str, Any]:
    start = dt.date(2009, 10, 6) if current_only else dt.date(1986, 1, 1)
    days = (dt.date(2026, 12, 31) - start).days
    c: dict[str, Any] = {
        "id": f"case-{rng.getrandbits(40):010x}",
        "date_of_service": (start + dt.timedelta(days=rng.randrange(days))).isoformat(),
        "procedure_codes": rng.choice(PROCS),
        "diagnosis_codes": rng.choice(SITES_DX),
    }
    if rng.random() < 0.8:
        if rng.random() < 0.7:
            c["margin_status"] = rng.choice(MARGINS)
        else:
            c["margin_distance_mm"] = round(rng.uniform(0, 6), 1)
    if rng.random() < 0.75:
        c["t_stage"] = rng.choice(STAGES_T4_ONLY if c["diagnosis_codes"][0] in ("C21.1", "C25.0") else STAGES)
    if rng.random() < 0.6:
        c["recurrent"] = rng.random() < 0.3
    if not current_only and rng.random() < 0.5:
        c["metastatic"] = rng.random() < 0.3
        c["treatment_intent"] = rng.choice(["curative", "palliative"])
    return c


def cases(n: int, seed: int = 20261126, *, current_only: bool = False) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [case(rng, current_only=current_only) for _ in range(n)]
