"""The workbench shows each proposed fact beside the highlighted words; the reviewer accepts, changes
or rejects it, and each decision is in the audit trail."""

from __future__ import annotations

import html
import re

import pytest

from medpolicy.extract.context import default_engine

from .conftest import ADMIN, NURSE, Workbench, csrf_of

REPORT = b"""FINAL DIAGNOSIS:
Rectum, abdominoperineal resection: adenocarcinoma directly invading the prostate.
Circumferential (radial) margin: involved by invasive carcinoma.
Tumor Site: Rectum
Primary Tumor (pT): pT4b
<script>alert(1)</script>
"""


@pytest.fixture(autouse=True, scope="module")
def _engine_ready() -> None:
    """Build the assertion engine before the first page asks for it (the server runs in this process):
    importing spaCy takes seconds, more than a page request may on a busy machine."""
    default_engine()


def _request_with_report(workbench: Workbench) -> tuple[str, str]:
    pa = workbench.create("information_needed")
    doc = workbench.store.add_document(
        pa.id, REPORT, title="Pathology report", added_by="test-submitter", source="v1"
    )
    return pa.id, doc.id


def test_proposed_facts_beside_highlighted_evidence(workbench: Workbench) -> None:
    rid, did = _request_with_report(workbench)
    nurse = workbench.client(NURSE)
    page = nurse.get(f"/requests/{rid}/documents/{did}/facts")
    assert page.status_code == 200
    row = re.search(r'<tr data-fact="t_stage">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert "pT4b" in row.group(1)
    assert re.search(
        r'<span id="ev-t_stage"></span>(<span id="ev-recurrent"></span>)?<mark title="[^"]*T category[^"]*" data-fact="[^"]*t_stage[^"]*">pT4b</mark>',
        page.text,
    )
    assert "<script>alert(1)</script>" not in page.text  # the document is text, escaped
    assert html.escape("<script>") in page.text
    audit = [e.action for e in workbench.store.list_audit(rid)]
    assert "document_viewed" in audit or any("document" in a for a in audit)


def test_accept_change_and_reject_are_audited(workbench: Workbench) -> None:
    rid, did = _request_with_report(workbench)
    nurse = workbench.client(NURSE)
    url = f"/requests/{rid}/documents/{did}/facts"
    csrf = csrf_of(nurse.get(url).text)

    r = nurse.post(url, data={"csrf_token": csrf, "fact": "t_stage", "decision": "accept"})
    assert r.status_code == 303, r.text
    pa = workbench.store.get_pa_request(rid)
    assert pa.case["t_stage"] == ["pT4b"] or pa.case["t_stage"] == "pT4b"
    assert pa.determination is not None
    assert pa.determination.determination["facts"]["t_stage"]["source"] == "given"

    r = nurse.post(
        url, data={"csrf_token": csrf, "fact": "margin_status", "decision": "change", "value": "close"}
    )
    assert r.status_code == 303, r.text
    assert workbench.store.get_pa_request(rid).case["margin_status"] == "close"

    r = nurse.post(url, data={"csrf_token": csrf, "fact": "tumor_site", "decision": "reject"})
    assert r.status_code == 303, r.text
    assert "tumor_site" not in workbench.store.get_pa_request(rid).case

    reasons = [(e.action, e.reason or "") for e in workbench.store.list_audit(rid)]
    assert any(a == "request_information" and "accepted the extracted t_stage" in why for a, why in reasons)
    assert any("changed (proposed positive) the extracted margin_status: close" in why for _, why in reasons)
    assert any(a == "extraction_rejected" and "tumor_site (rectum)" in why for a, why in reasons)


def test_admin_may_look_but_not_decide(workbench: Workbench) -> None:
    rid, did = _request_with_report(workbench)
    admin = workbench.client(ADMIN)
    url = f"/requests/{rid}/documents/{did}/facts"
    page = admin.get(url)
    assert page.status_code == 200
    r = admin.post(url, data={"csrf_token": csrf_of(page.text), "fact": "t_stage", "decision": "accept"})
    assert r.status_code == 403


def test_a_stale_form_is_refused(workbench: Workbench) -> None:
    rid, did = _request_with_report(workbench)
    nurse = workbench.client(NURSE)
    r = nurse.post(
        f"/requests/{rid}/documents/{did}/facts",
        data={"csrf_token": "x", "fact": "t_stage", "decision": "accept"},
    )
    assert r.status_code == 403
