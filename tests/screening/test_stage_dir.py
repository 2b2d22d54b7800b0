"""``stage_dir``: the lines read from X12 and FHIR are staged as Parquet in the given folder (shared
storage a cluster's executors can read), the engine reads them from there, and they are removed after
the run; the answers are those of the default local staging. (Spark: ``test_spark.py``.)"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from screening_helpers import result_rows

from medpolicy.screening import impact, screen
from medpolicy.screening.generator import write_all


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("stage-claims"), 60, 4)


def test_duckdb_reads_the_lines_staged_as_parquet_in_the_stage_dir(
    generated: dict[str, Path], tmp_path: Path
) -> None:
    stage = tmp_path / "shared" / "stage"
    seen: list[tuple[str, int]] = []

    def at(stage_name: str) -> None:
        if stage_name == "screening":  # the inputs are read and staged; the engine reads them next
            for f in stage.glob("*.parquet"):
                seen.append((f.name, duckdb.sql(f"SELECT COUNT(*) FROM '{f}'").fetchall()[0][0]))

    inputs = [generated["837p"], generated["fhir"]]
    out = tmp_path / "r.parquet"
    s = screen(inputs, out, facts=generated["facts"], stage_dir=stage, progress=at)
    assert s.balanced
    assert len(seen) == 1
    assert seen[0][0].startswith("medpolicy-staged-")
    assert seen[0][1] == s.lines_read - sum(e.get("lines", 0) for e in s.errors)
    assert list(stage.iterdir()) == []  # removed after the run
    local = screen(inputs, tmp_path / "l.parquet", facts=generated["facts"])
    assert sorted(result_rows(out)) == sorted(result_rows(tmp_path / "l.parquet"))
    assert (s.written, s.not_governed, s.in_error) == (local.written, local.not_governed, local.in_error)


def test_impact_stages_each_side_in_the_stage_dir(generated: dict[str, Path], tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    r = impact([generated["837p"]], "2002-09-01", "2009-10-06", facts=generated["facts"], stage_dir=stage)
    local = impact([generated["837p"]], "2002-09-01", "2009-10-06", facts=generated["facts"])
    assert r.transitions == local.transitions
    assert list(stage.iterdir()) == []
