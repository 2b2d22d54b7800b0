"""Shared checks of the screening tests: a result equals ``decide`` line for line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from medpolicy import decide, load_policies
from medpolicy.screening.generator import GenClaim

POINTERS = {"837p": True, "fhir": True}


def result_rows(path: Path) -> list[tuple[Any, ...]]:
    src = f"'{path}/*.parquet'" if path.is_dir() else f"'{path}'"
    return duckdb.sql(
        "SELECT claim_id, line_number, outcome, missing_facts, policy_version, disposition, rests_on_conflict "
        f"FROM {src}"
    ).fetchall()


def assert_equivalent(
    rows: list[tuple[Any, ...]], claims: dict[str, GenClaim], fmt: str, policy_id: str | None = None
) -> int:
    """Every screened line's outcome, missing facts, version and conflict flag equal ``decide`` on the
    same case
    (``policy_id``: decided under that policy, as screening with ``--policy``)."""
    policies = load_policies()
    for cid, ln, outcome, missing, version, _, flag in rows:
        c = claims[cid]
        line = next(x for x in c.all_lines() if x.line_number == ln)
        case = c.case(
            line, pointers=POINTERS.get(fmt, False) and not c.institutional, line_of_business=fmt != "rif"
        )
        det = decide(case, policies, policy_id=policy_id)
        expected = (
            det.outcome.value,
            ",".join(m.name for m in det.missing_facts),
            det.version.id if det.version else None,
            det.rests_on_conflict,
        )
        assert (outcome, missing or "", version, flag) == expected, (fmt, cid, ln, case)
    return len(rows)
