"""Case facts are checked at the door: every rejected input names the field, the value and why, with
a stable code; an absent or null fact is unknown; a bad one is never silently taken as unknown."""

from __future__ import annotations

from typing import Any

import pytest

from medpolicy import CaseError, Outcome, Policy, PolicySet, decide, parse_case

BASE = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"]}


def errors(iort: Policy, case: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(CaseError) as e:
        parse_case(case, iort)
    return [fe.to_dict() for fe in e.value.errors]


def test_unknown_icd10_code_is_an_error_naming_field_value_and_why(iort: Policy) -> None:
    assert errors(iort, {**BASE, "diagnosis_codes": ["C20", "C99.9"]}) == [
        {
            "code": "unknown_code",
            "field": "diagnosis_codes[1]",
            "value": "C99.9",
            "message": "not an ICD-10-CM code",
        }
    ]


def test_a_category_header_is_refused_as_non_billable(iort: Policy) -> None:
    [e] = errors(iort, {**BASE, "diagnosis_codes": ["c18"]})
    assert e["code"] == "non_billable_code"
    assert e["value"] == "c18"
    assert e["message"] == "C18 is an ICD-10-CM category header, not a billable code: give the full code"


def test_a_block_is_refused_as_non_billable(iort: Policy) -> None:
    [e] = errors(iort, {**BASE, "diagnosis_codes": ["C00-C14"]})
    assert e["code"] == "non_billable_code"


@pytest.mark.parametrize(
    ("fact", "value", "code"),
    [
        ("date_of_service", "2024-3-1", "invalid_date"),
        ("date_of_service", "20240301", "invalid_date"),
        ("date_of_service", 20240301, "invalid_date"),
        ("margin_status", "R3", "invalid_value"),
        ("margin_status", 1, "invalid_type"),
        ("margin_status", False, "invalid_type"),
        ("t_stage", True, "invalid_type"),
        ("margin_distance_mm", -0.1, "out_of_range"),
        ("margin_distance_mm", "1.5", "invalid_type"),
        ("margin_distance_mm", True, "invalid_type"),
        ("margin_distance_mm", float("nan"), "invalid_type"),
        ("t_stage", "pT4e", "invalid_t_category"),
        ("t_stage", "N1", "invalid_t_category"),
        ("recurrent", 1, "invalid_type"),
        ("treatment_intent", "adjuvant", "invalid_value"),
        ("procedure_codes", "77425,77469", "invalid_type"),  # a string where a list belongs
        ("diagnosis_codes", "C20", "invalid_type"),
        ("procedure_codes", {"code": "77425"}, "invalid_type"),
        ("procedure_codes", [{"code": "77425"}], "invalid_type"),
        ("diagnosis_codes", [["C20"]], "invalid_type"),
    ],
)
def test_bad_values_are_rejected_with_a_stable_code(iort: Policy, fact: str, value: Any, code: str) -> None:
    [e] = errors(iort, {**BASE, fact: value})
    assert e["code"] == code
    assert e["field"].split("[")[0] == fact
    assert e["message"]


def test_every_problem_is_reported_not_just_the_first(iort: Policy) -> None:
    got = errors(
        iort, {"date_of_service": "x", "procedure_codes": ["1"], "diagnosis_codes": ["Q"], "bogus": 1}
    )
    assert [e["code"] for e in got] == ["invalid_date", "unknown_code", "unknown_code", "unknown_field"]


def test_absent_and_null_are_unknown(policies: PolicySet) -> None:
    absent = decide({**BASE, "diagnosis_codes": ["C20"]}, policies)
    null = decide({**BASE, "diagnosis_codes": ["C20"], "margin_status": None, "t_stage": None}, policies)
    assert absent.outcome is null.outcome is Outcome.INFORMATION_NEEDED
    assert [m.name for m in absent.missing_facts] == [m.name for m in null.missing_facts]


def test_input_is_normalised(iort: Policy) -> None:
    c = parse_case(
        {
            **BASE,
            "procedure_codes": [" 77425 ", "77425"],
            "diagnosis_codes": ["c 20"],
            "margin_status": "Gross Residual",
            "t_stage": ["PT4B", "yp t3"],
        },
        iort,
    )
    assert c.display["procedure_codes"] == ["77425"]
    assert c.display["diagnosis_codes"] == ["C20"]
    assert c.values["margin_status"] == "gross_residual"
    assert c.display["t_stage"] == ["pT4b", "ypT3"]
    assert c.values["t_stage"] == frozenset({"T4b", "T3"})


@pytest.mark.parametrize(("syn", "value"), [("R0", "negative"), ("r1", "positive"), ("R2", "gross_residual")])
def test_residual_tumour_classes_are_synonyms(iort: Policy, syn: str, value: str) -> None:
    assert parse_case({**BASE, "margin_status": syn}, iort).values["margin_status"] == value


def test_derived_facts_say_where_they_came_from(iort: Policy) -> None:
    c = parse_case({**BASE, "diagnosis_codes": ["C20"], "margin_distance_mm": 1.2, "t_stage": "rT3"}, iort)
    assert c.values["tumor_site"] == "rectum"
    assert c.sources["tumor_site"] == "derived from diagnosis_codes"
    assert c.values["margin_status"] == "close"
    assert c.sources["margin_status"] == "derived from margin_distance_mm"
    assert c.values["recurrent"] is True
    assert c.sources["recurrent"] == "derived from t_stage"


def test_metadata_keys_pass_through(policies: PolicySet) -> None:
    d = decide({**BASE, "id": "req-1", "diagnosis_codes": ["C25.0"]}, policies)
    assert d.to_dict()["case"] == {"id": "req-1"}


def test_a_case_that_is_not_an_object_is_rejected(iort: Policy) -> None:
    assert errors(iort, ["C20"])[0]["code"] == "invalid_type"  # type: ignore[arg-type]
