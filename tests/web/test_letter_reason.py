"""Letters give the patient's reason: the deciding facts with their values and sources, the thresholds
applied, the policy's own conclusion, the exclusion the policy states outright, and the notes that bear
on the member's rights (HTML through the letter's partial, and the PDF)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from medpolicy import load_policies
from medpolicy.store import Store
from medpolicy.web.letter_explanation import explanation_flowables, explanation_parts
from medpolicy.web.letters import build_letter, letter_pdf
from medpolicy.web.views import _env

RECTAL = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path_factory.mktemp('letters') / 'l.db'}", policies=load_policies())
    yield s
    s.close()


@pytest.fixture(scope="module")
def iort() -> Any:
    return load_policies().get("bluekc-iort")


def _denied(store: Store, case: dict[str, Any]) -> Any:
    pa, _ = store.create_pa_request(case, submitter="ehr-1", subject="Patient/9")
    return store.apply_action(pa.id, "deny", "dr.paul", "physician", reason="see the letter")


def test_a_margin_denial_states_the_distance_and_the_threshold(store: Store, iort: Any) -> None:
    pa = _denied(store, {**RECTAL, "margin_distance_mm": 2.5, "t_stage": "pT4a"})
    letter = build_letter(pa, store.list_audit(pa.id), iort)
    text = letter.text()
    assert "Margin distance: 2.5 mm (as given in the request)" in text
    assert "Margin status: negative (worked out from the margin distance)" in text
    assert "Close margin max mm: 2." in text  # the "close" cut-off, disclosed
    assert "Positive margin max mm: 1." in text
    html = _env.get_template("_letter_explanation.html").render(letter=letter)
    assert "The thresholds applied" in html
    assert "Margin distance: 2.5 mm" in html


def test_an_investigational_denial_gives_the_sites_section_and_the_policys_conclusion(
    store: Store, iort: Any
) -> None:
    pa = _denied(store, {**RECTAL, "diagnosis_codes": ["C25.0"]})
    text = build_letter(pa, store.list_audit(pa.id), iort).text()
    assert "\u201cPancreatic cancer\u201d" in text
    assert (
        "All other uses are considered investigational given the limited evidence, especially the lack "
        "of comparative data, regarding the impact on net health outcome." in text
    )


def test_the_2002_palliative_denial_is_an_exclusion_the_policy_states(store: Store, iort: Any) -> None:
    pa = _denied(
        store,
        {"date_of_service": "2003-05-01", "procedure_codes": ["77469"], "treatment_intent": "palliative"},
    )
    text = build_letter(pa, store.list_audit(pa.id), iort).text()
    assert "an exclusion the policy states outright" in text
    assert "considered not medically necessary as palliative treatment" in text
    assert "do not show that the policy's criteria" not in text


def test_notes_on_the_policys_own_wording_reach_the_letter(store: Store, iort: Any) -> None:
    pa = _denied(store, {**RECTAL, "margin_status": "positive", "t_stage": "pT3", "recurrent": False})
    text = build_letter(pa, store.list_audit(pa.id), iort).text()
    assert "About the policy's text" in text
    assert "very close or positive margins after resection" in text
    pa = _denied(store, {**RECTAL, "diagnosis_codes": ["C48.0"]})
    text = build_letter(pa, store.list_audit(pa.id), iort).text()
    assert "contradicts itself on sarcoma" in text


def test_the_pdf_carries_the_reason(store: Store, iort: Any) -> None:
    pa = _denied(store, {**RECTAL, "margin_distance_mm": 2.5, "t_stage": "pT4a"})
    letter = build_letter(pa, store.list_audit(pa.id), iort)
    from reportlab.lib.styles import getSampleStyleSheet

    shown = [getattr(f, "text", "") for f in explanation_flowables(letter.explanation, getSampleStyleSheet())]
    assert "The facts this decision rests on" in shown
    assert letter_pdf(letter).startswith(b"%PDF-")


def test_a_determination_stored_without_an_explanation_gives_no_reason_parts() -> None:
    assert explanation_parts({"outcome": "investigational"}) == ()


def test_the_reviewer_sees_a_decisive_conflict_and_the_review_flag(iort: Any) -> None:
    from medpolicy import decide

    det = decide(
        {**RECTAL, "margin_status": "close", "margin_distance_mm": 10, "t_stage": "pT4b"}, iort
    ).to_dict()
    html = _env.get_template("_determination_flags.html").render(det=det, policy=iort)
    assert "rests on conflicting facts" in html
    assert "margin_distance_mm 10 classifies as" in html
    assert "past its review date (2015-10-01)" in html
    calm = decide(
        {**RECTAL, "date_of_service": "2012-06-01", "margin_status": "close", "t_stage": "pT4b"}, iort
    )
    assert (
        _env.get_template("_determination_flags.html").render(det=calm.to_dict(), policy=iort).strip() == ""
    )
