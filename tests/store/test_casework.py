"""Casework in the store (SQLite and PostgreSQL): members and providers, assignment, notes, clinical
documents (sniffed, limited, append-only, every view audited), citations, peer-to-peer, structured
denials, the state following the determination, and closing a request no policy governs."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import sqlalchemy as sa

from medpolicy.parties import Member, Parties, Provider, npi_with_check_digit
from medpolicy.store import ActionNotPermittedError, InvalidActionError, InvalidTransitionError, Store
from medpolicy.store.casework import DocumentError, sniff_media_type

NEEDS_INFO: dict[str, Any] = {
    "date_of_service": "2026-12-15",
    "procedure_codes": ["77425"],
    "diagnosis_codes": ["C20"],
}
NOT_GOVERNED: dict[str, Any] = {
    "date_of_service": "2026-12-15",
    "procedure_codes": ["99213"],
    "diagnosis_codes": ["C20"],
}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _actions(store: Store, request_id: str) -> list[str]:
    return [e.action for e in store.list_audit(request_id)]


def test_parties_are_kept_and_searchable(store: Store) -> None:
    pa, _ = store.create_pa_request(NEEDS_INFO, submitter="ehr", subject="Jane Doe (M-2002)")
    parties = Parties(
        Member("M-2002", "Jane Doe", "1961-04-12", "PPO", "G-1"),
        Provider("Alicia Moreno, MD", npi_with_check_digit("199999001"), "Riverside", None, "43-1000001"),
        None,
    )
    store.set_parties(pa.id, parties)
    assert store.get_casework(pa.id).parties == parties
    assert [p.id for p in store.list_pa_requests(search="m-2002")] == [pa.id]
    assert [p.id for p in store.list_pa_requests(search="doe")] == [pa.id]


def test_documents_are_sniffed_limited_append_only_and_every_view_is_audited(store: Store) -> None:
    pa, _ = store.create_pa_request(NEEDS_INFO, submitter="ehr")
    text = b"Margins: negative (R0).\n"
    doc = store.add_document(pa.id, text, title="Pathology", added_by="ehr", source="v1", filename="../x.exe")
    assert (doc.media_type, doc.size, doc.sha256) == (
        "text/plain",
        len(text),
        hashlib.sha256(text).hexdigest(),
    )
    assert doc.filename == "x.exe"  # a name only, never a path; the type came from the bytes
    pdf = store.add_document(pa.id, PDF, title="Operative note", added_by="ehr", source="pas")
    assert pdf.media_type == "application/pdf"
    assert [d.title for d in store.list_documents(pa.id)] == ["Pathology", "Operative note"]
    assert store.list_documents(pa.id)[0].content is None  # the list carries no content
    read = store.get_document(doc.id, actor="nurse.nora", role="nurse")
    assert read.text() == "Margins: negative (R0).\n"
    assert _actions(store, pa.id).count("document_viewed") == 1
    with pytest.raises(DocumentError) as refused:
        store.add_document(pa.id, b"MZ\x90\x00\x03", title="setup.exe", added_by="ehr", source="v1")
    assert (refused.value.code, refused.value.status) == ("unsupported_document_type", 415)
    with pytest.raises(DocumentError) as empty:
        store.add_document(pa.id, b"", title="empty", added_by="ehr", source="v1")
    assert empty.value.code == "document_empty"
    with pytest.raises(sa.exc.DBAPIError), store.engine.begin() as conn:  # evidence is append-only
        conn.execute(sa.text("UPDATE pa_documents SET title = 'changed'"))


def test_sniffing_reads_bytes_not_names() -> None:
    assert sniff_media_type(b"%PDF-1.7 ...") == "application/pdf"
    assert sniff_media_type("Résumé of findings\n".encode()) == "text/plain"
    assert sniff_media_type(b"\x89PNG\r\n\x1a\n\x00") is None
    assert sniff_media_type(b"\xff\xfe\x00t") is None
    assert sniff_media_type(b"text with a bell \x07") is None


def test_a_cited_answer_says_where_it_was_read_and_the_state_follows(store: Store) -> None:
    pa, _ = store.create_pa_request(NEEDS_INFO, submitter="ehr")
    assert pa.state == "information_needed"
    doc = store.add_document(pa.id, b"Margins negative, R0.", title="Pathology", added_by="ehr", source="pas")
    after = store.apply_action(
        pa.id, "request_information", "nurse.nora", "nurse", "answers", {"margin_status": "negative"}
    )
    assert after.recommendation == "investigational"
    assert after.state == "pending_physician_review"  # not "information needed" any more
    store.cite_document(
        pa.id,
        ["margin_status"],
        doc.id,
        page="1",
        quote="Margins negative, R0.",
        actor="nurse.nora",
        role="nurse",
    )
    cite = store.get_casework(pa.id).citations["margin_status"]
    assert cite.words() == "“Pathology”, page 1: “Margins negative, R0.”"
    assert _actions(store, pa.id)[-2:] == ["route_to_physician", "fact_cited"]
    with pytest.raises(InvalidActionError):
        store.cite_document(pa.id, ["t_stage"], "doc_nope", page=None, quote=None, actor="n", role="nurse")


def test_answers_that_meet_the_criteria_make_it_ready_to_approve(store: Store) -> None:
    pa, _ = store.create_pa_request(NEEDS_INFO, submitter="ehr")
    after = store.apply_action(
        pa.id,
        "request_information",
        "nurse.nora",
        "nurse",
        None,
        {"margin_status": "positive", "t_stage": "pT4b"},
    )
    assert (after.recommendation, after.state) == ("medically_necessary", "ready_to_approve")
    assert store.apply_action(pa.id, "approve", "nurse.nora", "nurse").state == "approved"


def test_assignment_and_notes(store: Store) -> None:
    pa, _ = store.create_pa_request(NEEDS_INFO, submitter="ehr")
    store.assign(pa.id, "nurse.nora", actor="nurse.nora", role="nurse")
    assert store.get_casework(pa.id).assignee == "nurse.nora"
    store.assign(pa.id, "dr.paul", actor="nurse.nora", role="nurse")
    assert store.get_casework(pa.id).assignee == "dr.paul"
    with pytest.raises(ActionNotPermittedError):
        store.assign(pa.id, "x", actor="ehr", role="submitter")
    store.add_note(
        pa.id, "Please look at the margins.", author="nurse.nora", role="nurse", for_physician=True
    )
    store.add_note(pa.id, "Called the office.", author="nurse.nora", role="nurse")
    notes = store.list_notes(pa.id)
    assert [(n.text, n.for_physician) for n in notes] == [
        ("Please look at the margins.", True),
        ("Called the office.", False),
    ]
    with pytest.raises(InvalidActionError):
        store.add_note(pa.id, "   ", author="nurse.nora", role="nurse")


def test_peer_to_peer_then_structured_denial(store: Store) -> None:
    pa, _ = store.create_pa_request({**NEEDS_INFO, "margin_status": "negative"}, submitter="ehr")
    assert pa.state == "pending_physician_review"
    with pytest.raises(ActionNotPermittedError):
        store.peer_to_peer(pa.id, "offer", actor="nurse.nora", role="nurse")
    store.peer_to_peer(pa.id, "offer", actor="dr.paul", role="physician")
    with pytest.raises(InvalidActionError):
        store.peer_to_peer(pa.id, "schedule", actor="dr.paul", role="physician", when="tomorrow", contact="x")
    store.peer_to_peer(
        pa.id, "schedule", actor="dr.paul", role="physician", when="2026-12-01T14:30", contact="Dr. Moreno"
    )
    store.peer_to_peer(pa.id, "record", actor="dr.paul", role="physician", outcome="upheld", note="no change")
    p2p = store.get_casework(pa.id).peer_to_peer
    assert (p2p["status"], p2p["outcome"], p2p["contact"]) == ("held", "upheld", "Dr. Moreno")
    denied = store.deny_with_code(
        pa.id,
        code="investigational",
        label="The service is investigational for this condition",
        words="R0 margins.",
        actor="dr.paul",
        role="physician",
    )
    assert denied.state == "denied"
    assert denied.decision_reason == "The service is investigational for this condition. R0 margins."
    assert store.get_casework(pa.id).denial_code == "investigational"
    assert _actions(store, pa.id)[-4:] == [
        "peer_to_peer_offered",
        "peer_to_peer_scheduled",
        "peer_to_peer_held",
        "deny",
    ]


def test_an_overturned_peer_to_peer_approves(store: Store) -> None:
    pa, _ = store.create_pa_request({**NEEDS_INFO, "margin_status": "negative"}, submitter="ehr")
    store.peer_to_peer(pa.id, "offer", actor="dr.paul", role="physician")
    after = store.peer_to_peer(pa.id, "record", actor="dr.paul", role="physician", outcome="overturned")
    assert after.state == "approved"
    assert "peer-to-peer" in (after.decision_reason or "")


def test_a_request_no_policy_governs_is_closed_without_a_decision(store: Store) -> None:
    pa, _ = store.create_pa_request(NOT_GOVERNED, submitter="ehr")
    assert (pa.recommendation, pa.state) == ("not_applicable", "received")
    closed = store.apply_action(pa.id, "close_not_governed", "nurse.nora", "nurse")
    assert closed.state == "closed_not_governed"
    assert closed.is_final
    other, _ = store.create_pa_request({**NEEDS_INFO, "margin_status": "negative"}, submitter="ehr")
    with pytest.raises(InvalidTransitionError):
        store.apply_action(other.id, "close_not_governed", "nurse.nora", "nurse")
