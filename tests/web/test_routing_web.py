"""The workbench works for the example policies with no code written for them: a request routed by its
line of business shows its policy and asks that policy's questions; the policy browser shows each."""

from __future__ import annotations

from .conftest import NURSE, Workbench

BREAST_MA = {
    "date_of_service": "2025-09-01",
    "procedure_codes": ["77425"],
    "diagnosis_codes": ["C50.411"],
    "line_of_business": "medicare_advantage",
}


def test_a_medicare_advantage_request_shows_its_policy_and_asks_its_questions(workbench: Workbench) -> None:
    pa, _ = workbench.store.create_pa_request(
        BREAST_MA, submitter="test-submitter", subject="Patient/member-9"
    )
    page = workbench.client(NURSE).get(f"/requests/{pa.id}").text
    assert "Intraoperative Radiation Therapy (IORT), Medicare Advantage (example)" in page
    assert "What is the largest size of the breast tumour (mm or cm)?" in page
    assert "Is the tumour estrogen-receptor (ER) positive or negative?" in page


def test_the_policy_browser_shows_the_example_policies(workbench: Workbench) -> None:
    client = workbench.client(NURSE)
    page = client.get("/policies/example-iort-commercial").text
    for version in ("2024-01-01", "2025-07-01"):
        assert f'id="version-{version}"' in page
    assert 'id="criterion-2025-07-01-dcis-margins"' in page
    page = client.get("/policies/example-iort-medicare-advantage").text
    assert 'id="criterion-2025-01-01-supporting-diagnosis"' in page
