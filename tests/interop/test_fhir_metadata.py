"""The FHIR endpoints' CapabilityStatement and DTR's $log-questionnaire-errors, over real HTTP.

What an EHR or a DTR application does first is read ``/fhir/metadata``; it must describe exactly what
is served. A DTR application that hits a problem with one of our questionnaires reports it with
``$log-questionnaire-errors`` (DTR 2.0.1: SHOULD; DTR 2.2: SHALL); the report is stored for the policy
analysts. Every FHIR resource answered is validated with fhir.resources R4B.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
from cds_client import validate_r4b

from medpolicy import load_policies
from medpolicy.interop.capability import OPERATIONS
from medpolicy.service import testing as service_testing

LOG = "/fhir/Questionnaire/$log-questionnaire-errors"
IG_PACKAGES = Path(__file__).resolve().parents[1] / "fixtures" / "ig-packages"
OUR_QUESTIONNAIRE = "https://medpolicy.dev/fhir/Questionnaire/bluekc-iort|2009-10-06"


def _report(
    questionnaire: str = OUR_QUESTIONNAIRE, *, names: tuple[str, str] = ("Questionnaire", "OperationOutcome")
) -> dict[str, Any]:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "enableWhen on item 'recurrent' refers to an unknown linkId (DTR app 1.4, 2026-11-26T10:00:00Z)",
                "expression": ["Questionnaire.item[5].enableWhen[0]"],
            }
        ],
    }
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": names[0], "valueCanonical": questionnaire},
            {"name": names[1], "resource": outcome},
        ],
    }


def _post(server: service_testing.LiveServer, body: Any, token: str | None = None) -> httpx.Response:
    headers = server.headers(token, **{"Content-Type": "application/fhir+json"})
    response = httpx.post(server.url(LOG), content=json.dumps(body).encode(), headers=headers)
    validate_r4b(response.json())
    return response


def _codes(response: httpx.Response) -> list[str]:
    return [i["details"]["coding"][0]["code"] for i in response.json()["issue"]]


def test_metadata_is_public_and_states_the_fhir_version_and_format(
    server: service_testing.LiveServer,
) -> None:
    response = httpx.get(server.url("/fhir/metadata"))  # no token: clients read it before anything else
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    validate_r4b(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["format"] == ["json"]
    assert statement["kind"] == "instance"
    assert statement["implementation"]["url"] == server.url("/fhir")


def test_metadata_instantiates_the_dtr_payer_service_and_offers_all_it_asks(
    server: service_testing.LiveServer,
) -> None:
    """DTR 2.0.1's payer service statement (from the IG package): every operation it expects (SHALL and
    SHOULD) is in ours; nothing else is claimed."""
    with tarfile.open(IG_PACKAGES / "davinci-dtr-2.0.1.tgz", "r:gz") as tar:
        member = tar.extractfile("package/CapabilityStatement-dtr-payer-service.json")
        assert member is not None
        required = json.load(member)
    statement = httpx.get(server.url("/fhir/metadata")).json()
    assert statement["instantiates"] == [f"{required['url']}|{required['version']}"]
    ours = {op["definition"] for r in statement["rest"][0]["resource"] for op in r.get("operation", [])}
    expected = {op["definition"] for op in required["rest"][0]["operation"]}
    assert expected <= ours


def test_metadata_lists_exactly_the_operations_and_reads_that_are_served(
    server: service_testing.LiveServer,
) -> None:
    statement = httpx.get(server.url("/fhir/metadata")).json()
    (rest,) = statement["rest"]
    listed = {
        (r["type"], op["name"], op["definition"]) for r in rest["resource"] for op in r.get("operation", [])
    }
    reads = {r["type"] for r in rest["resource"] if {"code": "read"} in r.get("interaction", [])}
    paths = httpx.get(server.url("/openapi.json")).json()["paths"]
    served_ops = {
        p for p, methods in paths.items() if p.startswith("/fhir/") and "$" in p and "post" in methods
    }
    assert {f"/fhir/{t}/${name}" for t, name, _ in listed} == served_ops
    assert {(o.resource, o.name, o.definition) for o in OPERATIONS} == listed
    served_reads = {
        p.split("/")[2]
        for p, methods in paths.items()
        if p.startswith("/fhir/") and p.endswith("_id}") and "get" in methods
    }
    assert reads == served_reads == {"Questionnaire"}


def test_a_dtr_error_report_is_stored_for_the_policy_analysts(server: service_testing.LiveServer) -> None:
    before = len(server.store.list_questionnaire_errors())
    response = _post(server, _report())
    assert response.status_code == 200, response.text
    (issue,) = response.json()["issue"]
    assert issue["severity"] == "information"
    stored = server.store.list_questionnaire_errors(questionnaire=OUR_QUESTIONNAIRE)
    assert len(server.store.list_questionnaire_errors()) == before + 1
    assert stored[0]["client"] == "test-submitter"  # the caller, from its token
    assert stored[0]["outcome"] == _report()["parameter"][1]["resource"]
    assert str(stored[0]["id"]) in issue["diagnostics"]


def test_the_dtr_2_2_example_spelling_of_the_parameters_is_accepted(
    server: service_testing.LiveServer,
) -> None:
    # DTR 2.2's published example names the parameters 'questionnaire' and 'operationOutcome'.
    canonical = "http://hl7.org/fhir/us/davinci-dtr/Questionnaire/home-o2-std-questionnaire"
    response = _post(server, _report(canonical, names=("questionnaire", "operationOutcome")))
    assert response.status_code == 200, response.text
    assert server.store.list_questionnaire_errors(questionnaire=canonical)


def test_a_report_without_its_outcome_or_questionnaire_is_refused_and_not_stored(
    server: service_testing.LiveServer,
) -> None:
    before = len(server.store.list_questionnaire_errors())
    body = _report()
    body["parameter"] = body["parameter"][:1]
    response = _post(server, body)
    assert response.status_code == 422
    assert _codes(response) == ["missing_parameter"]
    body = _report()
    body["parameter"][0] = {"name": "Questionnaire", "valueString": OUR_QUESTIONNAIRE}
    response = _post(server, body)
    assert response.status_code == 422
    assert "valueCanonical" in response.json()["issue"][0]["expression"][0]
    body = _report()
    del body["parameter"][1]["resource"]["issue"][0]["severity"]
    response = _post(server, body)
    assert response.status_code == 422
    assert _codes(response) == ["invalid_resource"]
    body = _report()
    body["parameter"].append(body["parameter"][0])
    assert _codes(_post(server, body)) == ["repeated_parameter"]
    assert len(server.store.list_questionnaire_errors()) == before


def test_a_report_needs_the_clients_token(server: service_testing.LiveServer) -> None:
    response = httpx.post(server.url(LOG), json=_report())
    assert response.status_code == 401
    validate_r4b(response.json())


# ------------------------------------------------------------------------------------ ValueSet/$expand

EXPAND = "/fhir/ValueSet/$expand"
MARGIN_VS = "https://medpolicy.dev/fhir/ValueSet/margin-status"


def _margin_answers() -> list[tuple[str, str]]:
    fact = load_policies().get("bluekc-iort").fact("margin_status")
    return [(v, str(fact.labels.get(v) or v)) for v in fact.values or ()]


def _expand(server: service_testing.LiveServer, **query: str) -> httpx.Response:
    response = httpx.get(server.url(EXPAND), params=query, headers=server.headers())
    validate_r4b(response.json())
    return response


def test_expand_gives_every_answer_of_an_enum_fact(server: service_testing.LiveServer) -> None:
    response = _expand(server, url=MARGIN_VS)
    assert response.status_code == 200, response.text
    value_set = response.json()
    assert value_set["url"] == MARGIN_VS
    contains = value_set["expansion"]["contains"]
    assert [(c["code"], c["display"]) for c in contains] == _margin_answers()
    assert {c["system"] for c in contains} == {"https://medpolicy.dev/fhir/CodeSystem/margin-status"}
    assert value_set["expansion"]["total"] == len(_margin_answers())
    # The questionnaire's answer options use the same codes and system.
    questionnaire = httpx.get(server.url("/fhir/Questionnaire/bluekc-iort"), headers=server.headers()).json()
    (item,) = [i for i in questionnaire["item"] if i["linkId"] == "margin_status"]
    assert [o["valueCoding"] for o in item["answerOption"]] == contains


def test_expand_filters_and_pages(server: service_testing.LiveServer) -> None:
    wanted = [code for code, label in _margin_answers() if "pos" in code or "pos" in label.lower()]
    filtered = _expand(server, url=MARGIN_VS, filter="POS").json()["expansion"]
    assert [c["code"] for c in filtered["contains"]] == wanted
    assert filtered["total"] == len(wanted)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": f"{MARGIN_VS}|2009-10-06"},
            {"name": "offset", "valueInteger": 1},
            {"name": "count", "valueInteger": 2},
        ],
    }
    response = httpx.post(server.url(EXPAND), json=body, headers=server.headers())
    assert response.status_code == 200, response.text
    validate_r4b(response.json())
    page = response.json()["expansion"]
    assert [c["code"] for c in page["contains"]] == [code for code, _ in _margin_answers()][1:3]
    assert page["total"] == len(_margin_answers())
    assert page["offset"] == 1


def test_expand_refuses_what_it_cannot_do(server: service_testing.LiveServer) -> None:
    unknown = _expand(server, url="http://hl7.org/fhir/ValueSet/administrative-gender")
    assert unknown.status_code == 404
    assert _codes(unknown) == ["value_set_not_found"]
    assert _codes(_expand(server)) == ["missing_parameter"]
    bad_count = _expand(server, url=MARGIN_VS, count="-1")
    assert bad_count.status_code == 422
    assert _codes(bad_count) == ["invalid_parameter"]
    inline = {
        "resourceType": "Parameters",
        "parameter": [{"name": "valueSet", "resource": {"resourceType": "ValueSet", "status": "active"}}],
    }
    response = httpx.post(server.url(EXPAND), json=inline, headers=server.headers())
    assert response.status_code == 422
    assert _codes(response) == ["not_supported"]
    assert httpx.get(server.url(EXPAND), params={"url": MARGIN_VS}).status_code == 401
