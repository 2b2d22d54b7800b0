"""An automatic approval never rests on a fact read from a document that no person confirmed, unless
the plan says so (Store(auto_approve_extracted=True)); the facts keep `source: extracted` in the
stored determination, with the extraction's evidence."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from medpolicy import PolicySet
from medpolicy.service.testing import MEDICALLY_NECESSARY
from medpolicy.store import Store

EXTRACTED = {"margin_status": "extracted", "t_stage": "extracted"}
EVIDENCE = {"source": "extracted", "evidence": {"t_stage": [{"start": 5, "end": 10, "text": "pT4b"}]}}


@pytest.fixture
def trusting_store(store_url: str, policies: PolicySet) -> Iterator[Store]:
    s = Store.open(store_url, policies=policies)
    s.auto_approve_extracted = True  # the plan's configuration (default: False)
    try:
        yield s
    finally:
        s.close()


def test_criteria_met_on_extracted_facts_waits_for_a_reviewer(store: Store) -> None:
    pa, _ = store.create_pa_request(
        MEDICALLY_NECESSARY, submitter="ehr", sources=EXTRACTED, extraction=EVIDENCE
    )
    assert pa.recommendation == "medically_necessary"
    assert pa.state == "received"  # not approved: nobody confirmed the extracted facts
    assert pa.determination is not None
    det = pa.determination.determination
    assert det["facts"]["t_stage"]["source"] == "extracted"
    assert det["extraction"]["evidence"]["t_stage"][0]["text"] == "pT4b"


def test_the_same_facts_given_by_a_person_are_approved(store: Store) -> None:
    pa, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr")
    assert pa.state == "approved"


def test_a_plan_may_allow_approval_on_extracted_facts(trusting_store: Store) -> None:
    pa, _ = trusting_store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr", sources=EXTRACTED)
    assert pa.state == "approved"


def test_facts_stay_extracted_until_a_person_gives_them(store: Store) -> None:
    pa, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr", sources=EXTRACTED)
    pa = store.apply_action(
        pa.id, "provide_information", "ehr", "submitter", case_update={"margin_status": "positive"}
    )
    assert pa.state == "received"  # t_stage is still only extracted
    assert pa.determination is not None
    assert pa.determination.determination["facts"]["t_stage"]["source"] == "extracted"
    assert pa.determination.determination["facts"]["margin_status"]["source"] == "given"
    pa = store.apply_action(pa.id, "approve", "nurse-1", "nurse", reason="report read; facts confirmed")
    assert pa.state == "approved"
