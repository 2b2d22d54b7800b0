"""Prefill from attached documents, pure: attachments found in a PAS Claim and Bundle, several documents
combined (disagreement stays unknown), given facts win, and a DTR QuestionnaireResponse prefilled with
information-origin 'auto'."""

from __future__ import annotations

import base64
from typing import Any

from medpolicy import PolicySet
from medpolicy.extract.prefill import (
    INFORMATION_ORIGIN_EXT,
    bundle_attachments,
    combine,
    extract_attachments,
    prefill_case,
    prefilled_response_items,
)
from medpolicy.interop import dtr

PATH = "Tumor Site: Rectum\nPrimary Tumor (pT): pT4b\nCircumferential margin: involved by carcinoma.\n"
OTHER = "Tumor Site: Rectum\nPrimary Tumor (pT): pT3\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_attachments_of_the_claim_and_the_bundle() -> None:
    claim = {
        "supportingInfo": [
            {
                "sequence": 1,
                "valueAttachment": {"contentType": "text/plain", "data": b64(PATH), "title": "path"},
            },
            {"sequence": 2, "valueAttachment": {"contentType": "image/png", "data": "AAAA"}},
            {"sequence": 3, "valueAttachment": {"contentType": "text/plain", "url": "https://example.org/x"}},
        ]
    }
    resources = [
        {"resourceType": "DocumentReference", "id": "d1", "content": [{"attachment": {"data": b64(OTHER)}}]},
        {"resourceType": "Observation", "id": "o1"},
    ]
    found = bundle_attachments(claim, resources)
    assert [a.where for a in found] == [
        "Claim.supportingInfo[0].valueAttachment",
        "Claim.supportingInfo[2].valueAttachment",
        "DocumentReference/d1.content[0].attachment",
    ]
    records = extract_attachments(found)
    assert records[0]["facts"]["t_stage"] == ["pT4b"]
    assert records[1]["error"]["code"] == "no_data"
    assert records[2]["facts"]["t_stage"] == ["pT3"]


def test_documents_that_disagree_leave_the_fact_unknown() -> None:
    records = extract_attachments(bundle_attachments({}, [
        {"resourceType": "Binary", "id": "a", "contentType": "text/plain", "data": b64(PATH)},
        {"resourceType": "Binary", "id": "b", "contentType": "text/plain", "data": b64(OTHER)},
    ]))  # fmt: skip
    facts, evidence, warnings = combine(records)
    assert facts["t_stage"] is None
    assert facts["tumor_site"] == "rectum"
    assert "t_stage" not in evidence
    assert {
        "code": "documents_disagree",
        "fact": "t_stage",
        "message": "the documents disagree on t_stage",
    } in warnings


def test_given_facts_win_and_extracted_ones_are_marked(policies: PolicySet) -> None:
    records = extract_attachments(
        bundle_attachments({}, [{"resourceType": "Binary", "id": "a", "data": b64(PATH)}])
    )
    known = {f.name for f in policies.get("bluekc-iort").facts}
    case, sources, summary = prefill_case(
        {"t_stage": ["cT3"], "procedure_codes": ["77425"]}, records, known=known
    )
    assert case["t_stage"] == ["cT3"]
    assert case["margin_status"] == "positive"
    assert sources == {"tumor_site": "extracted", "margin_status": "extracted", "recurrent": "extracted"}
    assert set(summary["evidence"]) == set(sources)


def test_dtr_questionnaire_response_prefilled_with_origin_auto(policies: PolicySet) -> None:
    policy = policies.get("bluekc-iort")
    questionnaire = dtr.build_questionnaire(policy, policies)
    items = prefilled_response_items(
        questionnaire,
        {"tumor_site": "rectum", "t_stage": ["pT4b"], "margin_distance_mm": 1.5, "metastatic": None},
    )
    by_link = {i["linkId"]: i for i in items}
    assert set(by_link) <= {"tumor_site", "t_stage", "margin_distance_mm"}
    assert "metastatic" not in by_link
    for item in items:
        for answer in item["answer"]:
            (origin,) = answer["extension"]
            assert origin["url"] == INFORMATION_ORIGIN_EXT == dtr.INFORMATION_ORIGIN_EXT
            assert origin["extension"] == [{"url": "source", "valueCode": "auto"}]
    qr: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "item": items}
    dtr.check_questionnaire_response(qr)  # DTR's rules on information-origin hold (no author for auto)
