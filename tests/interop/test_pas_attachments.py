"""PAS prefill: reports attached to a Claim/$submit (supportingInfo valueAttachment, or a
DocumentReference in the Bundle) fill the facts the Claim lacks, marked extracted; the engine does not
approve on them alone, and the stored determination keeps their evidence."""

from __future__ import annotations

import base64
from typing import Any

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


def test_attached_report_fills_the_facts_and_the_request_waits_for_a_reviewer(
    server: service_testing.LiveServer,
) -> None:
    r = post(server, SUBMIT, with_attachment(iort_bundle(GIVEN), REPORT))
    assert r.status_code == 200, r.text
    assert review_actions(claim_response(r)) == ["A4"]  # pended, not certified: nobody confirmed the facts
    det = stored(server)
    assert det["outcome"] == "medically_necessary"
    assert det["facts"]["t_stage"] == {"value": ["pT4b"], "source": "extracted"}
    assert det["facts"]["treatment_intent"]["source"] == "given"
    assert det["extraction"]["evidence"]["t_stage"][0]["text"] == "pT4b"
    assert det["extraction"]["documents"] == ["pathology.txt"]


def test_a_given_fact_wins_over_the_report(server: service_testing.LiveServer) -> None:
    bundle = with_attachment(iort_bundle({**GIVEN, "t_stage": "pT3"}), REPORT, as_document_reference=True)
    r = post(server, SUBMIT, bundle)
    assert r.status_code == 200, r.text
    det = stored(server)
    assert det["facts"]["t_stage"] == {"value": ["pT3"], "source": "given"}
    assert det["facts"]["margin_status"]["source"] == "extracted"
