"""Clinical documents in the workbench: attach (upload), read, download.

A document is never rendered as the browser would render it: a text document is shown escaped in a
``<pre>`` on a workbench page, and every download is ``Content-Disposition: attachment`` with
``X-Content-Type-Options: nosniff`` and the type sniffed when it was stored. Every read (page or
download) is an audit event (`Store.get_document`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from medpolicy.store import NotFoundError, StoreError
from medpolicy.store.casework import DOCUMENT_MAX_BYTES, Document
from medpolicy.web.request_pages import _request_problem
from medpolicy.web.users import User, csrf_matches
from medpolicy.web.views import (
    _csrf_refused,
    _error,
    _load,
    _redirect,
    _signed_in,
    _store,
    _to_login,
    render,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _open(request: Request, request_id: str, document_id: str, user: User) -> Document | None:
    try:
        doc = _store(request).get_document(document_id, actor=user.username, role=user.role.value)
    except NotFoundError:
        return None
    return doc if doc.request_id == request_id else None


@router.get("/requests/{request_id}/documents/{document_id}")
def document_page(request: Request, request_id: str, document_id: str) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    doc = _open(request, request_id, document_id, auth[0])
    if doc is None:
        return _error(
            request, 404, "No such document", f"Request {request_id} has no document {document_id}.", auth
        )
    return render(request, "document.html", user=auth[0], csrf=auth[1], doc=doc, text=doc.text())


@router.get("/requests/{request_id}/documents/{document_id}/download")
def document_download(request: Request, request_id: str, document_id: str) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    doc = _open(request, request_id, document_id, auth[0])
    if doc is None or doc.content is None:
        return _error(
            request, 404, "No such document", f"Request {request_id} has no document {document_id}.", auth
        )
    ext = ".pdf" if doc.media_type == "application/pdf" else ".txt"
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in doc.title)[:60] or "document"
    return Response(
        doc.content,
        media_type=doc.media_type + ("; charset=utf-8" if doc.media_type == "text/plain" else ""),
        headers={
            "Content-Disposition": f'attachment; filename="{name}{ext}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-store",
        },
    )


@router.post("/requests/{request_id}/documents")
async def upload(request: Request, request_id: str) -> Response:
    async with request.form() as form:
        return await _upload(request, request_id, form)


async def _upload(request: Request, request_id: str, form: Any) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    token = form.get("csrf_token")
    if not csrf_matches(auth[1], token if isinstance(token, str) else None):
        return _csrf_refused(request, auth)
    pa = await run_in_threadpool(_load, request, request_id)
    if pa is None:
        return _error(request, 404, "No such request", f"There is no request {request_id}.", auth)
    user = auth[0]
    if user.lifecycle_role is None:
        return _request_problem(request, auth, pa, 403, "An administrator cannot attach documents.")
    file = form.get("file")
    if not isinstance(file, UploadFile):
        return _request_problem(request, auth, pa, 422, "Choose a file to attach.")
    data = await file.read(DOCUMENT_MAX_BYTES + 1)
    title = form.get("title")
    title = title if isinstance(title, str) and title.strip() else (file.filename or "Document")
    try:
        await run_in_threadpool(
            lambda: _store(request).add_document(
                pa.id,
                data,
                title=title,
                filename=file.filename,
                added_by=user.username,
                source="workbench",
                role=user.role.value,
            )
        )
    except StoreError as exc:
        message = exc.message[:1].upper() + exc.message[1:] + "."
        return _request_problem(request, auth, pa, exc.status, f"The file was not attached. {message}")
    return _redirect(f"/requests/{quote(pa.id)}?done=document#documents")
