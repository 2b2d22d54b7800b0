"""PAS prefill: reports attached to a Claim/$submit (supportingInfo valueAttachment, or a
DocumentReference in the Bundle) are read. By default (MEDPOLICY_PAS_PREFILL=propose) the facts they
state are kept beside the request, with their evidence, for a reviewer to accept; with `case` they fill
the facts the Claim lacks, marked extracted, and the engine does not approve on them alone."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from test_pas_http import SUBMIT, claim_response, iort_bundle, post, review_actions

from medpolicy.service import testing as service_testing

REPORT = """FINAL DIAGNOSIS:
Rectum, abdominoperineal resection: adenocarcinoma directly invading the prostate.
Circumferential (radial) margin: involved by invasive carcinoma.
Tumor Site: Rectum
Primary Tumor (pT): pT4b
"""
GIVEN = {"treatment_intent": "curative", "metastatic": False, "recurrent": False}


def with_attachment(
    bundle: dict[str, Any], text: str, *, as_document_reference: bool = False
) -> dict[str, Any]:
    attachment = {
        "contentType": "text/plain",
        "title": "pathology.txt",
        "data": base64.b64encode(text.encode()).decode(),
    }
    claim = bundle["entry"][0]["resource"]
    infos = claim.setdefault("supportingInfo", [])
    seq = len(infos) + 1
    category = {
        "coding": [
            {
                "system": "http://hl7.org/us/davinci-pas/CodeSystem/PASSupportingInfoType",
                "code": "additionalInformation",
            }
        ]
    }
    if as_document_reference:
        doc = {
            "resourceType": "DocumentReference",
            "id": "path-report",
            "status": "current",
            "content": [{"attachment": attachment}],
        }
        bundle["entry"].append(
            {"fullUrl": "http://example.org/fhir/DocumentReference/path-report", "resource": doc}
        )
        infos.append(
            {
                "sequence": seq,
                "category": category,
                "valueReference": {"reference": "DocumentReference/path-report"},
            }
        )
    else:
        infos.append({"sequence": seq, "category": category, "valueAttachment": attachment})
    return bundle


def stored(server: service_testing.LiveServer) -> dict[str, Any]:
    (pa,) = [
        p
        for p in server.store.list_pa_requests(limit=500)
        if p.determination and "extraction" in p.determination.determination
    ][-1:]
    return pa.determination.determination  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def prefilling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service_testing.LiveServer]:
    settings = service_testing.settings_for_tests(tmp_path_factory.mktemp("prefill"), pas_prefill="case")
    with service_testing.running_server(settings) as live:
        yield live


def test_by_default_the_case_is_what_the_claim_gave(server: service_testing.LiveServer) -> None:
    r = post(server, SUBMIT, with_attachment(iort_bundle(GIVEN), REPORT))
    assert r.status_code == 200, r.text
    pa = server.store.get_pa_request(r.json()["entry"][0]["resource"]["id"].replace("-", "_"))
    assert pa.determination is not None
    det = pa.determination.determination
    assert det["outcome"] == "information_needed"  # margin status and T category are not given
    assert "t_stage" not in det["facts"]
    assert "extraction" not in det  # the reviewer sees the proposals on the document's page


def test_attached_report_fills_the_facts_and_the_request_waits_for_a_reviewer(
    prefilling_server: service_testing.LiveServer,
) -> None:
    server = prefilling_server
    r = post(server, SUBMIT, with_attachment(iort_bundle(GIVEN), REPORT))
    assert r.status_code == 200, r.text
    assert review_actions(claim_response(r)) == ["A4"]  # pended, not certified: nobody confirmed the facts
    det = stored(server)
    assert det["outcome"] == "medically_necessary"
    assert det["facts"]["t_stage"] == {"value": ["pT4b"], "source": "extracted"}
    assert det["facts"]["treatment_intent"]["source"] == "given"
    assert det["extraction"]["evidence"]["t_stage"][0]["text"] == "pT4b"
    assert det["extraction"]["documents"] == ["pathology.txt"]


def test_a_given_fact_wins_over_the_report(prefilling_server: service_testing.LiveServer) -> None:
    server = prefilling_server
    bundle = with_attachment(iort_bundle({**GIVEN, "t_stage": "pT3"}), REPORT, as_document_reference=True)
    r = post(server, SUBMIT, bundle)
    assert r.status_code == 200, r.text
    det = stored(server)
    assert det["facts"]["t_stage"] == {"value": ["pT3"], "source": "given"}
    assert det["facts"]["margin_status"]["source"] == "extracted"
