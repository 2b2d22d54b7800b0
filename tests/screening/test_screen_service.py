"""Scope by the service given (``governs_service``): a line whose code a policy does not govern, but
whose facts-table row states the service (``intraoperative_radiation``: HDR brachytherapy IORT billed
with brachytherapy codes), is governed as ``decide`` governs such a case, under ``--policy`` and when
each line is routed by the plan (where ``decide`` refuses it, the line is in the errors with its code)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from screening_helpers import assert_service_scope, result_rows, write_service_lines

from medpolicy.screening import screen


@pytest.mark.parametrize("by_member", [False, True])
@pytest.mark.parametrize("policy_id", ["example-iort-commercial", None])
def test_a_line_stating_the_service_is_governed_as_decide_governs_it(
    policy_id: str | None, by_member: bool, tmp_path: Path
) -> None:
    claims, facts = write_service_lines(tmp_path, by_member=by_member)
    out = tmp_path / "r.parquet"
    s = screen([claims], out, facts=facts, policy_id=policy_id)
    assert s.balanced
    assert_service_scope(result_rows(out), s.errors, policy_id)
    if policy_id is not None:
        # 77770 with the service stated (true, yes, 1, TRUE), 77425 and 77424 by their codes
        written = {r[0] for r in result_rows(out)}
        assert written == {"c0", "c1", "c4", "c5", "c6", "c7", "c9"}
        assert s.in_error == 1  # c8: a line of business decide does not know
        assert s.not_governed == 2  # 77770 stated false, or not stated
    else:
        assert "no_policy_applies" in {e["code"] for e in s.errors}


def test_lines_kept_ungoverned_are_the_lines_out_of_scope(tmp_path: Path) -> None:
    claims, facts = write_service_lines(tmp_path)
    out = tmp_path / "r.parquet"
    s = screen([claims], out, facts=facts, policy_id="example-iort-commercial", keep_ungoverned=True)
    assert s.balanced
    rows = duckdb.sql(f"SELECT claim_id, outcome FROM '{out}' WHERE outcome = 'not_applicable'").fetchall()
    assert sorted(r[0] for r in rows) == ["c2", "c3"]


def test_without_the_service_column_a_line_is_scoped_by_its_code(tmp_path: Path) -> None:
    claims, _ = write_service_lines(tmp_path)
    facts = tmp_path / "other.csv"
    facts.write_text("claim_id,margin_status\nc0,positive\n")
    s = screen([claims], tmp_path / "r.parquet", facts=facts, policy_id="example-iort-commercial")
    assert s.balanced
    assert {r[0] for r in result_rows(tmp_path / "r.parquet")} == {"c5", "c6", "c9"}  # 77425, 77424
    assert (s.governed, s.not_governed) == (3, 7)
