"""CRD services over real HTTP for IORT orders: covered, information needed, physician review, errors."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cds_client import (
    CdsClient,
    FhirServer,
    assert_valid_crd_response,
    cds_service,
    condition,
    coverage,
    coverage_infos,
    observation,
    order_sign_request,
    patient,
    searchset,
    service_request,
    sub,
    validate_r4b,
)

from medpolicy.interop.crd import CARD_TYPE_SYSTEM_2_0, CARD_TYPE_SYSTEM_2_2
from medpolicy.service.testing import LiveServer

SIGN = "medpolicy-crd-order-sign"
SELECT = "medpolicy-crd-order-select"
DISPATCH = "medpolicy-crd-order-dispatch"
BOOK = "medpolicy-crd-appointment-book"

RECTAL = [condition("c-rectal", "C20")]
RECTAL_T4_POSITIVE = [
    observation("o-t", "21905-5", valueString="cT4b"),
    observation("o-m", "21939-4", valueString="Positive (involved)"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, CdsClient]]:
    with cds_service(tmp_path_factory.mktemp("cds-iort")) as pair:
        yield pair


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid_crd_response(body)
    return body


def _only_info(body: dict[str, Any]) -> dict[str, Any]:
    (action,) = body["systemActions"]
    (info,) = coverage_infos(action["resource"])
    return info


def test_rectal_t4_positive_margin_is_covered_with_prior_auth(served: tuple[LiveServer, CdsClient]) -> None:
    server, client = served
    body = _ok(
        client.call(
            SIGN,
            order_sign_request(
                [service_request("sr1", "77425")], conditions=RECTAL, observations=RECTAL_T4_POSITIVE
            ),
        )
    )
    info = _only_info(body)
    assert sub(info, "covered") == ["covered"]
    assert sub(info, "pa-needed") == ["auth-needed"]
    assert sub(info, "doc-needed") == ["clinical"]
    assert sub(info, "info-needed") == []
    assert sub(info, "billingCode") == [{"system": "http://www.ama-assn.org/go/cpt", "code": "77425"}]
    assert sub(info, "coverage") == [{"reference": "Coverage/cov1"}]
    (questionnaire,) = sub(info, "questionnaire")
    assert questionnaire.startswith("http")
    (reason,) = sub(info, "reason")
    assert reason["text"]
    # coverage-assertion-id is the stored determination
    (assertion_id,) = sub(info, "coverage-assertion-id")
    record = server.store.get_determination(assertion_id)
    assert record.outcome == "medically_necessary"
    read = client.http.get(
        server.url(f"/v1/determinations/{assertion_id}"), headers=server.headers(server.nurse_token)
    )
    assert read.status_code == 200, read.text
    assert read.json()["outcome"] == "medically_necessary"
    # the update carries the whole draft order, with its id
    resource = body["systemActions"][0]["resource"]
    assert resource["id"] == "sr1"
    assert resource["code"]["coding"][0]["code"] == "77425"
    (card,) = body["cards"]
    assert card["indicator"] == "info"
    assert "Intraoperative" in card["summary"]
    policy_page = client.http.get(card["links"][0]["url"])  # the link works, without a JWT
    assert policy_page.status_code == 200
    assert "intraoperative radiation therapy" in policy_page.text.lower()
    assert card["source"]["topic"]["system"] == CARD_TYPE_SYSTEM_2_2
    assert card["extension"]["davinci-crd.associated-resource"] == [{"reference": "ServiceRequest/sr1"}]


def test_information_needed_is_conditional_with_questionnaire(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    body = _ok(client.call(SIGN, order_sign_request([service_request("sr2", "77424")], conditions=RECTAL)))
    info = _only_info(body)
    assert sub(info, "covered") == ["conditional"]
    assert sub(info, "info-needed") == ["OTH"]
    assert sub(info, "doc-needed") == ["clinical"]
    assert len(sub(info, "questionnaire")) == 1
    (reason,) = sub(info, "reason")
    assert "needed" in reason["text"].lower()
    assert body["cards"][0]["indicator"] == "info"


def test_pancreatic_cancer_goes_to_physician_review_not_denial(served: tuple[LiveServer, CdsClient]) -> None:
    server, client = served
    request = order_sign_request([service_request("sr3", "77425")], conditions=[condition("c-p", "C25.0")])
    body = _ok(client.call(SIGN, request))
    info = _only_info(body)
    assert sub(info, "covered") == ["conditional"]  # never not-covered: only a physician may deny
    assert sub(info, "pa-needed") == ["auth-needed"]
    assert sub(info, "doc-needed") == ["clinical"]
    assert sub(info, "info-needed") == ["OTH"]
    (card,) = body["cards"]
    assert card["indicator"] == "warning"
    assert "physician review" in card["summary"]
    assert "not a denial" in card["detail"]
    (assertion_id,) = sub(info, "coverage-assertion-id")
    assert server.store.get_determination(assertion_id).outcome == "investigational"


def test_orders_the_policy_does_not_govern_get_no_assertion(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    body = _ok(client.call(SIGN, order_sign_request([service_request("x", "77067")], conditions=RECTAL)))
    assert body == {"cards": []}


def test_each_governed_order_gets_its_own_action(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    orders = [service_request("a", "77425"), service_request("b", "77067"), service_request("c", "77469")]
    body = _ok(
        client.call(SIGN, order_sign_request(orders, conditions=RECTAL, observations=RECTAL_T4_POSITIVE))
    )
    assert [a["resource"]["id"] for a in body["systemActions"]] == ["a", "c"]


def test_crd_2_0_1_request_shape_gets_2_0_card_topic(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    request = order_sign_request([service_request("v", "77425")], conditions=RECTAL, version=None)
    body = _ok(client.call(SIGN, request))
    assert body["cards"][0]["source"]["topic"]["system"] == CARD_TYPE_SYSTEM_2_0
    assert "extension" not in body["cards"][0]


def test_coverage_info_switched_off_by_configuration(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    request = order_sign_request([service_request("sr", "77425")], conditions=RECTAL)
    request["extension"]["davinci-crd.configuration"] = {"coverage-info": False}
    assert _ok(client.call(SIGN, request)) == {"cards": []}


def test_no_coverage_on_file_gives_a_card_and_no_extension(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    request = order_sign_request([service_request("sr", "77425")], conditions=RECTAL, with_coverage=False)
    body = _ok(client.call(SIGN, request))
    assert "systemActions" not in body
    assert any("No active coverage" in c["summary"] for c in body["cards"])


def test_order_select_answers_for_the_selected_orders_only(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    request = order_sign_request(
        [service_request("s1", "77425"), service_request("s2", "77424")], conditions=RECTAL
    )
    request["hook"] = "order-select"
    request["context"]["selections"] = ["ServiceRequest/s2"]
    body = _ok(client.call(SELECT, request))
    assert [a["resource"]["id"] for a in body["systemActions"]] == ["s2"]


def test_appointment_book_with_based_on_order_in_prefetch(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    appointment = {
        "resourceType": "Appointment",
        "id": "appt1",
        "status": "proposed",
        "basedOn": [{"reference": "ServiceRequest/sr-b"}],
        "start": "2026-03-02T08:00:00Z",
        "end": "2026-03-02T12:00:00Z",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
    }
    request = order_sign_request([], conditions=RECTAL, observations=RECTAL_T4_POSITIVE)
    request["hook"] = "appointment-book"
    del request["context"]["draftOrders"]
    request["context"]["appointments"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": appointment}],
    }
    request["prefetch"]["serviceRequests"] = searchset(service_request("sr-b", "77425"))
    body = _ok(client.call(BOOK, request))
    (action,) = body["systemActions"]
    assert action["resource"]["resourceType"] == "Appointment"
    assert sub(coverage_infos(action["resource"])[0], "covered") == ["covered"]


def test_order_dispatch_reads_order_and_data_from_the_clients_fhir_server(tmp_path: Path) -> None:
    resources = [
        service_request("sr-d", "77425", patient="pd"),
        patient("pd"),
        coverage("cov-d", patient="pd"),
        condition("c-d", "C20", patient="pd", clinical="recurrence"),
        observation("o-d", "21899-0", patient="pd", valueString="T3"),
        observation("o-dist", "81184-4", patient="pd", valueQuantity={"value": 1.5, "code": "mm"}),
    ]
    with FhirServer(resources) as fhir:
        with cds_service(tmp_path, fhir_servers=(fhir.base_url,)) as (_, client):
            request = {
                "hook": "order-dispatch",
                "hookInstance": str(uuid.uuid4()),
                "fhirServer": fhir.base_url,
                "fhirAuthorization": fhir.authorization(),
                "context": {
                    "patientId": "pd",
                    "performer": "Practitioner/rad1",
                    "dispatchedOrders": ["ServiceRequest/sr-d"],
                },
                "extension": {"davinci-crd.requestedVersion": "2.2"},
            }
            body = _ok(client.call(DISPATCH, request))
        asked = {p.split("?")[0] for p in fhir.requests}
    info = _only_info(body)
    assert sub(info, "covered") == ["covered"]  # recurrent rectal cancer, close margin (1.5 mm)
    assert sub(info, "coverage") == [{"reference": "Coverage/cov-d"}]
    assert {"/fhir/ServiceRequest/sr-d", "/fhir/Coverage", "/fhir/Condition", "/fhir/Observation"} <= asked


def test_missing_prefetch_without_fhir_server_is_412(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    request = order_sign_request([service_request("sr", "77425")], conditions=RECTAL)
    del request["prefetch"]["observations"]
    response = client.call(SIGN, request)
    assert response.status_code == 412, response.text
    outcome = response.json()
    validate_r4b(outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "observations" in response.text


def test_fhir_server_not_configured_is_not_queried(tmp_path: Path) -> None:
    with FhirServer([coverage("c", patient="p1")]) as fhir:
        with cds_service(tmp_path) as (_, client):  # no fhir_servers allowed
            request = order_sign_request([service_request("sr", "77425")], conditions=RECTAL)
            del request["prefetch"]["coverage"]
            request["fhirServer"] = fhir.base_url
            request["fhirAuthorization"] = fhir.authorization()
            assert client.call(SIGN, request).status_code == 412
        assert fhir.requests == []


def test_invalid_icd10_code_is_422_operation_outcome(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    request = order_sign_request(
        [service_request("sr", "77425")], conditions=[condition("bad", "C18")]
    )  # header
    response = client.call(SIGN, request)
    assert response.status_code == 422, response.text
    outcome = response.json()
    validate_r4b(outcome)
    issue = outcome["issue"][0]
    assert issue["expression"][0].startswith("diagnosis_codes")
    assert "Condition/bad" in issue["details"]["text"]


def test_unreadable_t_stage_is_422_not_dropped(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    request = order_sign_request(
        [service_request("sr", "77425")],
        conditions=RECTAL,
        observations=[observation("o9", "21905-5", valueString="T9z")],
    )
    response = client.call(SIGN, request)
    assert response.status_code == 422, response.text
    assert "Observation/o9" in response.text


@pytest.mark.parametrize(
    ("mutate", "status", "field"),
    [
        (lambda r: r.pop("hookInstance"), 422, "hookInstance"),
        (lambda r: r.update(hookInstance="not-a-uuid"), 422, "hookInstance"),
        (lambda r: r.update(hook="patient-view"), 422, "hook"),
        (lambda r: r.pop("context"), 422, "context"),
        (lambda r: r["context"].pop("patientId"), 422, "context.patientId"),
        (lambda r: r["context"].update(draftOrders=[1, 2]), 422, "context.draftOrders"),
        (
            lambda r: r.update(
                fhirAuthorization={
                    "access_token": "t",
                    "token_type": "Bearer",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "x",
                }
            ),
            422,
            "fhirServer",
        ),
        (lambda r: r["prefetch"].update(coverage="Coverage/1"), 422, "prefetch.coverage"),
        (
            lambda r: r.update(extension={"davinci-crd.requestedVersion": "9.9"}),
            422,
            "extension.davinci-crd.requestedVersion",
        ),
    ],
)
def test_malformed_requests_get_operation_outcomes(
    served: tuple[LiveServer, CdsClient], mutate: Any, status: int, field: str
) -> None:
    _, client = served
    request = copy.deepcopy(order_sign_request([service_request("sr", "77425")], conditions=RECTAL))
    mutate(request)
    response = client.call(SIGN, request)
    assert response.status_code == status, response.text
    outcome = response.json()
    validate_r4b(outcome)
    assert field in [e for issue in outcome["issue"] for e in issue.get("expression", [])]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_non_json_bodies_are_400(served: tuple[LiveServer, CdsClient], raw: bytes) -> None:
    _, client = served
    response = client.call(SIGN, None, raw=raw)
    assert response.status_code == 400, response.text
    validate_r4b(response.json())


def test_unknown_service_is_404_operation_outcome(served: tuple[LiveServer, CdsClient]) -> None:
    _, client = served
    response = client.call("no-such-service", {})
    assert response.status_code == 404
    validate_r4b(response.json())


def test_feedback_accepted_and_overridden(served: tuple[LiveServer, CdsClient]) -> None:
    server, client = served
    body = {
        "feedback": [
            {
                "card": "c1",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "s1"}],
                "outcomeTimestamp": "2026-03-01T10:00:00Z",
            },
            {
                "card": "c2",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"code": "x", "system": "http://example.org/r"},
                    "userComment": "n/a",
                },
                "outcomeTimestamp": "2026-03-01T10:00:00Z",
            },
        ]
    }
    response = client.feedback(SIGN, body)
    assert response.status_code == 200, response.text
    # acknowledged means committed: the feedback is in the store, with no case data
    stored = server.app.state.medpolicy.store.list_cds_feedback(limit=2)
    assert [(r["card"], r["outcome"], r["override_code"]) for r in reversed(stored)] == [
        ("c1", "accepted", None),
        ("c2", "overridden", "x"),
    ]
    assert set(stored[0]) == {
        "received_at",
        "service_id",
        "client",
        "card",
        "outcome",
        "outcome_timestamp",
        "accepted_suggestions",
        "override_code",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"feedback": []},
        {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-03-01T10:00:00Z"}]},
        {"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-03-01T10:00:00Z"}]},
        {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
    ],
)
def test_malformed_feedback_is_422(served: tuple[LiveServer, CdsClient], body: dict[str, Any]) -> None:
    _, client = served
    response = client.feedback(SIGN, body)
    assert response.status_code == 422, response.text
    validate_r4b(response.json())


def test_a_rejected_order_stores_no_determination_for_the_call(served: tuple[LiveServer, CdsClient]) -> None:
    server, client = served
    bad = service_request(
        "bad",
        "77424",
        reasonCode=[{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C20.0"}]}],
    )
    before = server.store.count_determinations()
    response = client.call(
        SIGN, order_sign_request([service_request("good", "77425"), bad], conditions=RECTAL)
    )
    assert response.status_code == 422, response.text
    assert "ServiceRequest/bad" in response.text
    assert server.store.count_determinations() == before
