"""Authorization of the /v1 API rests on who the caller is: a nurse client cannot approve by rewriting
the provider's facts, corrections are audited with old and new value, and every event names the
authenticated client and the registered reviewer it acted for (never free text, never the engine)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from medpolicy.service.testing import INVESTIGATIONAL, LiveServer

REWRITE: dict[str, Any] = {"diagnosis_codes": ["C20"], "margin_status": "positive", "t_stage": "pT4b"}


def _post(server: LiveServer, path: str, body: Any, token: str) -> httpx.Response:
    return httpx.post(server.url(path), json=body, headers=server.headers(token), timeout=30)


def _get(server: LiveServer, path: str, token: str | None = None) -> httpx.Response:
    return httpx.get(server.url(path), headers=server.headers(token), timeout=30)


def _submit(server: LiveServer, case: dict[str, Any]) -> dict[str, Any]:
    response = _post(server, "/v1/prior-auth", {"case": case}, server.token)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_nurse_client_cannot_approve_by_rewriting_the_diagnosis(live_server: LiveServer) -> None:
    pa = _submit(live_server, INVESTIGATIONAL)
    path = f"/v1/prior-auth/{pa['id']}/actions"
    attack = {"action": "approve", "role": "nurse", "on_behalf_of": "nurse.ann", "case_update": REWRITE}
    assert _code(_post(live_server, path, attack, live_server.nurse_token)) == (
        422,
        "correction_reason_required",
    )
    with_reason = attack | {"reason": "the EHR is wrong"}
    assert _code(_post(live_server, path, with_reason, live_server.nurse_token)) == (
        403,
        "action_not_permitted",
    )
    now = _get(live_server, f"/v1/prior-auth/{pa['id']}").json()
    assert now["state"] == "pending_physician_review"
    assert now["case"]["diagnosis_codes"] == ["C50.911"]
    assert now["corrections"] == []


def test_a_correction_keeps_the_original_visible_and_needs_a_physician_to_approve(
    live_server: LiveServer,
) -> None:
    pa = _submit(live_server, INVESTIGATIONAL)
    corrected = _post(
        live_server,
        f"/v1/prior-auth/{pa['id']}/corrections",
        {
            "facts": REWRITE,
            "reason": "operative report: rectal primary",
            "role": "nurse",
            "on_behalf_of": "nurse.ann",
        },
        live_server.nurse_token,
    )
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert body["state"] == "pending_physician_review"
    first = body["corrections"][0]
    assert (first["fact"], first["from"], first["to"], first["by"], first["principal"]) == (
        "diagnosis_codes",
        ["C50.911"],
        ["C20"],
        "nurse.ann",
        "client:test-nurse",
    )
    assert first["reason"] == "operative report: rectal primary"
    path = f"/v1/prior-auth/{pa['id']}/actions"
    nurse = {"action": "approve", "role": "nurse", "on_behalf_of": "nurse.ann"}
    assert _code(_post(live_server, path, nurse, live_server.nurse_token)) == (403, "action_not_permitted")
    physician = {"action": "approve", "role": "physician", "on_behalf_of": "dr.bo", "reason": "criteria met"}
    approved = _post(live_server, path, physician, live_server.physician_token)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    events = _get(live_server, f"/v1/prior-auth/{pa['id']}/events").json()["items"]
    assert [e["action"] for e in events][-4:] == ["correct_fact", "correct_fact", "correct_fact", "approve"]
    assert events[-1]["principal"] == "client:test-physician"
    assert events[-1]["actor"] == "dr.bo"


def test_a_reviewer_client_acts_only_for_a_registered_reviewer_with_the_role(live_server: LiveServer) -> None:
    pa = _submit(live_server, INVESTIGATIONAL)
    path = f"/v1/prior-auth/{pa['id']}/actions"
    deny = {"action": "deny", "role": "physician", "reason": "investigational for breast cancer"}
    token = live_server.physician_token
    assert _code(_post(live_server, path, deny, token)) == (422, "reviewer_required")
    assert _code(_post(live_server, path, deny | {"actor": "Dr. Somebody Else"}, token)) == (
        422,
        "unknown_reviewer",
    )
    assert _code(_post(live_server, path, deny | {"on_behalf_of": "medpolicy"}, token)) == (
        422,
        "reserved_actor",
    )
    assert _code(_post(live_server, path, deny | {"on_behalf_of": "nurse.ann"}, token)) == (
        403,
        "reviewer_role_not_granted",
    )
    denied = _post(live_server, path, deny | {"on_behalf_of": "dr.bo"}, token)
    assert denied.status_code == 200, denied.text
    last = _get(live_server, f"/v1/prior-auth/{pa['id']}/events").json()["items"][-1]
    assert (last["action"], last["actor"], last["principal"]) == ("deny", "dr.bo", "client:test-physician")
    first = _get(live_server, f"/v1/prior-auth/{pa['id']}/events").json()["items"][0]
    assert (first["action"], first["principal"]) == ("submit", "client:test-submitter")


def test_every_access_log_line_names_the_principal_and_auth_failures_are_security_events(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="medpolicy")
    assert _get(live_server, "/v1/prior-auth?limit=1").status_code == 200
    assert _get(live_server, "/v1/prior-auth?limit=1", "not-a-token-at-all-0000").status_code == 401
    access = [r.getMessage() for r in caplog.records if r.name == "medpolicy.access"]
    assert any(
        line.startswith("GET /v1/prior-auth 200") and "principal=client:test-submitter" in line
        for line in access
    )
    assert any(line.startswith("GET /v1/prior-auth 401") and line.endswith("principal=-") for line in access)
    security = [r.getMessage() for r in caplog.records if r.name == "medpolicy.security"]
    assert "security event=api_auth_failed principal=- reason=invalid_token" in security
    assert not any("not-a-token" in r.getMessage() for r in caplog.records)


def test_a_reviewer_clients_reads_of_patient_data_are_recorded(live_server: LiveServer) -> None:
    """HIPAA access accounting: a reviewer client's reads of a request (the request, its audit trail,
    its documents, a determination of it) are recorded with the authenticated principal, as the
    workbench records a person's; the submitter reading what it sent is not."""
    pa = _submit(live_server, INVESTIGATIONAL)
    assert _get(live_server, f"/v1/prior-auth/{pa['id']}").status_code == 200  # the submitter
    assert live_server.store.list_reads(pa["id"]) == []
    nurse = live_server.nurse_token
    assert _get(live_server, f"/v1/prior-auth/{pa['id']}", nurse).status_code == 200
    assert _get(live_server, f"/v1/prior-auth/{pa['id']}/events", nurse).status_code == 200
    assert _get(live_server, f"/v1/prior-auth/{pa['id']}/documents", nurse).status_code == 200
    determination = _get(
        live_server, f"/v1/determinations/{pa['determination_id']}", live_server.physician_token
    )
    assert determination.status_code == 200
    reads = live_server.store.list_reads(pa["id"])
    assert [(r["principal"], r["actor"], r["what"]) for r in reads] == [
        ("client:test-nurse", "test-nurse", "api request"),
        ("client:test-nurse", "test-nurse", "api audit trail"),
        ("client:test-nurse", "test-nurse", "api documents"),
        ("client:test-physician", "test-physician", "api determination"),
    ]
    assert all(r["at"].tzinfo is not None for r in reads)
    # a refused read records nothing
    assert _get(live_server, f"/v1/prior-auth/{pa['id']}", live_server.other_token).status_code == 404
    assert _get(live_server, "/v1/prior-auth/pa_unknown", nurse).status_code == 404
    assert len(live_server.store.list_reads(pa["id"])) == 4


def test_a_reviewer_clients_list_reads_are_recorded_for_each_request_listed(live_server: LiveServer) -> None:
    """Each item of `GET /v1/prior-auth` shows a request's case: a reviewer client's list is one read
    per request listed, under the authenticated client. A name the client sends along is not the
    reader (a bearer token is not bound to a person: docs/security.md)."""
    first, second = _submit(live_server, INVESTIGATIONAL), _submit(live_server, INVESTIGATIONAL)
    store = live_server.store
    assert _get(live_server, "/v1/prior-auth?limit=500").status_code == 200  # the submitter: its own
    assert store.list_reads(first["id"]) == store.list_reads(second["id"]) == []

    nurse = live_server.nurse_token
    found = _get(live_server, f"/v1/prior-auth?search={first['id']}&on_behalf_of=nurse.ann", nurse)
    assert [item["id"] for item in found.json()["items"]] == [first["id"]]
    reads = store.list_reads(first["id"])
    assert [(r["principal"], r["actor"], r["what"]) for r in reads] == [
        ("client:test-nurse", "test-nurse", "api list")
    ]
    assert store.list_reads(second["id"]) == []  # not listed, not read

    everything = _get(live_server, "/v1/prior-auth?limit=500", live_server.physician_token).json()["items"]
    assert {first["id"], second["id"]} <= {item["id"] for item in everything}
    for item in everything:
        listed = [
            (r["principal"], r["actor"]) for r in store.list_reads(item["id"]) if r["what"] == "api list"
        ]
        assert listed.count(("client:test-physician", "test-physician")) == 1

    nothing = _get(live_server, "/v1/prior-auth?search=no-such-request-anywhere", nurse)
    assert nothing.json()["items"] == []
    assert _get(live_server, "/v1/prior-auth?limit=0", nurse).status_code == 422  # refused: no read
    assert len(store.list_reads(first["id"])) == 2
