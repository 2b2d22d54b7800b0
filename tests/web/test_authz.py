"""The workbench under the authorization rules: corrections with a required reason (the original stays
visible on the page and in the letter), an approval on a nurse's correction needs a physician, a
physician may override a derived fact, the letter names the registered reviewer, and every read of a
request's patient data by a person is recorded."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from medpolicy.service.testing import INVESTIGATIONAL, MEDICALLY_NECESSARY
from medpolicy.store import Action, Role
from medpolicy.web.letters import build_letter

from .conftest import ADMIN, NURSE, PHYSICIAN, Workbench, csrf_of


def _post(client: httpx.Client, request_id: str, path: str, **data: str) -> httpx.Response:
    token = csrf_of(client.get(f"/requests/{request_id}").text)
    return client.post(f"/requests/{request_id}/{path}", data={"csrf_token": token, **data})


def test_a_nurse_corrects_a_fact_with_a_reason_and_only_a_physician_approves(workbench: Workbench) -> None:
    pa, _ = workbench.store.create_pa_request(INVESTIGATIONAL, submitter="test-submitter")
    nurse = workbench.client(NURSE)
    no_reason = _post(nurse, pa.id, "corrections", fact="diagnosis_codes", value="C20")
    assert no_reason.status_code == 422
    assert "must state its reason" in no_reason.text
    for fact, value in (("diagnosis_codes", "C20"), ("margin_status", "positive"), ("t_stage", "pT4b")):
        done = _post(nurse, pa.id, "corrections", fact=fact, value=value, reason="operative report")
        assert done.status_code == 303, done.text
    page = nurse.get(f"/requests/{pa.id}").text
    assert "corrected by Nora Nurse, RN (nurse reviewer) from C50.911" in page
    assert 'id="nurse-corrected"' in page
    assert 'id="action-approve"' not in page  # the button is gone ...
    refused = _post(nurse, pa.id, "actions", action="approve", confirm="yes")
    assert refused.status_code == 403  # ... and the server refuses the approval anyway
    assert "needs a physician" in refused.text

    physician = workbench.client(PHYSICIAN)
    approved = _post(physician, pa.id, "actions", action="approve", confirm="yes", reason="criteria met")
    assert approved.status_code == 303, approved.text
    letter = physician.get(f"/requests/{pa.id}/letter").text
    assert "Facts corrected in review" in letter
    assert "corrected by Nora Nurse, RN (nurse reviewer) from C50.911 (submitted as that)" in letter
    events = workbench.store.list_audit(pa.id)
    corrections = [e for e in events if e.action == "correct_fact"]
    assert len(corrections) == 3
    assert (corrections[0].actor, corrections[0].principal, corrections[0].reason) == (
        "nurse.nora",
        "user:nurse.nora",
        "operative report",
    )
    assert events[-1].principal == "user:dr.paul"


def test_a_physician_overrides_a_derived_fact(workbench: Workbench) -> None:
    pa, _ = workbench.store.create_pa_request(
        {**MEDICALLY_NECESSARY, "diagnosis_codes": ["C21.1"], "t_stage": "pT4"}, submitter="test-submitter"
    )
    assert pa.recommendation == "investigational"
    physician = workbench.client(PHYSICIAN)
    done = _post(
        physician,
        pa.id,
        "corrections",
        fact="tumor_site",
        value="rectum",
        reason="tumour board: rectal primary",
    )
    assert done.status_code == 303, done.text
    assert workbench.store.get_pa_request(pa.id).recommendation == "medically_necessary"
    page = physician.get(f"/requests/{pa.id}").text
    assert "corrected by Dr. Paul Physician (physician reviewer) from derived Anus or anal canal" in page
    assert "tumour board: rectal primary" in page


def test_the_letter_names_the_registered_reviewer_never_free_text(workbench: Workbench) -> None:
    registered, _ = workbench.store.create_pa_request(INVESTIGATIONAL, submitter="test-submitter")
    workbench.store.apply_action(
        registered.id, Action.DENY, PHYSICIAN[0], Role.PHYSICIAN, reason="investigational"
    )
    physician = workbench.client(PHYSICIAN)
    assert "Decided on" in physician.get(f"/requests/{registered.id}/letter").text
    letter_page = physician.get(f"/requests/{registered.id}/letter").text
    assert "by Dr. Paul Physician" in letter_page  # the registered account's name (and credentials)
    assert "physician reviewer" in letter_page

    legacy, _ = workbench.store.create_pa_request(INVESTIGATIONAL, submitter="test-submitter")
    denied = workbench.store.apply_action(
        legacy.id, Action.DENY, "Dr. Somebody Else", Role.PHYSICIAN, reason="investigational"
    )
    letter = build_letter(denied, workbench.store.list_audit(legacy.id), None, names={"dr.paul": "Dr. Paul"})
    assert "Somebody Else" not in letter.text()
    assert letter.decided_by == "the plan's physician reviewer"


def test_reading_a_requests_patient_data_is_recorded(workbench: Workbench) -> None:
    pa, _ = workbench.store.create_pa_request(MEDICALLY_NECESSARY, submitter="test-submitter")
    nurse = workbench.client(NURSE)
    assert nurse.get(f"/requests/{pa.id}").status_code == 200
    assert nurse.get(f"/requests/{pa.id}/letter.pdf").status_code == 200
    reads = workbench.store.list_reads(pa.id)
    assert [(r["principal"], r["actor"], r["what"]) for r in reads] == [
        ("user:nurse.nora", "nurse.nora", "request page"),
        ("user:nurse.nora", "nurse.nora", "letter"),
    ]
    assert all(r["at"].tzinfo is not None for r in reads)


def test_an_administrator_cannot_answer_or_correct_a_request(workbench: Workbench) -> None:
    pa = workbench.create("information_needed")
    admin = workbench.client(ADMIN)
    token = csrf_of(admin.get(f"/requests/{pa.id}").text)
    answers = admin.post(
        f"/requests/{pa.id}/answers", data={"csrf_token": token, "fact_margin_status": "negative"}
    )
    correction = admin.post(
        f"/requests/{pa.id}/corrections",
        data={"csrf_token": token, "fact": "t_stage", "value": "pT1", "reason": "operative report"},
    )
    for refused in (answers, correction):
        assert refused.status_code == 403
        assert "An administrator cannot change a request." in refused.text
        assert 'id="facts-h"' in refused.text  # the refusal shows the request's page (its patient data) ...
    reads = [(r["actor"], r["what"]) for r in workbench.store.list_reads(pa.id)]
    assert reads == [("admin.ada", "request page")] * 3  # ... so it is a read, like the page itself
    assert [e.action for e in workbench.store.list_audit(pa.id)] == ["submit", "request_information"]
    stale = admin.post(f"/requests/{pa.id}/answers", data={"csrf_token": "stale"})
    assert stale.status_code == 403  # the CSRF check comes first, as before
    assert "An administrator cannot change" not in stale.text
    unknown = admin.post("/requests/pa_unknown/corrections", data={"csrf_token": token, "fact": "t_stage"})
    assert unknown.status_code == 404  # an unknown request: 404 before the role is looked at


def test_each_request_the_queue_shows_is_recorded_as_read(workbench: Workbench) -> None:
    """The queue shows each request's member (name, id, birth date): a read of each request shown."""
    shown = workbench.create("medically_necessary", member="Queue Quinn (M-7001)")
    hidden = workbench.create("investigational", member="Hidden Hal (M-7002)")
    physician = workbench.client(PHYSICIAN)
    page = physician.get("/", params={"view": "decided", "q": "M-7001"})
    assert page.status_code == 200
    assert "Queue Quinn" in page.text
    assert "Hidden Hal" not in page.text
    reads = workbench.store.list_reads(shown.id)
    assert [(r["principal"], r["actor"], r["what"]) for r in reads] == [
        ("user:dr.paul", "dr.paul", "queue page")
    ]
    assert workbench.store.list_reads(hidden.id) == []  # filtered out: not shown, not read


def test_an_administrator_changes_a_role_and_it_is_logged(workbench: Workbench, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="medpolicy.security")
    workbench.users.add_user("role.rita", "rita-password-00001", "nurse", display_name="Rita")
    admin = workbench.client(ADMIN)
    token = csrf_of(admin.get("/admin/users").text)
    done = admin.post(
        "/admin/users", data={"csrf_token": token, "op": "role", "username": "role.rita", "role": "physician"}
    )
    assert done.status_code == 200
    user = workbench.users.get_user("role.rita")
    assert user is not None
    assert user.role.value == "physician"
    logged = [r.getMessage() for r in caplog.records if r.name == "medpolicy.security"]
    assert (
        "security event=role_changed principal=user:admin.ada user=user:role.rita old=nurse new=physician"
        in logged
    )
