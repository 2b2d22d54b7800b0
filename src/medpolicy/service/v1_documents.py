"""`/v1` clinical documents of a prior-authorization request.

    POST /v1/prior-auth/{id}/documents?title=...   the document's bytes as the body (201)
    GET  /v1/prior-auth/{id}/documents             the request's documents (metadata, no content)

The body is the document itself (PDF or UTF-8 text); its type is sniffed from the bytes, whatever
the Content-Type says. The submitter of the request, or a reviewer client, may attach documents.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from medpolicy.service.errors import ApiError
from medpolicy.service.v1 import ClientDep, JSONResponse, StoreDep, _errors, _load_request, _store_error
from medpolicy.store import StoreError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["v1"])


@router.post(
    "/prior-auth/{request_id}/documents",
    status_code=201,
    responses=_errors(404, 413, 415),
    summary="Attach a clinical document (PDF or text) to a prior-authorization request",
)
async def add_document(
    request_id: str,
    request: Request,
    store: StoreDep,
    client: ClientDep,
    title: Annotated[str, Query(min_length=1, max_length=200, description="e.g. Pathology report")],
    filename: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    pa = await run_in_threadpool(_load_request, store, client, request_id)
    data = await request.body()
    role = "submitter" if client.client_id == pa.submitter else "nurse"
    try:
        doc = await run_in_threadpool(
            lambda: store.add_document(
                pa.id, data, title=title, filename=filename, added_by=client.client_id, source="v1", role=role
            )
        )
    except StoreError as exc:
        raise ApiError(exc.status, exc.code, exc.message, field="body") from None
    return JSONResponse(
        doc.to_dict(), status_code=201, headers={"Location": f"/v1/prior-auth/{pa.id}/documents"}
    )


@router.get(
    "/prior-auth/{request_id}/documents",
    responses=_errors(404),
    summary="The clinical documents of a prior-authorization request (metadata)",
)
def list_documents(request_id: str, store: StoreDep, client: ClientDep) -> JSONResponse:
    _load_request(store, client, request_id, read="api documents")
    try:
        docs = store.list_documents(request_id)
    except StoreError as exc:
        raise _store_error(exc) from None
    return JSONResponse({"items": [d.to_dict() for d in docs]})
