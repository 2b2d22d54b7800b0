"""The published CRD examples (HL7 CRD 2.2 IG source, Inferno CRD 2.0.1 test kit) against the live service.

Fixtures are read from tests/fixtures (the published examples, verbatim) as they are; variants are built in memory from them (the
change is named in each test) and never written back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cds_client import (
    CRD_22,
    CRD_INFERNO,
    INVARIANTS_2_0_1,
    INVARIANTS_2_2,
    CdsClient,
    FhirServer,
    assert_valid_crd_response,
    cds_service,
    check_invariants,
    condition,
    coverage,
    coverage_infos,
    load_fixture,
    observation,
    searchset,
    service_request,
    sub,
    validate_r4b,
)

from medpolicy.interop.cdshooks import SERVICES
from medpolicy.service.testing import LiveServer

SERVICE_FOR_HOOK = {s.hook: s.id for s in SERVICES.values()}
IORT = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "77425"}]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, CdsClient]]:
    with cds_service(tmp_path_factory.mktemp("cds-fixtures")) as pair:
        yield pair


# ---------------------------------------------------------------------------------- requests as published

# (fixture, expected status, why)
REQUESTS = [
    (
        CRD_22 / "CRDServiceRequest.json",
        200,
        "order-sign 2.2 with full prefetch; mammography and oxygen: not IORT",
    ),
    (CRD_22 / "CRDServiceRequest2.json", 200, "order-dispatch 2.2; the client switched coverage-info off"),
    (CRD_22 / "CRDServiceRequest3.json", 200, "order-sign CommunicationRequest; no billing code governed"),
    (CRD_22 / "CRDServiceRequest4.json", 200, "appointment-book 2.2; no order governed"),
    (CRD_INFERNO / "order_sign_hook_request.json", 200, "diet and drug orders; not governed"),
    (CRD_INFERNO / "order_select_hook_request.json", 200, "diet and drug orders; not governed"),
    (CRD_INFERNO / "appointment_book_hook_request.json", 200, "sleep medicine visits; not governed"),
    (
        CRD_INFERNO / "order_dispatch_hook_request.json",
        412,
        "older context shape accepted; the dispatched order is not prefetched and "
        "https://example/r4 is not a FHIR server this service may query",
    ),
]


@pytest.mark.parametrize(("path", "status", "why"), REQUESTS, ids=[p.name for p, _, _ in REQUESTS])
def test_published_request_is_accepted(
    served: tuple[LiveServer, CdsClient], path: Path, status: int, why: str
) -> None:
    _, client = served
    request = load_fixture(path)
    response = client.call(SERVICE_FOR_HOOK[request["hook"]], request)
    assert response.status_code == status, f"{why}: {response.text}"
    if status == 200:
        assert_valid_crd_response(response.json())
    else:
        outcome = response.json()
        validate_r4b(outcome)
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == "prefetch_missing"


@pytest.mark.parametrize(
    "name", ["encounter_start_hook_request.json", "encounter_discharge_hook_request.json"]
)
def test_hooks_not_offered_are_refused(served: tuple[LiveServer, CdsClient], name: str) -> None:
    """encounter-start / encounter-discharge are valid CRD hooks this service does not offer."""
    _, client = served
    request = load_fixture(CRD_INFERNO / name)
    discovery = client.discover().json()
    assert request["hook"] not in {s["hook"] for s in discovery["services"]}
    response = client.call(SERVICE_FOR_HOOK["order-sign"], request)
    assert response.status_code == 422
    outcome = response.json()
    validate_r4b(outcome)
    assert outcome["issue"][0]["expression"] == ["hook"]


def test_discovery_has_the_published_shape(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    ours = client.discover().json()
    published = load_fixture(CRD_22 / "CRDServices.json")
    assert set(ours) == set(published) == {"services"}
    published_hooks = {s["hook"] for s in published["services"]}
    for service in ours["services"]:
        assert service["hook"] in published_hooks
        assert {"hook", "title", "description", "id", "prefetch"} <= set(service)
        assert all("{{context." in t for k, t in service["prefetch"].items())
        assert "davinci-crd.configuration-options" in service["extension"]


# ------------------------------------------------------------------------------------------- IORT variants


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid_crd_response(body)
    return body


RECTAL_PREFETCH = {
    "conditions": searchset(condition("c1", "C20", patient="123")),
    "observations": searchset(
        observation("t1", "21905-5", patient="123", valueString="cT4a"),
        observation("m1", "81184-4", patient="123", valueQuantity={"value": 0.5, "code": "mm"}),
    ),
}


def test_hl7_order_sign_request_with_an_iort_order(served: tuple[LiveServer, CdsClient]) -> None:
    """CRDServiceRequest.json with ServiceRequest/1357 recoded to CPT 77425 and rectal data prefetched."""
    _, client = served
    request = load_fixture(CRD_22 / "CRDServiceRequest.json")
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    draft["code"] = copy.deepcopy(IORT)
    request["prefetch"].update(copy.deepcopy(RECTAL_PREFETCH))
    body = _ok(client.call(SERVICE_FOR_HOOK["order-sign"], request))
    (action,) = body["systemActions"]
    updated = action["resource"]
    (info,) = coverage_infos(updated)
    assert sub(info, "coverage") == [{"reference": "Coverage/COV1"}]  # from the prefetched Bundle
    assert sub(info, "covered") == ["covered"]
    assert sub(info, "date")[0] >= "2026-01-01"
    assert {k: v for k, v in updated.items() if k != "extension"} == draft  # the draft, unchanged otherwise
    # same shape as the published response
    published = load_fixture(CRD_22 / "CRDServiceResponse.json")
    assert set(action) <= set(published["systemActions"][0]) | {"description"}
    for card in body["cards"]:
        assert {"summary", "indicator", "source"} <= set(card)


def test_hl7_order_dispatch_request_with_an_iort_order(served: tuple[LiveServer, CdsClient]) -> None:
    """CRDServiceRequest2.json dispatching a prefetched ServiceRequest for 77425, coverage-info on."""
    _, client = served
    request = load_fixture(CRD_22 / "CRDServiceRequest2.json")
    request["context"]["dispatchedOrders"] = ["ServiceRequest/iort1"]
    request["extension"]["davinci-crd.configuration"]["coverage-info"] = True
    request["prefetch"]["serviceRequests"] = searchset(service_request("iort1", "77425", patient="123"))
    request["prefetch"].update(copy.deepcopy(RECTAL_PREFETCH))
    body = _ok(client.call(SERVICE_FOR_HOOK["order-dispatch"], request))
    (action,) = body["systemActions"]
    assert action["resource"]["id"] == "iort1"
    assert len(body["cards"]) <= 5  # the client's max-cards


def test_hl7_appointment_book_request_with_an_iort_order(served: tuple[LiveServer, CdsClient]) -> None:
    """CRDServiceRequest4.json whose Appointment is based on a prefetched IORT ServiceRequest."""
    _, client = served
    request = load_fixture(CRD_22 / "CRDServiceRequest4.json")
    appointment = request["context"]["appointments"]["entry"][0]["resource"]
    appointment["basedOn"] = [{"reference": "http://example.org/fhir/ServiceRequest/iort2"}]
    request["prefetch"] = {
        "coverage": searchset(coverage("COV9", patient="123")),
        "serviceRequests": searchset(service_request("iort2", "77425", patient="123")),
        **copy.deepcopy(RECTAL_PREFETCH),
    }
    body = _ok(client.call(SERVICE_FOR_HOOK["appointment-book"], request))
    (action,) = body["systemActions"]
    assert action["resource"]["resourceType"] == "Appointment"
    assert action["resource"]["id"] == "example"


def test_inferno_order_dispatch_served_by_a_loopback_fhir_server(tmp_path: Path) -> None:
    """order_dispatch_hook_request.json (older context: order + task) with fhirServer pointed at a loopback
    FHIR server holding ServiceRequest/example (77425) and the patient's data; nothing prefetched."""
    request = load_fixture(CRD_INFERNO / "order_dispatch_hook_request.json")
    resources = [
        service_request("example", "77425", patient="example"),
        coverage("cov-x", patient="example"),
        condition("cx", "C20", patient="example"),
        observation("tx", "21899-0", patient="example", valueString="T4b"),
        observation("mx", "21939-4", patient="example", valueString="R1"),
    ]
    with FhirServer(resources, token=request["fhirAuthorization"]["access_token"]) as fhir:
        request["fhirServer"] = fhir.base_url
        with cds_service(tmp_path, fhir_servers=(fhir.base_url,)) as (_, client):
            body = _ok(client.call(SERVICE_FOR_HOOK["order-dispatch"], request))
    (action,) = body["systemActions"]
    (info,) = coverage_infos(action["resource"])
    assert sub(info, "covered") == ["covered"]
    assert sub(info, "coverage") == [{"reference": "Coverage/cov-x"}]
    assert (
        body["cards"][0]["source"]["topic"]["system"] == "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
    )


# ---------------------------------------------------------------------------------- invariant checker


def _fixture_actions() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in [
        *sorted(CRD_22.glob("CRDServiceResponse*.json")),
        *sorted(CRD_INFERNO.glob("*system_action*.json")),
    ]:
        data = load_fixture(path)
        for action in data.get("systemActions") or ([data] if "resource" in data else []):
            if coverage_infos(action["resource"]):
                out.append((path.name, action["resource"]))
    data = load_fixture(CRD_INFERNO / "crd_authorization_hook_response.json")
    out.extend(("crd_authorization_hook_response.json", a["resource"]) for a in data["systemActions"])
    return out


# Published examples that do not satisfy the invariants of the extension they use (the checker must say so):
# the Inferno "conditional" example has covered=conditional and no pa-needed (2.0.1 crd-ci-q2) and a
# doc-purpose with no reason (2.2 crd-ci-q8).
KNOWN_FIXTURE_VIOLATIONS = {
    ("coverage_info_system_action_conditional.json", "2.0.1"): {"crd-ci-q2"},
    ("coverage_info_system_action_conditional.json", "2.2"): {"crd-ci-q8"},
}


@pytest.mark.parametrize(("name", "resource"), _fixture_actions(), ids=[n for n, _ in _fixture_actions()])
def test_invariant_checker_on_published_responses(name: str, resource: dict[str, Any]) -> None:
    for version, invariants in (("2.0.1", INVARIANTS_2_0_1), ("2.2", INVARIANTS_2_2)):
        results = check_invariants(resource, invariants)
        failed = {k for k, v in results.items() if not all(v)}
        assert failed == KNOWN_FIXTURE_VIOLATIONS.get((name, version), set()), (version, failed)


def test_invariant_checker_catches_violations() -> None:
    """Negative controls: each edited extension breaks exactly the invariant it targets."""
    base = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information",
                "extension": [
                    {"url": "coverage", "valueReference": {"reference": "Coverage/1"}},
                    {"url": "covered", "valueCode": "conditional"},
                    {"url": "pa-needed", "valueCode": "auth-needed"},
                    {"url": "doc-needed", "valueCode": "clinical"},
                    {"url": "doc-purpose", "valueCode": "withpa"},
                    {"url": "info-needed", "valueCode": "OTH"},
                    {"url": "reason", "valueCodeableConcept": {"text": "why"}},
                    {"url": "questionnaire", "valueCanonical": "http://x/Questionnaire/q"},
                    {"url": "date", "valueDate": "2026-01-01"},
                    {"url": "coverage-assertion-id", "valueString": "a"},
                ],
            }
        ],
    }
    for invariants in (INVARIANTS_2_0_1, INVARIANTS_2_2):
        assert all(v == [True] for v in check_invariants(base, invariants).values())

    def edited(drop: set[str] = frozenset(), **replace: str) -> dict[str, Any]:  # type: ignore[assignment]
        r = copy.deepcopy(base)
        subs = r["extension"][0]["extension"]
        subs[:] = [s for s in subs if s["url"] not in drop]
        for s in subs:
            if s["url"] in replace:
                s["valueCode"] = replace[s["url"]]
        return r

    def failing(resource: dict[str, Any], invariants: dict[str, str]) -> set[str]:
        return {k for k, v in check_invariants(resource, invariants).items() if v != [True]}

    assert failing(edited({"pa-needed"}), INVARIANTS_2_0_1) == {"crd-ci-q2"}
    assert failing(edited({"doc-needed"}), INVARIANTS_2_0_1) == {"crd-ci-q1"}
    assert failing(edited({"info-needed"}), INVARIANTS_2_2) == {"crd-ci-q3"}
    assert "crd-ci-q3" in failing(
        edited(covered="covered", **{"pa-needed": "no-auth", "doc-needed": "admin"}), INVARIANTS_2_0_1
    )
    assert "crd-ci-q4" in failing(edited(**{"pa-needed": "satisfied"}), INVARIANTS_2_2)
    assert "crd-ci-q5" in failing(edited(**{"pa-needed": "satisfied"}), INVARIANTS_2_0_1)
    assert failing(edited({"reason"}), INVARIANTS_2_2) == {"crd-ci-q6", "crd-ci-q8"}
    assert "crd-ci-q2" in failing(edited(covered="not-covered"), INVARIANTS_2_2)
    assert "crd-ci-q9" in failing(edited({"reason"}, covered="indeterminate"), INVARIANTS_2_2)
    no_text = copy.deepcopy(base)
    for s in no_text["extension"][0]["extension"]:
        if s["url"] == "reason":
            s["valueCodeableConcept"] = {"coding": [{"system": "http://example.org", "code": "x"}]}
    assert failing(no_text, INVARIANTS_2_2) == {"crd-ci-q7"}
