"""Proposed facts beside the words they were read from: a reviewer accepts, changes or rejects each.

``GET /requests/{id}/documents/{doc}/facts`` extracts the document (its read is audited, as every
document view) and shows each proposed fact with its confidence and evidence, the document's text with
the evidence highlighted. ``POST`` the same path with ``fact`` and ``decision`` (``accept``, ``change``
with ``value``, ``reject``): accept and change give the fact to the case (source ``given``; the engine
decides again; an audited ``request_information`` event names the fact and the document), reject records
an ``extraction_rejected`` event. Administrators see the page but may not decide.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medpolicy.extract.model import FACT_NAMES
from medpolicy.extract.pipeline import extraction_record
from medpolicy.store import LifecycleError, NotFoundError, StoreError
from medpolicy.store.documents import Document
from medpolicy.store.lifecycle import Action
from medpolicy.web.users import User
from medpolicy.web.views import (
    _error,
    _open_for_action,
    _redirect,
    _signed_in,
    _store,
    _to_login,
    render,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

LABELS = {
    "tumor_site": "Tumour site",
    "t_stage": "T category",
    "margin_status": "Margin status",
    "margin_distance_mm": "Closest margin (mm)",
    "recurrent": "Locoregional recurrence",
    "metastatic": "Distant metastases",
}
DONE = {
    "accept": "The proposed fact was accepted and given to the case; the engine decided again.",
    "change": "The fact was changed and given to the case; the engine decided again.",
    "reject": "The proposed fact was rejected; the case is unchanged. The audit trail records it.",
}


def _document(request: Request, request_id: str, document_id: str, user: User) -> Document | None:
    try:
        doc = _store(request).get_document(document_id, actor=user.username, role=user.role.value)
    except NotFoundError:
        return None
    return doc if doc.request_id == request_id and doc.content is not None else None


def _segments(text: str, record: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """The text cut into (piece, the facts it is evidence of, anchor ids of the facts whose first
    evidence it is), for highlighting; a span overlapping an earlier one is left to the earlier."""
    by_span: dict[tuple[int, int], list[str]] = {}
    for fact, evs in record.get("evidence", {}).items():
        for e in evs:
            by_span.setdefault((e["start"], e["end"]), []).append(fact)
    out: list[tuple[str, list[str], list[str]]] = []
    anchored: set[str] = set()
    pos = 0
    for (start, end), facts in sorted(by_span.items()):
        if start < pos:
            continue
        out.append((text[pos:start], [], []))
        out.append((text[start:end], facts, [f"ev-{f}" for f in facts if f not in anchored]))
        anchored.update(facts)
        pos = end
    out.append((text[pos:], [], []))
    return out


def _show(value: Any) -> str:
    if value is None:
        return "not stated"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def parse_value(fact: str, raw: str) -> Any:
    """A reviewer's typed value as the case takes it (the engine checks it)."""
    raw = raw.strip()
    if fact in ("recurrent", "metastatic"):
        return raw.lower() in ("yes", "true", "1")
    if fact == "margin_distance_mm":
        try:
            number = float(raw)
        except ValueError:
            return raw
        return int(number) if number.is_integer() else number
    if fact == "t_stage":
        return [p for p in raw.replace(";", ",").replace(" ", ",").split(",") if p]
    return raw


def _page(
    request: Request, auth: tuple[User, str], request_id: str, document_id: str, **extra: Any
) -> Response:
    user, csrf = auth
    doc = _document(request, request_id, document_id, user)
    if doc is None:
        return _error(
            request, 404, "No such document", f"Request {request_id} has no document {document_id}.", auth
        )
    assert doc.content is not None
    record = extraction_record(doc.content, name=doc.title, content_type=doc.media_type)
    text = doc.text()
    rows = (
        [
            {
                "name": name,
                "label": LABELS[name],
                "value": _show(record["facts"][name]),
                "stated": record["facts"][name] is not None,
                "confidence": record["confidence"].get(name),
                "evidence": record["evidence"].get(name, []),
            }
            for name in FACT_NAMES
        ]
        if "facts" in record
        else []
    )
    return render(
        request,
        "extraction_review.html",
        extra.pop("status", 200),
        user=user,
        csrf=csrf,
        doc=doc,
        record=record,
        rows=rows,
        segments=_segments(text, record) if text is not None and "facts" in record else None,
        labels=LABELS,
        **extra,
    )


@router.get("/requests/{request_id}/documents/{document_id}/facts")
def proposed_facts(request: Request, request_id: str, document_id: str, done: str = "") -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    return _page(request, auth, request_id, document_id, done=DONE.get(done), problem=None)


@router.post("/requests/{request_id}/documents/{document_id}/facts")
async def review_fact(request: Request, request_id: str, document_id: str) -> Response:
    opened = await _open_for_action(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa = opened
    user = auth[0]
    role = user.lifecycle_role
    fact = form.get("fact") or ""
    decision = form.get("decision") or ""

    def problem(status: int, message: str) -> Response:
        return _page(request, auth, pa.id, document_id, status=status, done=None, problem=message)

    if role is None:
        return problem(403, "An administrator cannot change a request.")
    if fact not in FACT_NAMES or decision not in DONE:
        return problem(422, "Choose a proposed fact and accept, change or reject it.")
    doc = await run_in_threadpool(_document, request, pa.id, document_id, user)
    if doc is None:
        return _error(
            request, 404, "No such document", f"Request {pa.id} has no document {document_id}.", auth
        )
    assert doc.content is not None
    record = await run_in_threadpool(
        extraction_record, doc.content, name=doc.title, content_type=doc.media_type
    )
    proposed = record.get("facts", {}).get(fact)
    store = _store(request)
    from medpolicy import CaseError

    try:
        if decision == "reject":
            from medpolicy.store.extraction_review import record_rejection

            await run_in_threadpool(
                lambda: record_rejection(
                    store,
                    pa.id,
                    fact=fact,
                    proposed=proposed,
                    document_id=doc.id,
                    actor=user.username,
                    role=role.value,
                )
            )
        else:
            value = proposed if decision == "accept" else parse_value(fact, form.get("value") or "")
            if value is None or value == "" or value == []:
                return problem(422, "There is no value to give: the document does not state this fact.")
            verb = "accepted" if decision == "accept" else f"changed (proposed {_show(proposed)})"
            reason = f"{verb} the extracted {fact}: {_show(value)}, from document {doc.id}"
            await run_in_threadpool(
                store.apply_action,
                pa.id,
                Action.REQUEST_INFORMATION,
                user.username,
                role,
                reason,
                {fact: value},
            )
    except CaseError as exc:
        return problem(422, "; ".join(e.message for e in exc.errors))
    except (LifecycleError, StoreError) as exc:
        return problem(int(getattr(exc, "status", 409)), str(getattr(exc, "message", exc)))
    return _redirect(f"/requests/{quote(pa.id)}/documents/{quote(doc.id)}/facts?done={decision}")
