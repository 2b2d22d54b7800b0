"""The language features the second and third policy needed: lengths in mm or cm, ages from a date of
birth, open (non-exhaustive) enums, scope by the service given, and their load-time checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from medpolicy import CaseError, PolicyLoadError, PolicySet, load_policy, parse_case

ROOT = Path(__file__).resolve().parents[1] / "policies"
D = "2025-09-01"


@pytest.fixture(scope="module")
def commercial(policies: PolicySet) -> Any:
    return policies.get("example-iort-commercial")


@pytest.mark.parametrize(
    ("given", "mm"),
    [
        (18, 18.0),
        (18.5, 18.5),
        ("18 mm", 18.0),
        ("1.8 cm", 18.0),
        ("1.8cm", 18.0),
        ({"value": 2, "unit": "cm"}, 20.0),
    ],
)
def test_sizes_in_mm_or_cm_are_normalised_to_mm(commercial: Any, given: Any, mm: float) -> None:
    case = parse_case({"date_of_service": D, "tumor_size_mm": given}, commercial)
    assert case.values["tumor_size_mm"] == pytest.approx(mm)


@pytest.mark.parametrize(
    "given", ["2 inches", "18", {"value": "2", "unit": "cm"}, {"value": 2, "unit": "m"}, "-1 cm"]
)
def test_a_size_that_is_not_a_length_is_rejected_naming_the_field(commercial: Any, given: Any) -> None:
    with pytest.raises(CaseError) as exc:
        parse_case({"date_of_service": D, "tumor_size_mm": given}, commercial)
    (err,) = exc.value.errors
    assert err.field == "tumor_size_mm"
    assert err.code in ("invalid_value", "invalid_type")


@pytest.mark.parametrize(
    ("born", "age"), [("1975-09-01", 50), ("1975-09-02", 49), ("1958-04-12", 67), ("2000-02-29", 25)]
)
def test_age_is_whole_years_on_the_date_of_service(commercial: Any, born: str, age: int) -> None:
    case = parse_case({"date_of_service": D, "date_of_birth": born}, commercial)
    assert case.display["age"] == age
    assert case.sources["age"] == "derived from date_of_birth and date_of_service"


def test_a_birth_after_the_date_of_service_leaves_the_age_unknown_with_a_note(commercial: Any) -> None:
    case = parse_case({"date_of_service": D, "date_of_birth": "2025-12-01"}, commercial)
    assert "age" not in case.values
    assert [n.code for n in case.notes] == ["conflicting_facts"]


def test_a_given_age_is_final_and_a_disagreeing_birth_date_is_noted(commercial: Any) -> None:
    case = parse_case({"date_of_service": D, "date_of_birth": "1958-04-12", "age": 60}, commercial)
    assert case.display["age"] == 60
    assert [n.code for n in case.notes] == ["conflicting_facts"]


def test_an_open_enum_reads_an_unnamed_value_as_other(commercial: Any) -> None:
    case = parse_case({"date_of_service": D, "tumor_site": "bladder", "histology": "mucinous"}, commercial)
    assert (case.values["tumor_site"], case.values["histology"]) == ("other", "other")
    with pytest.raises(CaseError):  # a closed enum still refuses
        parse_case({"date_of_service": D, "er_status": "weak"}, commercial)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "example-iort-commercial"
    shutil.copytree(ROOT / "example-iort-commercial", folder)
    text = (folder / "policy.yaml").read_text()
    assert old in text
    (folder / "policy.yaml").write_text(text.replace(old, new, 1))
    return folder


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "    open: other\n    values:\n      rectum",
            "    open: elsewhere\n    values:\n      rectum",
            "open names 'elsewhere'",
        ),
        ("    unit: years", "    unit: furlongs", "unknown unit 'furlongs'"),
        (
            "      age_at: date_of_service",
            "      age_at: tumor_size_mm",
            "age derives a number fact from two date facts",
        ),
        (
            "governs_service: intraoperative_radiation",
            "governs_service: delivery_method",
            "not a boolean fact",
        ),
        (
            "at_least: {param: breast_dcis_min_margin_mm}",
            "at_least: {param: dcis_margin}",
            "unknown parameter 'dcis_margin'",
        ),
    ],
)
def test_new_features_are_checked_at_load_with_file_and_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    folder = _broken(tmp_path, old, new)
    with pytest.raises(PolicyLoadError) as exc:
        load_policy(folder)
    problems = [p for p in exc.value.problems if message in p.message]
    assert problems, exc.value.problems
    assert problems[0].file.endswith("policy.yaml")
    assert problems[0].line is not None
    lines = (folder / "policy.yaml").read_text().splitlines()
    near = "\n".join(lines[problems[0].line - 2 : problems[0].line + 1])  # the line named, or its block
    assert new.split("\n")[0].strip().split(":")[0] in near
