"""The workbench over real HTTP (uvicorn on loopback, SQLite store): sign-in, cookies, CSRF, roles
checked by the server, the queue, the missing-facts form, letters, and a quick accessibility check
(every form control has a label; landmarks; one h1)."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from medpolicy.web import configure
from medpolicy.web.settings import WebSettings
from medpolicy.web.users import Lockout

from .conftest import ADMIN, NURSE, PHYSICIAN, Workbench, csrf_of, sign_in


def _audit_actions(wb: Workbench, request_id: str) -> list[str]:
    return [e.action for e in wb.store.list_audit(request_id)]


# -- sign-in ---------------------------------------------------------------------------------------


def test_pages_need_sign_in(workbench: Workbench) -> None:
    client = workbench.client()
    for path in ("/", "/policies/bluekc-iort", "/requests/pa_x", "/admin/users"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


def test_session_cookie_flags(workbench: Workbench) -> None:
    client = workbench.client()
    response = sign_in(client, *NURSE)
    assert response.status_code == 303
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("medpolicy_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # http on loopback: the demo works; https gets Secure (auto)


def test_secure_cookie_when_configured(workbench: Workbench) -> None:
    state = workbench.server.app.state.medpolicy_web
    try:
        configure(workbench.server.app, settings=WebSettings(secure_cookies=True))
        page = workbench.client().get("/login")
        assert "Secure" in page.headers["set-cookie"]
        token = csrf_of(page.text)
        # a browser would send the Secure cookie over https only; send it by hand over loopback http
        response = httpx.post(
            workbench.url + "/login",
            data={"csrf_token": token, "username": NURSE[0], "password": NURSE[1], "next": "/"},
            headers={"Cookie": f"medpolicy_login_csrf={token}"},
        )
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("medpolicy_session=")
        )
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
    finally:
        workbench.server.app.state.medpolicy_web = state


def test_wrong_password_and_next(workbench: Workbench) -> None:
    client = workbench.client()
    page = client.get("/login?next=/policies")
    response = client.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "username": NURSE[0],
            "password": "nope",
            "next": "/policies",
        },
    )
    assert response.status_code == 401
    assert "not right" in response.text
    response = client.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": NURSE[0], "password": NURSE[1], "next": "//evil"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_login_form_needs_its_csrf_token(workbench: Workbench) -> None:
    client = workbench.client()
    client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": "forged", "username": NURSE[0], "password": NURSE[1], "next": "/"}
    )
    assert response.status_code == 403
    assert "medpolicy_session=" not in response.headers.get("set-cookie", "")


def test_lock_out_over_http(workbench: Workbench) -> None:
    workbench.users.add_user("locked.lou", "lou-password-00001", "nurse")
    client = workbench.client()
    statuses = [sign_in(client, "locked.lou", "wrong-password").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 423]
    response = sign_in(client, "locked.lou", "lou-password-00001")
    assert response.status_code == 423
    assert "locked" in response.text
    # an administrator unlocks it
    admin = workbench.client(ADMIN)
    page = admin.get("/admin/users")
    assert "Locked until" in page.text
    admin.post(
        "/admin/users", data={"csrf_token": csrf_of(page.text), "op": "unlock", "username": "locked.lou"}
    )
    assert sign_in(workbench.client(), "locked.lou", "lou-password-00001").status_code == 303


def test_lock_out_is_configurable(workbench: Workbench) -> None:
    app = workbench.server.app
    state = app.state.medpolicy_web
    try:
        configure(app, settings=WebSettings(lockout=Lockout(max_failures=2, duration=timedelta(minutes=1))))
        app.state.medpolicy_web.users.add_user("twice.tom", "tom-password-000001", "nurse")
        client = workbench.client()
        assert [sign_in(client, "twice.tom", "bad").status_code for _ in range(2)] == [401, 423]
    finally:
        app.state.medpolicy_web = state


def test_sign_out_ends_the_session(workbench: Workbench) -> None:
    client = workbench.client(NURSE)
    page = client.get("/")
    assert page.status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    assert client.get("/").status_code == 303


# -- CSRF and roles, server side -------------------------------------------------------------------


def test_every_post_needs_the_session_csrf_token(workbench: Workbench) -> None:
    pa = workbench.create("medically_necessary")
    pending = workbench.create("investigational")
    client = workbench.client(PHYSICIAN)
    before = _audit_actions(workbench, pending.id)
    for token in (None, "", "forged-token"):
        data = {"action": "deny", "reason": "forged", "confirm": "yes"}
        if token is not None:
            data["csrf_token"] = token
        response = client.post(f"/requests/{pending.id}/actions", data=data)
        assert response.status_code == 403, token
        assert "Form refused" in response.text
    # another session's token does not work either
    other = workbench.client(PHYSICIAN)
    other_token = csrf_of(other.get("/").text)
    response = client.post(
        f"/requests/{pending.id}/actions",
        data={"csrf_token": other_token, "action": "deny", "reason": "x", "confirm": "yes"},
    )
    assert response.status_code == 403
    response = client.post(f"/requests/{pa.id}/answers", data={"fact_t_stage": "pT4b"})
    assert response.status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    assert _audit_actions(workbench, pending.id) == before
    assert workbench.store.get_pa_request(pending.id).state == "pending_physician_review"


def _action(client: httpx.Client, request_id: str, **data: str) -> httpx.Response:
    token = csrf_of(client.get(f"/requests/{request_id}").text)
    return client.post(f"/requests/{request_id}/actions", data={"csrf_token": token, **data})


def test_a_nurse_cannot_deny_server_side(workbench: Workbench) -> None:
    pa = workbench.create("investigational")
    nurse = workbench.client(NURSE)
    page = nurse.get(f"/requests/{pa.id}")
    assert 'id="action-deny"' not in page.text
    assert "Only a physician reviewer may deny" in page.text
    response = _action(nurse, pa.id, action="deny", reason="I would like to deny", confirm="yes")
    assert response.status_code == 403
    assert "a nurse may not deny" in response.text.lower()
    assert workbench.store.get_pa_request(pa.id).state == "pending_physician_review"
    assert "deny" not in _audit_actions(workbench, pa.id)


def test_a_nurse_cannot_approve_when_criteria_are_not_met(workbench: Workbench) -> None:
    pa = workbench.create("information_needed")
    nurse = workbench.client(NURSE)
    assert 'id="action-approve"' not in nurse.get(f"/requests/{pa.id}").text
    response = _action(nurse, pa.id, action="approve", confirm="yes")
    assert response.status_code == 403
    assert workbench.store.get_pa_request(pa.id).state == "information_needed"


def test_an_administrator_takes_no_clinical_action(workbench: Workbench) -> None:
    pa = workbench.create("investigational")
    admin = workbench.client(ADMIN)
    assert "take no clinical action" in admin.get(f"/requests/{pa.id}").text
    assert _action(admin, pa.id, action="route_to_physician").status_code == 403


def test_final_actions_need_confirmation_and_a_denial_a_reason(workbench: Workbench) -> None:
    pa = workbench.create("investigational")
    physician = workbench.client(PHYSICIAN)
    response = _action(physician, pa.id, action="deny", reason="investigational for breast")
    assert response.status_code == 422
    assert "confirmation" in response.text
    response = _action(physician, pa.id, action="deny", reason="   ", confirm="yes")
    assert response.status_code == 422
    assert "reason" in response.text.lower()
    assert workbench.store.get_pa_request(pa.id).state == "pending_physician_review"
    response = _action(physician, pa.id, action="deny", reason="investigational for breast", confirm="yes")
    assert response.status_code == 303
    pa = workbench.store.get_pa_request(pa.id)
    assert pa.state == "denied"
    assert pa.decision_reason == "investigational for breast"
    event = workbench.store.list_audit(pa.id)[-1]
    assert (event.actor, event.role, event.action) == (PHYSICIAN[0], "physician", "deny")


def test_non_users_only_and_users_page_for_admins(workbench: Workbench) -> None:
    assert workbench.client(NURSE).get("/admin/users").status_code == 403
    admin = workbench.client(ADMIN)
    page = admin.get("/admin/users")
    response = admin.post(
        "/admin/users",
        data={
            "csrf_token": csrf_of(page.text),
            "op": "add",
            "username": "new.nina",
            "display_name": "Nina",
            "role": "nurse",
            "password": "nina-password-0001",
        },
    )
    assert response.status_code == 200
    assert "new.nina is added" in response.text
    assert sign_in(workbench.client(), "new.nina", "nina-password-0001").status_code == 303


def test_the_feedback_page_shows_policy_analysts_card_feedback_and_dtr_problems(workbench: Workbench) -> None:
    def feedback(outcome: str, code: str | None = None) -> dict[str, Any]:
        return {
            "service_id": "medpolicy-crd-order-sign",
            "client": "https://ehr.example",
            "card": "card-1",
            "outcome": outcome,
            "outcome_timestamp": "2026-11-26T10:00:00Z",
            "accepted_suggestions": [],
            "override_code": code,
        }

    workbench.store.record_cds_feedback(
        [feedback("accepted"), feedback("accepted"), feedback("overridden", "patient-declined")]
    )
    workbench.store.record_questionnaire_errors(
        client="dtr-app",
        questionnaire="https://medpolicy.dev/fhir/Questionnaire/bluekc-iort|2009-10-06",
        outcome={
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "processing",
                    "diagnostics": "enableWhen refers to an unknown linkId",
                    "expression": ["Questionnaire.item[5]"],
                }
            ],
        },
    )
    assert workbench.client(NURSE).get("/admin/feedback").status_code == 403
    assert workbench.client(PHYSICIAN).get("/admin/feedback").status_code == 403
    page = workbench.client(ADMIN).get("/admin/feedback")
    assert page.status_code == 200
    text = " ".join(re.sub(r"<[^>]+>", " ", page.text).split())
    assert "medpolicy-crd-order-sign 2 1 33% patient-declined (1)" in text
    assert "Intraoperative Radiation Therapy (IORT)" in text
    assert "error processing: enableWhen refers to an unknown linkId (at Questionnaire.item[5] )" in text
    assert 'href="/admin/feedback"' in page.text  # in the administrator's navigation


# -- the missing-facts form ------------------------------------------------------------------------


def test_answering_missing_facts_redecides_through_the_store(workbench: Workbench) -> None:
    pa = workbench.create("information_needed")
    nurse = workbench.client(NURSE)
    page = nurse.get(f"/requests/{pa.id}")
    assert 'id="answers"' in page.text
    for name in ("margin_status", "t_stage", "recurrent"):
        assert f'id="fact_{name}"' in page.text
    token = csrf_of(page.text)
    bad = nurse.post(f"/requests/{pa.id}/answers", data={"csrf_token": token, "fact_t_stage": "T9"})
    assert bad.status_code == 422
    assert "not valid" in bad.text
    response = nurse.post(
        f"/requests/{pa.id}/answers", data={"csrf_token": token, "fact_margin_status": "positive"}
    )
    assert response.status_code == 303
    page = nurse.get(response.headers["location"])
    assert 'id="fact_margin_status"' not in page.text
    assert 'id="fact_t_stage"' in page.text
    response = nurse.post(f"/requests/{pa.id}/answers", data={"csrf_token": token, "fact_t_stage": "pT4b"})
    pa = workbench.store.get_pa_request(pa.id)
    assert pa.recommendation == "medically_necessary"
    assert pa.state == "ready_to_approve"  # the state follows the determination
    page = nurse.get(f"/requests/{pa.id}")
    assert 'id="answers"' not in page.text
    assert 'id="action-approve"' in page.text
    assert "recommended" in page.text
    # provenance: the reviewer's answers are "entered", the request's facts came from the EHR
    assert re.search(r'data-fact="margin_status".*?entered by nurse\.nora', page.text, re.S)
    assert re.search(r'data-fact="diagnosis_codes".*?EHR', page.text, re.S)
    assert re.search(r'data-fact="tumor_site".*?derived', page.text, re.S)
    assert _action(nurse, pa.id, action="approve", confirm="yes").status_code == 303
    assert workbench.store.get_pa_request(pa.id).state == "approved"


# -- queue, letters, policy --------------------------------------------------------------------------


def test_queue_views_search_and_filters(workbench: Workbench) -> None:
    needs = workbench.create("information_needed", urgency="expedited", member="Patient/zed-42")
    routed = workbench.create("investigational")
    client = workbench.client(NURSE)
    page = client.get("/?view=information_needed").text
    assert needs.id in page
    assert routed.id not in page
    page = client.get("/?view=physician").text
    assert routed.id in page
    assert needs.id not in page
    page = client.get("/?view=open&q=zed-42").text
    assert needs.id in page
    assert routed.id not in page
    page = client.get(f"/?view=open&q={routed.id}").text
    assert routed.id in page
    assert needs.id not in page
    page = client.get("/?view=open&urgency=expedited").text
    assert needs.id in page
    assert routed.id not in page
    page = client.get("/?view=open&sort=urgency").text
    assert page.index(needs.id) < page.index(routed.id)


def test_queue_clock_with_a_fixed_now(workbench: Workbench) -> None:
    expedited = workbench.create("information_needed", urgency="expedited", member="Patient/clock-1")
    standard = workbench.create("information_needed", urgency="standard", member="Patient/clock-2")
    app = workbench.server.app
    state = app.state.medpolicy_web
    try:
        # 66 hours after receipt: the expedited request (72 h) is amber, the standard one (7 d) on time
        configure(app, settings=state.settings, clock=lambda: expedited.received_at + timedelta(hours=66))
        page = workbench.client(NURSE).get("/?view=open&q=clock-").text
        assert re.search(rf'data-request="{expedited.id}" data-clock="amber"', page)
        assert re.search(rf'data-request="{standard.id}" data-clock="ok"', page)
        # 7 days minus 2 hours: expedited overdue (red), standard amber
        configure(
            app, settings=state.settings, clock=lambda: standard.received_at + timedelta(days=7, hours=-2)
        )
        page = workbench.client(NURSE).get("/?view=open&q=clock-").text
        assert re.search(rf'data-request="{expedited.id}" data-clock="red"', page)
        assert re.search(rf'data-request="{standard.id}" data-clock="amber"', page)
        assert "Overdue" in page
        assert "Due soon" in page
    finally:
        app.state.medpolicy_web = state


def test_letters_html_and_pdf(workbench: Workbench) -> None:
    pa = workbench.create("medically_necessary")
    client = workbench.client(NURSE)
    page = client.get(f"/requests/{pa.id}/letter")
    assert page.status_code == 200
    assert 'data-kind="approval"' in page.text
    pdf = client.get(f"/requests/{pa.id}/letter.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert "attachment" in pdf.headers["content-disposition"]
    open_pa = workbench.create("information_needed")
    assert client.get(f"/requests/{open_pa.id}/letter").status_code == 404


def test_policy_browser(workbench: Workbench) -> None:
    page = workbench.client(NURSE).get("/policies/bluekc-iort").text
    for version in ("1988-10-01", "2002-09-01", "2004-09-01", "2009-10-06"):
        assert f'id="version-{version}"' in page
    assert "77424" in page
    assert "IORT delivery by x-ray (kilovoltage), one session" in page
    assert '<mark id="cite-1" class="cite">' in page
    assert 'id="criterion-2009-10-06-rectal-margins-t4-or-recurrent"' in page


def test_security_headers(workbench: Workbench) -> None:
    response = workbench.client(NURSE).get("/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


# -- a quick accessibility check -----------------------------------------------------------------------


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.label_depth = 0
        self.tags: list[str] = []
        self.h1 = 0
        self.html_lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag == "h1":
            self.h1 += 1
        if tag == "label":
            self.label_depth += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append({**a, "_wrapped": "yes" if self.label_depth else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth -= 1


def _check_accessibility(html: str, where: str) -> None:
    audit = _Audit()
    audit.feed(html)
    assert audit.html_lang == "en", where
    for landmark in ("header", "main", "footer"):
        assert landmark in audit.tags, (where, landmark)
    assert audit.h1 == 1, where
    for control in audit.controls:
        labelled = (
            control.get("_wrapped")
            or (control.get("id") and control["id"] in audit.label_for)
            or control.get("aria-label")
        )
        assert labelled, f"{where}: a {control} has no label"


@pytest.mark.parametrize("who", [NURSE, PHYSICIAN, ADMIN])
def test_every_control_has_a_label(workbench: Workbench, who: tuple[str, str]) -> None:
    client = workbench.client()
    _check_accessibility(client.get("/login").text, "/login")
    client = workbench.client(who)
    requests = [workbench.create(kind) for kind in ("information_needed", "investigational")]
    decided = workbench.create("medically_necessary")
    paths = ["/", "/?view=decided", "/policies", "/policies/bluekc-iort", f"/requests/{decided.id}/letter"]
    paths += [f"/requests/{pa.id}" for pa in [*requests, decided]]
    if who == ADMIN:
        paths += ["/admin/users", "/admin/feedback"]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        _check_accessibility(response.text, path)
    assert 'nav aria-label="Main"' in client.get("/").text


def test_preview_decides_without_recording(workbench: Workbench) -> None:
    pa = workbench.create("information_needed")
    nurse = workbench.client(NURSE)
    token = csrf_of(nurse.get(f"/requests/{pa.id}").text)
    before = _audit_actions(workbench, pa.id)
    refused = nurse.post(f"/requests/{pa.id}/preview", data={"fact_margin_status": "positive"})
    assert refused.status_code == 403
    answer = nurse.post(
        f"/requests/{pa.id}/preview",
        data={"csrf_token": token, "fact_margin_status": "positive", "fact_t_stage": "pT4b"},
    ).json()
    assert answer == {
        "outcome": "medically_necessary",
        "label": "Medically necessary",
        "still_needed": [],
        "errors": [],
    }
    partial = nurse.post(
        f"/requests/{pa.id}/preview", data={"csrf_token": token, "fact_margin_status": "negative"}
    ).json()
    assert partial["outcome"] == "investigational"
    invalid = nurse.post(
        f"/requests/{pa.id}/preview", data={"csrf_token": token, "fact_t_stage": "T9"}
    ).json()
    assert invalid["outcome"] is None
    assert invalid["errors"]
    assert _audit_actions(workbench, pa.id) == before
    assert workbench.store.get_pa_request(pa.id).recommendation == "information_needed"
