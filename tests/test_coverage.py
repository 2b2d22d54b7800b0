"""`medpolicy policy check --coverage`: every criterion of every version, driven true, false and unknown."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from medpolicy import Policy, load_policies
from medpolicy.cli import app
from medpolicy.coverage import VALUES, coverage, coverage_minimum, report_lines

ROOT = Path(__file__).resolve().parents[1] / "policies"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(ROOT / "bluekc-iort", root / "bluekc-iort")
    return root


def test_the_iort_cases_reach_every_criterion_of_every_version_all_three_ways(iort: Policy) -> None:
    report = coverage(iort)
    assert report.minimum == 100
    assert report.gaps() == []
    assert report.percent == 100
    versions = {r.version for r in report.rows}
    assert versions == {v.id for v in iort.versions}
    # the note's condition is covered too, for the version it applies to
    assert any(r.note == "sarcoma-history-contradiction" for r in report.rows)


def test_each_line_fits_80_columns_and_names_the_criterion(iort: Policy) -> None:
    lines = report_lines(coverage(iort))
    assert all(len(line) <= 80 for line in lines)
    assert any(line.strip().startswith("T F U") and "t4-lesion" in line for line in lines)
    assert lines[-1].startswith("bluekc-iort: ")
    assert "(100.0%; minimum 100%)" in lines[-1]


def test_removing_the_cases_that_reach_a_value_shows_the_gap_and_fails(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    cases = root / "bluekc-iort" / "cases"
    for f in cases.glob("*.yaml"):
        data = yaml.safe_load(f.read_text())
        # drop every case without a known procedure code: nothing makes `governed` unknown any more
        kept = [c for c in data if "procedure_codes" in (c.get("case") or {})]
        f.write_text(yaml.safe_dump(kept, sort_keys=False))
    policy = load_policies(root).get("bluekc-iort")
    report = coverage(policy)
    gaps = {(r.version, r.criterion.id): r.missing for r in report.gaps()}
    assert gaps[("1988-10-01", "governed")] == ("unknown",)
    assert not report.ok
    result = CliRunner().invoke(app, ["policy", "check", "--coverage", "--policies", str(root)])
    assert result.exit_code == 1
    assert "below the minimum 100% set in bluekc-iort/coverage.yaml" in result.output
    assert "  T F -    governed" in result.output  # a child of not-governed: indented


def test_the_threshold_lives_in_the_policy_folder(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "bluekc-iort" / "coverage.yaml").unlink()
    policy = load_policies(root).get("bluekc-iort")
    assert coverage_minimum(policy) == 0
    (root / "bluekc-iort" / "coverage.yaml").write_text("minimum: 150\n")
    result = CliRunner().invoke(app, ["policy", "check", "--coverage", "--policies", str(root)])
    assert result.exit_code == 2
    assert "coverage file holds exactly" in result.output


def test_the_check_passes_with_full_coverage() -> None:
    result = CliRunner().invoke(app, ["policy", "check", "--coverage"])
    assert result.exit_code == 0, result.output
    assert "criterion values reached (100.0%; minimum 100%)" in result.output
    assert len(VALUES) == 3
