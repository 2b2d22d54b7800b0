"""The workbench in a real browser: Playwright driving headless Chromium (Debian's `chromium`) against
the service on loopback with a real SQLite store. Screenshots go to test-artifacts/screenshots/, and
the main pages also to docs/screenshots/ (linked from the README and docs/workbench.md) when
MEDPOLICY_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import NURSE, PHYSICIAN, Workbench, screenshot

pytestmark = pytest.mark.browser


def _sign_in(page: Any, wb: Workbench, who: tuple[str, str]) -> None:
    page.goto(wb.url + "/login")
    page.get_by_label("Username").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(\?.*)?$"))


def test_sign_in_with_the_keyboard_and_lock_out(workbench: Workbench, page: Any) -> None:
    workbench.users.add_user("keyboard.kim", "kim-password-000001", "nurse", display_name="Kim Keys, RN")
    page.goto(workbench.url + "/")
    assert "/login" in page.url  # the queue needs a signed-in reviewer
    screenshot(page, "sign-in", docs=True)
    # keyboard only: the username has focus; Tab to the password; Enter sends the form
    page.keyboard.type("keyboard.kim")
    page.keyboard.press("Tab")
    message = ""
    for attempt in range(5):
        # after a failure the page keeps the username and puts the focus on the password
        assert page.evaluate("document.activeElement.id") == "password"
        page.keyboard.type("not-the-password")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        message = page.get_by_role("alert").inner_text()
        if attempt < 4:
            assert "not right" in message
    assert "locked after 5 failed sign-ins" in message
    screenshot(page, "sign-in-locked")
    page.get_by_label("Password").fill("kim-password-000001")
    with page.expect_navigation():
        page.get_by_label("Password").press("Enter")
    assert "locked" in page.get_by_role("alert").inner_text()  # the right password is refused too
    # another account signs in normally
    _sign_in(page, workbench, NURSE)
    assert page.get_by_role("heading", level=1).inner_text() == "Review queue"
    assert "Nora Nurse, RN" in page.get_by_role("banner").inner_text()


def test_the_queue(workbench: Workbench, page: Any) -> None:
    store = workbench.store
    now = store.clock()
    real_clock = store.clock
    try:  # requests received some time ago (the store stamps receipt and due time with its clock)
        store.clock = lambda: now - timedelta(hours=80)
        overdue = workbench.create("information_needed", urgency="expedited", member="Patient/queue-olga")
        store.clock = lambda: now - timedelta(hours=64)
        soon = workbench.create("investigational", urgency="expedited", member="Patient/queue-sam")
        store.clock = lambda: now - timedelta(days=6, hours=12)
        standard_soon = workbench.create("information_needed", member="Patient/queue-tess")
    finally:
        store.clock = real_clock
    urgent = workbench.create("information_needed", urgency="expedited", member="Patient/queue-ursula")
    routed = workbench.create("investigational", member="Patient/queue-victor")
    approved = workbench.create("medically_necessary", member="Patient/queue-walter")
    _sign_in(page, workbench, NURSE)
    table = page.locator("#queue")
    for pa in (urgent, routed):
        assert table.locator(f'tr[data-request="{pa.id}"]').count() == 1
    assert table.locator(f'tr[data-request="{approved.id}"]').count() == 0  # decided: not open
    row = table.locator(f'tr[data-request="{urgent.id}"]')
    assert "Expedited" in row.inner_text()
    assert "On time" in row.inner_text()
    # the clock: red when overdue, amber within 12 h (expedited) or 24 h (standard)
    levels = {
        pa.id: table.locator(f'tr[data-request="{pa.id}"]').get_attribute("data-clock")
        for pa in (overdue, soon, standard_soon, urgent, routed)
    }
    assert levels == {
        overdue.id: "red",
        soon.id: "amber",
        standard_soon.id: "amber",
        urgent.id: "ok",
        routed.id: "ok",
    }
    assert "overdue" in table.locator(f'tr[data-request="{overdue.id}"]').inner_text()
    # soonest due first
    order = [table.locator("tbody tr").nth(i).get_attribute("data-request") for i in range(3)]
    assert order[:2] == [overdue.id, soon.id]
    screenshot(page, "queue", docs=True)

    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("^Pending physician review")).click()
    assert table.locator(f'tr[data-request="{routed.id}"]').count() == 1
    assert table.locator(f'tr[data-request="{urgent.id}"]').count() == 0
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("^Decided")).click()
    assert table.locator(f'tr[data-request="{approved.id}"]').count() == 1

    # search by member, then by request id
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("^All open")).click()
    page.get_by_label("Search by request id or member").fill("queue-victor")
    with page.expect_navigation():
        page.get_by_label("Search by request id or member").press("Enter")
    assert table.locator("tbody tr[data-request]").count() == 1
    assert table.locator(f'tr[data-request="{routed.id}"]').count() == 1
    page.get_by_label("Search by request id or member").fill(urgent.id)
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    assert table.locator("tbody tr[data-request]").count() == 1
    # the urgency filter applies as soon as it changes (a touch of JavaScript)
    page.get_by_label("Search by request id or member").fill("")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    with page.expect_navigation():
        page.get_by_label("Urgency").select_option("expedited")
    assert table.locator(f'tr[data-request="{urgent.id}"]').count() == 1
    assert table.locator(f'tr[data-request="{routed.id}"]').count() == 0


def test_answering_missing_facts_until_a_decision(workbench: Workbench, page: Any) -> None:
    pa = workbench.create("information_needed", urgency="expedited", member="Patient/answers-ann")
    _sign_in(page, workbench, NURSE)
    page.get_by_label("Search by request id or member").fill("answers-ann")
    with page.expect_navigation():
        page.get_by_label("Search by request id or member").press("Enter")
    with page.expect_navigation():
        page.get_by_role("link", name=pa.id).click()
    assert page.locator("#outcome").inner_text() == "Information needed"
    assert page.locator("#policy-version").inner_text() == "2009-10-06"
    # the facts, each with its source
    assert "EHR" in page.locator('tr[data-fact="diagnosis_codes"]').inner_text()
    assert "derived" in page.locator('tr[data-fact="tumor_site"]').inner_text()
    # the checklist: unknown criteria, each with the sentence of the policy
    margins = page.locator('li[data-criterion="positive-or-close-margins"]')
    assert margins.get_attribute("data-value") == "unknown"
    assert "positive or close margins" in margins.inner_text()
    assert "Colorectal cancer" in page.locator("#rationale-h").inner_text()
    screenshot(page, "request-information-needed", docs=True)

    # answer one question at a time; the policy is applied again after each
    page.get_by_label(re.compile("surgical margin status")).select_option("positive")
    # a light touch of JavaScript: what the policy would answer, before anything is recorded
    expect(page.locator("#preview")).to_contain_text("would be: Information needed")
    expect(page.locator("#preview")).to_contain_text("Still needed")
    with page.expect_navigation():
        page.get_by_role("button", name="Record answers and decide again").click()
    assert "answers are recorded" in page.locator(".flash").inner_text()
    assert (
        page.locator('li[data-criterion="positive-or-close-margins"]').get_attribute("data-value") == "true"
    )
    assert page.locator("#fact_margin_status").count() == 0
    assert page.locator("#outcome").inner_text() == "Information needed"
    page.get_by_label(re.compile("T category")).fill("pT4b")
    expect(page.locator("#preview")).to_contain_text("would be: Medically necessary")
    assert workbench.store.get_pa_request(pa.id).recommendation == "information_needed"  # not yet recorded
    with page.expect_navigation():
        page.get_by_role("button", name="Record answers and decide again").click()
    assert page.locator("#outcome").inner_text() == "Medically necessary"
    assert page.locator("#answers").count() == 0  # nothing left to ask
    assert "entered" in page.locator('tr[data-fact="t_stage"]').inner_text()
    approve = page.locator("#action-approve")
    assert "recommended" in approve.inner_text()
    screenshot(page, "request-criteria-met", docs=True)

    approve.get_by_role("checkbox", name=re.compile("I confirm")).check()
    with page.expect_navigation():
        approve.get_by_role("button", name="Approve").click()
    assert page.locator("#state").inner_text() == "Approved"
    assert workbench.store.get_pa_request(pa.id).state == "approved"
    with page.expect_navigation():
        page.get_by_role("link", name="Determination letter").click()
    assert page.locator("#letter").get_attribute("data-kind") == "approval"


def test_a_nurse_cannot_deny(workbench: Workbench, page: Any) -> None:
    pa = workbench.create("investigational", member="Patient/nurse-deny")
    _sign_in(page, workbench, NURSE)
    page.goto(f"{workbench.url}/requests/{pa.id}")
    assert page.locator("#outcome").inner_text() == "Investigational"
    assert page.locator("#action-deny").count() == 0
    assert "Only a physician reviewer may deny" in page.locator("#deny-note").inner_text()
    # a hand-made POST with the page's own CSRF token is refused by the server too
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    response = page.request.post(
        f"{workbench.url}/requests/{pa.id}/actions",
        form={"csrf_token": token, "action": "deny", "reason": "nurse tries", "confirm": "yes"},
    )
    assert response.status == 403
    assert workbench.store.get_pa_request(pa.id).state == "pending_physician_review"


def test_a_physician_denies_with_a_letter_and_the_audit_trail(
    workbench: Workbench, page: Any, tmp_path: Any
) -> None:
    pa = workbench.create("investigational", member="Patient/deny-dora")
    _sign_in(page, workbench, PHYSICIAN)
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("^Pending physician review")).click()
    with page.expect_navigation():
        page.get_by_role("link", name=pa.id).click()
    deny = page.locator("#action-deny")
    assert "policy\u2019s answer" in deny.inner_text()
    deny.get_by_label(re.compile("Specific reason")).fill(
        "IORT for breast cancer is investigational under this policy; only rectal cancer qualifies."
    )
    # without the confirmation the browser does not send the form
    deny.get_by_role("button", name="Deny").click()
    assert workbench.store.get_pa_request(pa.id).state == "pending_physician_review"
    deny.get_by_role("checkbox").check()
    with page.expect_navigation():
        deny.get_by_role("button", name="Deny").click()
    assert page.locator("#state").inner_text() == "Denied"
    assert "denied" in page.get_by_role("status").inner_text()

    # the audit trail: received, routed by the engine, denied by the physician
    rows = page.locator("#audit-table tbody tr")
    actions = [rows.nth(i).get_attribute("data-action") for i in range(rows.count())]
    assert actions == ["submit", "route_to_physician", "deny"]
    last = rows.nth(2).inner_text()
    assert PHYSICIAN[0] in last
    assert "physician reviewer" in last
    assert "only rectal cancer qualifies" in last
    screenshot(page, "request-denied-audit", docs=True)

    with page.expect_navigation():
        page.get_by_role("link", name="Determination letter").click()
    letter = page.locator("#letter")
    assert letter.get_attribute("data-basis") == "investigational"
    text = letter.inner_text()
    assert "denied: investigational" in text.lower()
    assert "only rectal cancer qualifies" in text
    assert "180 days" in text
    assert "Peer-to-peer" in text
    assert "External review" in text
    assert "not medically necessary" not in text.lower()
    screenshot(page, "letter-denial", docs=True)
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the letter (PDF)").click()
    download = info.value
    assert download.suggested_filename == f"{pa.id}-denial-letter.pdf"
    target = tmp_path / "letter.pdf"
    download.save_as(str(target))
    assert target.read_bytes().startswith(b"%PDF-")


def test_the_policy_browser(workbench: Workbench, page: Any) -> None:
    _sign_in(page, workbench, PHYSICIAN)
    with page.expect_navigation():
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Policies").click()
    with page.expect_navigation():
        page.get_by_role("link", name="Intraoperative Radiation Therapy (IORT)").click()
    timeline = page.locator("#timeline")
    for version in ("1988-10-01", "2002-09-01", "2004-09-01", "2009-10-06"):
        assert timeline.locator(f"#version-{version}").count() == 1
    assert "77425" in page.locator("#codes").inner_text()
    screenshot(page, "policy-browser", docs=True)
    # a highlighted sentence links to its criterion
    link = page.locator('mark.cite > a[href="#criterion-2009-10-06-rectal-margins-t4-or-recurrent"]')
    highlighted = re.sub(r"\[\d+\]", "", link.first.locator("xpath=..").inner_text())
    assert "Rectal cancer with positive or close margins with T4 lesions" in " ".join(highlighted.split())
    link.first.press("Enter")  # keyboard: the link takes focus and Enter follows it
    page.wait_for_url(re.compile(r".*#criterion-2009-10-06-rectal-margins-t4-or-recurrent$"))
