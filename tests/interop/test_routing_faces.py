"""Every face routes a case to the plan's policy the same way: CRD, DTR and PAS read the member's line
of business and group from the FHIR Coverage; the example policies work on each face without any code
written for them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from cds_client import (
    CdsClient,
    cds_service,
    condition,
    coverage_infos,
    order_sign_request,
    service_request,
    sub,
)
from test_pas_http import SUBMIT, claim_response, iort_bundle, missing_facts, post, review_actions

from medpolicy import PolicySet
from medpolicy.interop import dtr, fhir_case
from medpolicy.interop.fhir_case import LINE_OF_BUSINESS_SYSTEM, SOPT_SYSTEM
from medpolicy.service.testing import LiveServer

SIGN = "medpolicy-crd-order-sign"
MA = {"coding": [{"system": SOPT_SYSTEM, "code": "111"}]}  # Medicare HMO: Medicare Advantage
EXAMPLE_PPO = [
    {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]
        },
        "value": "EXAMPLE-PPO",
    }
]
BREAST_FACTS = {
    "date_of_birth": "1958-04-12",
    "histology": "invasive_ductal",
    "tumor_size_mm": 16,
    "margin_distance_mm": 3,
    "lymphovascular_invasion": False,
    "er_status": "positive",
    "brca_variant": False,
    "node_status": "negative",
}


def _coverage(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Coverage", "id": "cov1", "status": "active", **extra}


@pytest.mark.parametrize(
    ("extra", "routing"),
    [
        ({}, {}),
        ({"type": MA}, {"line_of_business": "medicare_advantage"}),
        ({"type": {"coding": [{"system": SOPT_SYSTEM, "code": "21"}]}}, {"line_of_business": "medicaid"}),
        ({"type": {"coding": [{"system": SOPT_SYSTEM, "code": "121"}]}}, {}),  # Medicare FFS: not ours
        (
            {
                "type": {"coding": [{"system": LINE_OF_BUSINESS_SYSTEM, "code": "commercial"}]},
                "class": EXAMPLE_PPO,
            },
            {"line_of_business": "commercial", "group": "EXAMPLE-PPO"},
        ),
    ],
)
def test_the_coverage_gives_line_of_business_and_group(
    extra: dict[str, Any], routing: dict[str, str]
) -> None:
    assert fhir_case.coverage_routing([_coverage(**extra)]) == routing


# ----------------------------------------------------------------------------------------------- CRD


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, CdsClient]]:
    with cds_service(tmp_path_factory.mktemp("cds-routing")) as pair:
        yield pair


def _sign(client: CdsClient, coverage: dict[str, Any]) -> dict[str, Any]:
    body = order_sign_request(
        [service_request("sr1", "77425")], conditions=[condition("c-breast", "C50.411")]
    )
    body["prefetch"]["coverage"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": coverage}],
    }
    response = client.call(SIGN, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize(
    ("extra", "policy_id"),
    [
        ({}, "bluekc-iort"),
        ({"type": MA}, "example-iort-medicare-advantage"),
        ({"class": EXAMPLE_PPO}, "example-iort-commercial"),
    ],
)
def test_crd_answers_under_the_policy_of_the_members_coverage(
    served: tuple[LiveServer, CdsClient], extra: dict[str, Any], policy_id: str
) -> None:
    _server, client = served
    (action,) = _sign(client, _coverage(beneficiary={"reference": "Patient/p1"}, **extra))["systemActions"]
    (info,) = coverage_infos(action["resource"])
    questionnaires = sub(info, "questionnaire")
    assert all(q.endswith(f"/Questionnaire/{policy_id}") for q in questionnaires), questionnaires
    if policy_id != "bluekc-iort":  # the example policies need the breast facts: their questionnaire
        assert questionnaires


def test_crd_makes_no_assertion_for_a_member_no_policy_is_in_force_for(
    served: tuple[LiveServer, CdsClient],
) -> None:
    _server, client = served
    medicaid = {"coding": [{"system": SOPT_SYSTEM, "code": "2"}]}
    body = _sign(client, _coverage(beneficiary={"reference": "Patient/p1"}, type=medicaid))
    assert body["cards"] == []
    assert body.get("systemActions", []) == []


# ----------------------------------------------------------------------------------------------- DTR


@pytest.mark.parametrize("policy_id", ["example-iort-commercial", "example-iort-medicare-advantage"])
def test_dtr_questionnaires_come_from_the_example_policies_facts(policies: PolicySet, policy_id: str) -> None:
    policy = policies.get(policy_id)
    q = dtr.build_questionnaire(policy, policies, as_of=dt.date(2025, 9, 1))
    items = {i["linkId"]: i for i in q["item"]}
    assert {"age", "tumor_size_mm", "er_status", "node_status", "nuclear_grade", "screen_detected"} <= set(
        items
    )
    assert items["tumor_size_mm"]["type"] == "decimal"
    assert items["er_status"]["type"] == "choice"
    assert items["age"].get("enableWhen"), "asked only when it can matter"


# ----------------------------------------------------------------------------------------------- PAS


def _pas(coverage_extra: dict[str, Any]) -> dict[str, Any]:
    bundle = iort_bundle(BREAST_FACTS, dx="C50.411")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Coverage":
            entry["resource"].update(coverage_extra)
    return bundle


def test_pas_certifies_a_suitable_breast_case_under_the_medicare_advantage_policy(server: LiveServer) -> None:
    cr = claim_response(post(server, SUBMIT, _pas({"type": MA})))
    assert review_actions(cr) == ["A1"]


def test_pas_reads_the_date_of_birth_from_the_patient_when_the_policy_asks_for_an_age(
    server: LiveServer,
) -> None:
    facts = {k: v for k, v in BREAST_FACTS.items() if k != "date_of_birth"}
    bundle = iort_bundle(facts, dx="C50.411")
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Coverage":
            resource["type"] = MA
        if resource["resourceType"] == "Patient":
            resource["birthDate"] = "1958-04-12"
    assert review_actions(claim_response(post(server, SUBMIT, bundle))) == ["A1"]
    assert (
        fhir_case.patient_facts([{"resourceType": "Patient", "birthDate": "1958"}]) == {}
    )  # a full date only


def test_pas_pends_the_same_case_under_the_commercial_example_for_trial_enrolment(server: LiveServer) -> None:
    cr = claim_response(post(server, SUBMIT, _pas({"class": EXAMPLE_PPO})))
    assert review_actions(cr) == ["A4"]
    assert missing_facts(cr) == ["trial_enrolment"]
