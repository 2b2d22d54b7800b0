"""FHIR resources -> raw case (medpolicy.interop.fhir_case): codes, staging, margins, provenance, errors."""

from __future__ import annotations

import pytest
from cds_client import CPT, ICD10CM, condition, observation, searchset, service_request

from medpolicy.errors import CaseError
from medpolicy.interop.fhir_case import (
    coverage_reference,
    extract_case,
    flatten_resources,
    order_codes,
    order_date,
)


def test_cpt_codes_come_from_service_request_code_and_billing_options_only() -> None:
    sr = service_request("sr1", "77425")
    sr["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "168524008"})
    sr["code"]["extension"] = [
        {
            "url": "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options",
            "valueCodeableConcept": {"coding": [{"system": CPT, "code": "77469"}]},
        }
    ]
    assert order_codes(sr) == ["77425", "77469"]


def test_hcpcs_codes_count_as_procedure_codes() -> None:
    dr = {
        "resourceType": "DeviceRequest",
        "id": "d1",
        "codeCodeableConcept": {
            "coding": [
                {"system": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "E0431"}
            ]
        },
    }
    assert order_codes(dr) == ["E0431"]


def test_date_of_service_prefers_occurrence_then_authored_on() -> None:
    assert order_date(service_request("a", "77425")) == "2026-03-02"
    sr = service_request("b", "77425")
    del sr["occurrenceDateTime"]
    assert order_date(sr) == "2026-02-20"
    sr["authoredOn"] = "2026"  # a partial date is not a date of service
    assert order_date(sr) is None
    sr["occurrencePeriod"] = {"start": "2026-04-01T08:00:00-05:00"}
    assert order_date(sr) == "2026-04-01"


def test_full_rectal_case_with_provenance() -> None:
    sr = service_request("sr1", "77425")
    resources = flatten_resources(
        [
            searchset(condition("c1", "C20", clinical="recurrence"), condition("c2", "Z85.048")),
            searchset(
                observation(
                    "t1",
                    "21905-5",
                    valueCodeableConcept={
                        "coding": [{"system": "http://snomed.info/sct", "display": "AJCC cT4b"}]
                    },
                ),
                observation("m1", "21939-4", valueString="Involved"),
                observation("d1", "81184-4", valueQuantity={"value": 0.8, "unit": "mm", "code": "mm"}),
                observation("mm", "21901-4", valueString="pM0"),
            ),
            None,
        ]
    )
    extracted = extract_case(sr, resources)
    assert extracted.case == {
        "procedure_codes": ["77425"],
        "date_of_service": "2026-03-02",
        "diagnosis_codes": ["C20", "Z85.048"],
        "t_stage": "cT4b",
        "metastatic": False,
        "margin_status": "positive",
        "margin_distance_mm": 0.8,
        "recurrent": True,
    }
    assert extracted.sources["diagnosis_codes"] == ("Condition/c1", "Condition/c2")
    assert extracted.sources["t_stage"] == ("Observation/t1",)
    assert extracted.sources["recurrent"] == ("Condition/c1",)
    assert extracted.order == "ServiceRequest/sr1"


def test_pathologic_prefix_comes_from_the_loinc_code_and_cm_converts_to_mm() -> None:
    resources = [
        observation("t", "21899-0", valueString="T4a"),
        observation("d", "81175-2", valueQuantity={"value": 0.15, "code": "cm"}),
    ]
    case = extract_case(service_request("s", "77424"), resources).case
    assert case["t_stage"] == "pT4a"
    assert case["margin_distance_mm"] == pytest.approx(1.5)


def test_missing_facts_stay_absent() -> None:
    case = extract_case(service_request("s", "77424"), []).case
    assert set(case) == {"procedure_codes", "date_of_service"}


def test_refuted_resolved_and_entered_in_error_are_ignored() -> None:
    refuted = condition("c1", "C20")
    refuted["verificationStatus"] = {"coding": [{"code": "refuted"}]}
    resolved = condition("c2", "C25.0", clinical="resolved")
    bad_obs = observation("o1", "21905-5", valueString="cT4b")
    bad_obs["status"] = "entered-in-error"
    extracted = extract_case(
        service_request("s", "77424"), [refuted, resolved, bad_obs, condition("c3", "C20")]
    )
    assert extracted.case["diagnosis_codes"] == ["C20"]
    assert "t_stage" not in extracted.case
    assert len(extracted.notes) == 3


def test_reason_code_icd10_counts_as_diagnosis() -> None:
    sr = service_request("s", "77424", reasonCode=[{"coding": [{"system": ICD10CM, "code": "C25.0"}]}])
    assert extract_case(sr, []).case["diagnosis_codes"] == ["C25.0"]


@pytest.mark.parametrize(
    ("obs", "field", "code"),
    [
        (observation("t", "21905-5", valueString="huge"), "t_stage", "invalid_t_category"),
        (observation("m", "21939-4", valueString="see report"), "margin_status", "invalid_value"),
        (
            observation("d", "81184-4", valueQuantity={"value": 1, "code": "[in_i]"}),
            "margin_distance_mm",
            "invalid_value",
        ),
        (observation("d", "81184-4", valueString="1 mm"), "margin_distance_mm", "invalid_type"),
    ],
)
def test_unreadable_values_raise_case_error_naming_the_resource(obs: dict, field: str, code: str) -> None:
    with pytest.raises(CaseError) as info:
        extract_case(service_request("s", "77424"), [obs])
    (error,) = info.value.errors
    assert error.field == field
    assert error.code == code
    assert obs["id"] in error.message


def test_coverage_reference_prefers_active() -> None:
    resources = [
        {"resourceType": "Coverage", "id": "old", "status": "cancelled"},
        {"resourceType": "Coverage", "id": "cur", "status": "active"},
    ]
    assert coverage_reference(resources) == "Coverage/cur"
    assert coverage_reference([]) is None


def test_flatten_skips_operation_outcomes_and_nulls() -> None:
    oo = {"resourceType": "OperationOutcome", "issue": []}
    assert flatten_resources([None, oo, searchset(condition("c", "C20"))]) == [condition("c", "C20")]


def test_tnm_strings_and_r_classification() -> None:
    resources = [
        observation("t", "21899-0", valueString="ypT4bN1M0"),
        observation("m", "21901-4", valueString="ypT4bN1M0"),
        observation("r", "21939-4", valueCodeableConcept={"text": "R1 (microscopic residual)"}),
    ]
    case = extract_case(service_request("s", "77424"), resources).case
    assert case["t_stage"] == "ypT4b"
    assert case["metastatic"] is False
    assert case["margin_status"] == "R1"


def test_flatten_resources_any_depth_in_order_and_leaves_no_garbage_cycle() -> None:
    import gc

    inner = searchset(observation("m1", "21939-4", valueString="Involved"))
    outer = searchset(condition("c1", "C20"))
    outer["entry"].append({"resource": inner})
    items = [
        outer,
        None,
        {"resourceType": "OperationOutcome", "issue": []},
        "not a resource",
        condition("c2", "Z85.048"),
    ]
    gc.collect()
    gc.disable()
    try:
        flatten_resources(items)  # the result and all the walk made are freed by reference counting
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0  # a CDS call must not leave reference cycles for the collector
    assert [r["id"] for r in flatten_resources(items)] == ["c1", "m1", "c2"]
