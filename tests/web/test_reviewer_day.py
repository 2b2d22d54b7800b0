"""The reviewer's day without a browser: members and providers from PAS and /v1 (NPI check digits),
documents through every face (sniffed, refused, downloaded safely, shown escaped), the approval note
kept out of the letter, closing a request no policy governs, form errors beside the field, the
denial pick-list, the metrics, the plan's configuration, and the smaller things (Chromium, --help)."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from medpolicy import CaseError
from medpolicy.interop import pas
from medpolicy.interop.parties_fhir import crd_parties, pas_documents, pas_parties
from medpolicy.parties import npi_valid, npi_with_check_digit, parse_parties
from medpolicy.service import testing as service_testing
from medpolicy.store.records import AuditEvent, PARequest
from medpolicy.web.denials import denial_reasons
from medpolicy.web.plan import PlanConfigError, load_plan
from medpolicy.web.reports import prior_auth_metrics

from .conftest import NURSE, PHYSICIAN, Workbench, csrf_of, find_chromium

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "pas-submit-iort.json"
FIXTURES = ROOT / "tests" / "fixtures" / "pas"
SUBMITTER = {"Authorization": f"Bearer {service_testing.SUBMITTER_TOKEN}"}


def _bundle(claim_id: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    bundle["entry"][0]["resource"]["identifier"][0]["value"] = claim_id
    return bundle


# -- members and providers ---------------------------------------------------------------------------


def test_npi_check_digit() -> None:
    assert npi_valid("1234567893")  # CMS's published example
    assert not npi_valid("1234567890")
    assert not npi_valid("123456789")
    assert npi_valid(npi_with_check_digit("199999001"))


def test_v1_member_and_provider_objects_are_validated() -> None:
    with pytest.raises(CaseError) as refused:
        parse_parties(
            {"name": "No Id", "birth_date": "1961-13-40"},
            {"name": "Dr. X", "npi": "1234567890", "tin": "12"},
        )
    problems = {(e.field, e.code) for e in refused.value.errors}
    assert problems == {
        ("member.member_id", "missing_field"),
        ("member.birth_date", "invalid_date"),
        ("requesting_provider.npi", "invalid_npi"),
        ("requesting_provider.tin", "invalid_tin"),
    }


def test_pas_parties_and_documents_from_the_example_bundle() -> None:
    parsed = pas.parse_request_bundle(_bundle("PA-unit-1"))
    parties = pas_parties(parsed.claim, parsed.resolve)
    assert parties.member is not None
    assert (parties.member.member_id, parties.member.name, parties.member.birth_date) == (
        "M-2002",
        "Jane Doe",
        "1961-04-12",
    )
    assert parties.member.plan == "Heartland Demo PPO (PPO-100)"
    assert parties.requesting is not None
    assert (parties.requesting.npi, parties.requesting.organization, parties.requesting.tin) == (
        "1999990017",
        "Riverside Cancer Center",
        "43-1000001",
    )
    assert parties.servicing is not None
    assert parties.servicing.name == "Dana Whitfield"
    (doc,) = pas_documents(parsed.claim, parsed.resolve)
    assert doc.title == "Surgical pathology report"
    assert b"R0" in doc.data


def test_the_published_pas_example_keeps_an_npi_that_fails_its_check_digit_aside() -> None:
    parsed = pas.parse_request_bundle(json.loads((FIXTURES / "conformant_pas_bundle_v110.json").read_text()))
    parties = pas_parties(parsed.claim, parsed.resolve)
    assert parties.member is not None
    assert parties.member.member_id == "12345678901"
    assert parties.servicing is not None
    assert parties.servicing.npi is None
    assert parties.servicing.npi_invalid == "987654321"


def test_crd_parties_from_the_hook_context_and_prefetch() -> None:
    npi = npi_with_check_digit("199999001")
    parties = crd_parties(
        {"patientId": "p1", "userId": "Practitioner/u1"},
        {
            "patient": {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"text": "Jane Doe"}],
                "birthDate": "1961-04-12",
            },
            "coverage": {
                "resourceType": "Bundle",
                "entry": [{"resource": {"resourceType": "Coverage", "subscriberId": "M-2002"}}],
            },
            "user": {
                "resourceType": "Practitioner",
                "id": "u1",
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}],
                "name": [{"text": "Dr. A"}],
            },
        },
    )
    assert parties.member is not None
    assert parties.member.label() == "Jane Doe (M-2002)"
    assert parties.requesting is not None
    assert parties.requesting.npi == npi


def test_pas_submission_with_a_bad_attachment_is_refused_and_stores_nothing(workbench: Workbench) -> None:
    before = workbench.store.count_pa_requests()
    bundle = _bundle("PA-bad-attachment")
    info = bundle["entry"][0]["resource"]["supportingInfo"][0]["valueAttachment"]
    info["data"] = base64.b64encode(b"MZ\x90\x00\x03\x00\x00\x00").decode()
    answer = httpx.post(workbench.url + "/fhir/Claim/$submit", json=bundle, headers=SUBMITTER)
    assert answer.status_code == 422
    issue = answer.json()["issue"][0]
    assert "Claim.supportingInfo[0].valueAttachment" in " ".join(issue.get("expression", []))
    assert "PDF or UTF-8 text" in issue["details"]["text"]
    info["data"] = "not base64!"
    assert (
        httpx.post(workbench.url + "/fhir/Claim/$submit", json=bundle, headers=SUBMITTER).status_code == 422
    )
    assert workbench.store.count_pa_requests() == before


def test_v1_submission_with_member_provider_and_an_uploaded_document(workbench: Workbench) -> None:
    body = {
        "case": {"date_of_service": "2026-12-15", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"]},
        "member": {"member_id": "M-3003", "name": "Robert Lane", "birth_date": "1957-09-30"},
        "requesting_provider": {"name": "Dr. B", "npi": npi_with_check_digit("199999002")},
    }
    created = httpx.post(workbench.url + "/v1/prior-auth", json=body, headers=SUBMITTER)
    assert created.status_code == 201, created.text
    pa_id = created.json()["id"]
    assert created.json()["subject"] == "Robert Lane (M-3003)"
    read = httpx.get(f"{workbench.url}/v1/prior-auth/{pa_id}", headers=SUBMITTER).json()
    assert read["member"]["birth_date"] == "1957-09-30"
    assert read["requesting_provider"]["npi"] == npi_with_check_digit("199999002")
    bad = copy.deepcopy(body)
    bad["requesting_provider"]["npi"] = "1999990010"
    refused = httpx.post(workbench.url + "/v1/prior-auth", json=bad, headers=SUBMITTER)
    assert refused.status_code == 422
    assert (refused.json()["error"]["field"], refused.json()["error"]["errors"][0]["code"]) == (
        "requesting_provider.npi",
        "invalid_npi",
    )
    url = f"{workbench.url}/v1/prior-auth/{pa_id}/documents"
    pdf = b"%PDF-1.4\n%%EOF\n"
    added = httpx.post(
        url,
        params={"title": "Operative note"},
        content=pdf,
        headers={**SUBMITTER, "Content-Type": "text/plain"},
    )
    assert added.status_code == 201, added.text
    assert added.json()["media_type"] == "application/pdf"  # from the bytes, not the header
    exe = httpx.post(url, params={"title": "x"}, content=b"MZ\x90\x00", headers=SUBMITTER)
    assert (exe.status_code, exe.json()["error"]["code"]) == (415, "unsupported_document_type")
    listed = httpx.get(url, headers=SUBMITTER).json()["items"]
    assert [d["title"] for d in listed] == ["Operative note"]


# -- the workbench -------------------------------------------------------------------------------------


def test_documents_are_shown_escaped_and_downloaded_as_attachments(workbench: Workbench) -> None:
    pa = workbench.create("information_needed")
    nurse = workbench.client(NURSE)
    token = csrf_of(nurse.get(f"/requests/{pa.id}").text)
    upload = nurse.post(
        f"/requests/{pa.id}/documents",
        data={"csrf_token": token, "title": "Note <b>bold</b>"},
        files={"file": ("note.html", b"<script>alert(1)</script> margins negative", "text/html")},
    )
    assert upload.status_code == 303, upload.text[upload.text.find('id="problem"') :][:300]
    (doc,) = workbench.store.list_documents(pa.id)
    assert doc.media_type == "text/plain"
    page = nurse.get(f"/requests/{pa.id}/documents/{doc.id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    download = nurse.get(f"/requests/{pa.id}/documents/{doc.id}/download")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-type"].startswith("text/plain")
    viewed = [e for e in workbench.store.list_audit(pa.id) if e.action == "document_viewed"]
    assert [e.actor for e in viewed] == [NURSE[0], NURSE[0]]
    refused = nurse.post(
        f"/requests/{pa.id}/documents",
        data={"csrf_token": token},
        files={"file": ("x.png", b"\x89PNG\r\n\x1a\n\x00\x00", "image/png")},
    )
    assert refused.status_code == 415
    assert "neither a PDF nor UTF-8 text" in refused.text


def test_an_approval_note_stays_out_of_the_letter_unless_chosen(workbench: Workbench) -> None:
    nurse = workbench.client(NURSE)
    for chosen in (False, True):
        pa, _ = workbench.store.create_pa_request(
            {"date_of_service": "2026-12-15", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"]},
            submitter="test-submitter",
        )
        workbench.store.apply_action(
            pa.id,
            "request_information",
            NURSE[0],
            "nurse",
            None,
            {"margin_status": "positive", "t_stage": "pT4b"},
        )
        token = csrf_of(nurse.get(f"/requests/{pa.id}").text)
        data = {"csrf_token": token, "action": "approve", "confirm": "yes", "reason": "Spoke to the office."}
        if chosen:
            data["letter_reason"] = "yes"
        answer = nurse.post(f"/requests/{pa.id}/actions", data=data)
        assert answer.status_code == 303, answer.text[answer.text.find('id="problem"') :][:300]
        letter = nurse.get(f"/requests/{pa.id}/letter").text
        assert ("Spoke to the office" in letter) is chosen
        assert "Authorization number: " + pa.id in letter
        assert "Valid from 15 December 2026 through 14 March 2027" in letter
        assert "Procedure code 77425" in letter
        if not chosen:
            assert [n.text for n in workbench.store.list_notes(pa.id)] == ["Spoke to the office."]


def test_a_request_no_policy_governs_shows_no_decision_and_can_be_closed(workbench: Workbench) -> None:
    pa, _ = workbench.store.create_pa_request(
        {"date_of_service": "2026-12-15", "procedure_codes": ["99213"], "diagnosis_codes": ["C20"]},
        submitter="test-submitter",
    )
    nurse = workbench.client(NURSE)
    page = nurse.get(f"/requests/{pa.id}").text
    assert 'id="not-governed"' in page
    assert 'id="checklist"' not in page  # no green "Met" criteria
    assert "Close: not governed by this policy" in page
    assert "Only a physician reviewer may deny" not in page
    token = csrf_of(page)
    answer = nurse.post(
        f"/requests/{pa.id}/actions", data={"csrf_token": token, "action": "close_not_governed"}
    )
    assert answer.status_code == 303
    assert workbench.store.get_pa_request(pa.id).state == "closed_not_governed"
    assert nurse.get(f"/requests/{pa.id}/letter").status_code == 404  # no decision, no letter


def test_form_errors_are_beside_the_field_in_words(workbench: Workbench) -> None:
    pa, _ = workbench.store.create_pa_request(
        {
            "date_of_service": "2026-12-15",
            "procedure_codes": ["77425"],
            "diagnosis_codes": ["C20"],
            "margin_status": "positive",
        },
        submitter="test-submitter",
    )
    nurse = workbench.client(NURSE)
    token = csrf_of(nurse.get(f"/requests/{pa.id}").text)
    page = nurse.post(f"/requests/{pa.id}/answers", data={"csrf_token": token, "fact_t_stage": "T9"})
    assert page.status_code == 422
    assert 'id="error_t_stage"' in page.text
    assert "t_stage[0]" not in page.text
    assert '<a href="#fact_t_stage">T stage</a>' in page.text


def test_queue_filters_and_my_work(workbench: Workbench) -> None:
    mine = workbench.create("information_needed")
    other = workbench.create("information_needed")
    nurse = workbench.client(NURSE)
    workbench.store.assign(mine.id, NURSE[0], actor=NURSE[0], role="nurse")
    workbench.store.assign(other.id, PHYSICIAN[0], actor=NURSE[0], role="nurse")
    page = nurse.get("/?view=mine").text
    assert mine.id in page
    assert other.id not in page
    assert "Nora Nurse, RN" in page  # the assignee by name
    tabs = nurse.get("/?view=open&provider=Moreno&due=week").text
    assert "view=physician&amp;provider=Moreno&amp;due=week" in tabs  # the tabs keep the filters
    page = nurse.get("/?view=open&state=information_needed&due=week&policy=bluekc-iort").text
    assert mine.id in page
    assert other.id in page
    assert other.id not in nurse.get("/?view=open&due=overdue").text
    assert other.id not in nurse.get("/?view=open&provider=no-such-provider").text


def test_denial_reasons_are_generated_from_the_policy() -> None:
    from medpolicy import decide, load_policies

    det = decide(
        {
            "date_of_service": "2026-12-15",
            "procedure_codes": ["77425"],
            "diagnosis_codes": ["C20"],
            "margin_status": "negative",
        },
        load_policies(),
    ).to_dict()
    codes = [r.code for r in denial_reasons(det)]
    assert codes[0] == "investigational"
    assert "criterion_not_met:positive-or-close-margins" in codes
    assert codes[-2:] == ["not_medically_necessary", "information_not_received"]
    assert not any("not-governed" in c for c in codes)


# -- metrics -------------------------------------------------------------------------------------------


def _pa(id_: str, urgency: str, state: str, received: datetime) -> PARequest:
    return PARequest(
        id=id_, submitter="s", idempotency_key=None, urgency=urgency, state=state, subject=None,
        received_at=received, due_at=received + (timedelta(hours=72) if urgency == "expedited" else timedelta(days=7)),
        updated_at=received, policy_id="p", case={}, determination_id=None, recommendation=None,
        decision_reason=None, version=1,
    )  # fmt: skip


def _ev(
    pa: PARequest, n: int, action: str, to: str, at: datetime, frm: str = "pending_physician_review"
) -> AuditEvent:
    return AuditEvent(n, pa.id, at, "dr", "physician", action, frm, to, None, None)


def test_prior_auth_metrics() -> None:
    t0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
    a = _pa("a", "standard", "approved", t0)
    b = _pa("b", "standard", "denied", t0)
    c = _pa("c", "expedited", "approved", t0)
    d = _pa("d", "expedited", "denied", t0)  # decided late, outside the period
    items = [
        (a, [_ev(a, 1, "approve", "approved", t0 + timedelta(hours=10))]),
        (b, [_ev(b, 2, "deny", "denied", t0 + timedelta(hours=30))]),
        (c, [
            _ev(c, 3, "peer_to_peer_held", "pending_physician_review", t0 + timedelta(hours=1)),
            _ev(c, 4, "approve", "approved", t0 + timedelta(hours=80)),
        ]),
        (d, [_ev(d, 5, "deny", "denied", t0 + timedelta(days=40))]),
    ]  # fmt: skip
    m = prior_auth_metrics(items, date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("America/Chicago"))
    assert (m.decided, m.approved, m.denied, m.approved_after_peer_to_peer) == (3, 2, 1, 1)
    assert m.share(m.approved) == "66.7%"
    standard, expedited = m.times
    assert (standard.urgency, standard.median_hours, standard.on_time) == ("standard", 20.0, 2)
    assert (expedited.decided, expedited.median_hours, expedited.on_time) == (1, 80.0, 0)  # 80 h > 72 h


def test_reports_page_and_bad_dates(workbench: Workbench) -> None:
    nurse = workbench.client(NURSE)
    page = nurse.get("/reports?start=2026-01-01&end=2026-12-31")
    assert page.status_code == 200
    assert 'data-metric="approved_after_appeal"' in page.text
    page = nurse.get("/reports?start=yesterday")
    assert "is not a date" in page.text


# -- the plan's configuration and smaller things ------------------------------------------------------


def test_the_plan_folder_configures_the_letters(tmp_path: Path) -> None:
    plan = load_plan()
    assert plan.name == "Heartland Demo Health Plan"
    assert plan.appeals.fax
    assert len(plan.taglines) >= 5
    assert plan.when(datetime(2026, 1, 15, 18, 0, tzinfo=UTC)) == "15 Jan 2026 12:00 CST"
    folder = tmp_path / "plan"
    folder.mkdir()
    (folder / "plan.toml").write_text('[plan]\nname = "X"\nphone = "1"\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(PlanConfigError, match="unknown time zone"):
        load_plan(folder)
    assert load_plan(timezone="Europe/Berlin").timezone == "Europe/Berlin"


def test_chromium_is_found_where_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "chromium-browser"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MEDPOLICY_CHROMIUM", str(fake))
    assert find_chromium() == str(fake)
    monkeypatch.delenv("MEDPOLICY_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "none"))
    assert find_chromium() == str(fake)
    fake.unlink()
    assert find_chromium() is None


def test_help_has_no_type_placeholders() -> None:
    for command in (["serve"], ["decide"], ["user", "add"]):
        out = subprocess.run(
            [sys.executable, "-m", "medpolicy", *command, "--help"],
            capture_output=True,
            text=True,
            check=True,
            env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
        ).stdout
        assert "<bool>" not in out
        assert "<str>" not in out


def test_favicon(workbench: Workbench) -> None:
    answer = httpx.get(workbench.url + "/favicon.ico")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
