"""One request as a utilization-management department works it, in a real browser (Playwright and
headless Chromium): the EHR's PAS submission with the member, the providers and a pathology report;
a nurse takes it, reads the report, answers what the policy needs citing the report, and leaves a
note for the physician; the physician offers, schedules and holds a peer-to-peer discussion and
denies with a structured reason; the letter (HTML and PDF) says everything a regulator asks; the
metrics page counts the decision. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from medpolicy.service import testing as service_testing

from .conftest import NURSE, PHYSICIAN, Workbench, screenshot

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SUBMISSION = ROOT / "docs" / "examples" / "pas-submit-iort.json"


def _sign_in(page: Any, wb: Workbench, who: tuple[str, str]) -> None:
    page.goto(wb.url + "/login")
    page.get_by_label("Username").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(\?.*)?$"))


def _submit(wb: Workbench) -> str:
    bundle = json.loads(SUBMISSION.read_text(encoding="utf-8"))
    answer = httpx.post(
        wb.url + "/fhir/Claim/$submit",
        json=bundle,
        headers={"Authorization": f"Bearer {service_testing.SUBMITTER_TOKEN}"},
    )
    assert answer.status_code == 200, answer.text
    pa_id: str = answer.json()["entry"][0]["resource"]["id"].replace("-", "_")
    return pa_id


def _sign_out(page: Any) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()


@pytest.fixture
def plan_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo plan's configuration, with this test's physician's credentials and specialty."""
    from medpolicy.web.plan import DEFAULT_PLAN_DIR

    folder = tmp_path / "plan"
    folder.mkdir()
    text = (DEFAULT_PLAN_DIR / "plan.toml").read_text(encoding="utf-8")
    text += '\n[reviewers."dr.paul"]\ncredentials = "MD"\nspecialty = "Radiation oncology, board certified"\n'
    (folder / "plan.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("MEDPOLICY_PLAN_DIR", str(folder))
    return folder


def test_a_request_from_pas_submission_to_letter_and_metrics(
    workbench: Workbench, page: Any, tmp_path: Path, plan_folder: Path
) -> None:
    pa_id = _submit(workbench)
    pa = workbench.store.get_pa_request(pa_id)
    assert pa.state == "information_needed"

    # -- the nurse: finds the request by member id and provider, takes it -------------------------
    _sign_in(page, workbench, NURSE)
    page.get_by_label("Search by request id or member").fill("M-2002")
    page.get_by_label("Provider (name or NPI)").fill("Moreno")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    row = page.locator(f'#queue tr[data-request="{pa_id}"]')
    assert "Jane Doe (M-2002)" in row.inner_text()
    assert "Alicia Moreno" in row.inner_text()
    assert "NPI 1999990017" in row.inner_text()
    screenshot(page, "day-queue-member-provider", docs=True)
    with page.expect_navigation():
        row.get_by_role("link", name=pa_id).click()
    member = page.locator("#member").inner_text()
    for words in ("Jane Doe", "M-2002", "1961-04-12", "Heartland Demo PPO", "Example Manufacturing"):
        assert words in member
    requesting = page.locator("#requesting-provider").inner_text()
    for words in ("Alicia Moreno", "1999990017", "Riverside Cancer Center"):
        assert words in requesting
    assert "Dana Whitfield" in page.locator("#servicing-provider").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Take this request").click()
    assert "Nora Nurse" in page.locator("#assignee").inner_text()
    with page.expect_navigation():
        page.get_by_role("navigation", name="Main").get_by_role("link", name="My work").click()
    assert page.locator(f'#queue tr[data-request="{pa_id}"]').count() == 1

    # -- reads the pathology report (shown as text, escaped) ---------------------------------------
    with page.expect_navigation():
        page.locator(f'#queue tr[data-request="{pa_id}"]').get_by_role("link", name=pa_id).click()
    documents = page.locator("#documents")
    assert "Surgical pathology report" in documents.inner_text()
    with page.expect_navigation():
        documents.get_by_role("link", name="Surgical pathology report").click()
    report = page.locator("#document-text").inner_text()
    assert "all margins negative; closest (radial) margin 12 mm (R0)" in report
    screenshot(page, "day-pathology-report", docs=True)
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("Back to request")).click()

    # -- answers the policy's question, citing the report --------------------------------------------
    page.get_by_label(re.compile("margin status", re.I)).select_option("negative")
    page.get_by_label("Source document").select_option(label="Surgical pathology report")
    page.get_by_label("Page in the document").fill("1")
    page.get_by_label("Quoted text from the document").fill(
        "all margins negative; closest (radial) margin 12 mm (R0)"
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Record answers and decide again").click()
    # the state follows the determination: investigational, so routed to a physician
    assert page.locator("#state").inner_text() == "Pending physician review"
    source = page.locator('#facts tr[data-fact="margin_status"]').inner_text()
    assert "entered by nurse.nora" in source
    for words in ("Surgical pathology report", "page 1", "12 mm (R0)"):
        assert words in source
    page.get_by_label("Your note").fill(
        "Margins R0 per the pathology report; the policy calls this investigational."
    )
    page.get_by_label(re.compile("A note to the physician")).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Add the note").click()
    screenshot(page, "day-nurse-cited-and-routed", docs=True)
    _sign_out(page)

    # -- the physician: reads the nurse's note at the top, holds a peer-to-peer, denies ---------------
    _sign_in(page, workbench, PHYSICIAN)
    page.goto(f"{workbench.url}/requests/{pa_id}")
    assert "Margins R0 per the pathology report" in page.locator("#note-to-physician").inner_text()
    p2p = page.locator("#p2p")
    with page.expect_navigation():
        p2p.get_by_role("button", name="Offer a peer-to-peer discussion").click()
    page.get_by_label("Date and time").fill("2026-12-01T14:30")
    page.get_by_label(re.compile("Contact")).fill("Dr. Alicia Moreno, 816-555-0199")
    with page.expect_navigation():
        page.get_by_role("button", name="Schedule").click()
    assert "Dr. Alicia Moreno, 816-555-0199" in page.locator("#p2p-status").inner_text()
    page.get_by_label(re.compile("Upheld")).check()
    page.get_by_label("What was discussed").fill("Discussed the R0 margins; no new information.")
    with page.expect_navigation():
        page.get_by_role("button", name="Record the outcome").click()
    assert "Decision upheld" in page.locator("#p2p-status").inner_text()
    deny = page.locator("#action-deny")
    deny.get_by_label("Reason for the denial, from the policy").select_option(
        "criterion_not_met:positive-or-close-margins"
    )
    deny.get_by_label(re.compile("Specific reason")).fill(
        "The pathology report shows negative margins (R0, 12 mm); IORT is investigational here."
    )
    deny.get_by_role("checkbox").check()
    with page.expect_navigation():
        deny.get_by_role("button", name="Deny").click()
    assert page.locator("#state").inner_text() == "Denied"
    decided = page.locator("#decided").inner_text()
    assert "On time" in decided
    screenshot(page, "day-denied-with-peer-to-peer", docs=True)
    actions = page.locator("#audit-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.action)")
    for expected in (
        "document_added",
        "assign",
        "document_viewed",
        "fact_cited",
        "note",
        "peer_to_peer_offered",
        "peer_to_peer_scheduled",
        "peer_to_peer_held",
        "deny",
    ):
        assert expected in actions, expected

    # -- the letter, HTML and PDF ---------------------------------------------------------------------
    with page.expect_navigation():
        page.get_by_role("link", name="Determination letter").click()
    html = " ".join(page.locator("#letter").inner_text().split())
    expected = [
        "Heartland Demo Health Plan",
        "100 Example Parkway",
        "member id M-2002",
        "date of birth 1961-04-12",
        "plan Heartland Demo PPO (PPO-100)",
        "NPI 1999990017",
        "Dr. Paul Physician, MD (Radiation oncology, board certified)",
        "Reference: " + pa_id,
        "The policy's criterion is not met: Margins are positive or close",
        "negative margins (R0, 12 mm)",
        "Reason code criterion_not_met:positive-or-close-margins",
        "fax 1-800-555-0102",  # appeals
        "phone 1-800-555-0103",  # peer-to-peer
        "the decision was upheld",
        "Non-discrimination notice",
        "ATENCIÓN",
        "Sincerely,",
    ]
    for words in expected:
        assert words in html, words
    screenshot(page, "day-letter-denial", docs=True)
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the letter (PDF)").click()
    target = tmp_path / "letter.pdf"
    info.value.save_as(str(target))
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(target.read_bytes()))
    pdf = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    for words in expected:
        assert words in pdf, words
    assert f"Page 1 of {len(reader.pages)}" in pdf

    # -- the PAS inquiry carries the structured reason -------------------------------------------------
    inquiry = json.loads((ROOT / "docs" / "examples" / "pas-inquire-iort.json").read_text(encoding="utf-8"))
    answer = httpx.post(
        workbench.url + "/fhir/Claim/$inquire",
        json=inquiry,
        headers={"Authorization": f"Bearer {service_testing.SUBMITTER_TOKEN}"},
    )
    review = answer.json()["entry"][0]["resource"]["item"][0]["adjudication"][0]["extension"][0]["extension"]
    codes = {e["url"]: e for e in review}
    assert (
        codes[next(u for u in codes if u.endswith("reviewActionCode"))]["valueCodeableConcept"]["coding"][0][
            "code"
        ]
        == "A3"
    )
    assert codes["reasonCode"]["valueCodeableConcept"]["coding"][0]["code"] == (
        "criterion_not_met:positive-or-close-margins"
    )

    # -- the metrics page counts it ----------------------------------------------------------------------
    with page.expect_navigation():
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    denied = page.locator('#metrics tr[data-metric="denied"]').inner_text()
    assert re.search(r"Denied\s+[1-9]", denied)
    assert "-" not in page.locator('#decision-times tr[data-urgency="standard"]').inner_text().split()[2]
    screenshot(page, "day-reports", docs=True)
