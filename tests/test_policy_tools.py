"""`medpolicy policy new` scaffolds a policy that loads and passes its first cases; `policy diff` shows
what changed between two versions and which outcomes move."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import folded, run


def test_new_scaffolds_a_policy_that_loads_and_passes_its_first_cases(tmp_path: Path) -> None:
    r = run("policy", "new", "my-policy", "--code", "77425", "--policies", str(tmp_path))
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "my-policy"
    assert (folder / "source.txt").read_text() == ""
    assert (folder / "cases" / "first.yaml").exists()
    check = run("policy", "check", "--policies", str(tmp_path))
    assert check.returncode == 0, check.stderr
    assert "2/2 cases pass" in folded(check.stdout)
    again = run("policy", "new", "my-policy", "--policies", str(tmp_path))
    assert again.returncode == 2
    assert "already exists" in again.stderr
    bad = run("policy", "new", "My Policy", "--policies", str(tmp_path))
    assert bad.returncode == 2


def test_diff_lists_criteria_and_the_outcomes_that_change() -> None:
    r = run(
        "policy", "diff", "example-iort-commercial", "--from", "2024-01-01", "--to", "2025-07-01", "--json"
    )
    assert r.returncode == 0, r.stderr
    diff = json.loads(r.stdout)
    added = {c["id"] for c in diff["criteria"]["added"]}
    assert {"low-energy-xray", "breast-indication", "dcis-margins", "age-50-or-older"} <= added
    assert [c["id"] for c in diff["criteria"]["removed"]] == ["investigational-other-2024"]
    assert diff["criteria"]["changed"] == []
    moved = {o["case"]: (o["from"], o["to"]) for o in diff["outcomes"] if o["changed"]}
    assert moved["breast DCIS branch met (size in mm, margin in cm)"] == (
        "investigational",
        "medically_necessary",
    )
    unchanged = {o["case"] for o in diff["outcomes"] if not o["changed"]}
    assert "rectal pT4b with positive margin" in unchanged


def test_diff_on_a_case_file_and_its_errors(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    rows = [
        {
            "id": "xray-rectal",
            "date_of_service": "2025-09-01",
            "procedure_codes": ["77424"],
            "diagnosis_codes": ["C20"],
            "margin_status": "R1",
            "t_stage": "pT4b",
        },
        {
            "id": "electron-rectal",
            "date_of_service": "2025-09-01",
            "procedure_codes": ["77425"],
            "diagnosis_codes": ["C20"],
            "margin_status": "R1",
            "t_stage": "pT4b",
        },
    ]
    cases.write_text("\n".join(json.dumps(r) for r in rows))
    r = run(
        "policy",
        "diff",
        "example-iort-commercial",
        "--from",
        "2024-01-01",
        "--to",
        "2025-07-01",
        "--cases",
        str(cases),
    )
    assert r.returncode == 0, r.stderr
    text = folded(r.stdout)
    assert "outcomes that change: 1 of 2 cases" in text
    assert "xray-rectal medically_necessary investigational" in text
    unknown = run("policy", "diff", "example-iort-commercial", "--from", "1999-01-01", "--to", "2025-07-01")
    assert unknown.returncode == 2
    assert "unknown_version" in unknown.stderr
