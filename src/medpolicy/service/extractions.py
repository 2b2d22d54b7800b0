"""``POST /v1/extractions``: a document in, the facts it states out (the JSON of ``medpolicy extract``).

The body is the document itself (``Content-Type: text/plain`` or ``application/pdf``; any other type is
read by its bytes), or JSON ``{"text": "..."}`` / ``{"data": "<base64>", "contentType": "...",
"name": "..."}``. The size limit is the service's body limit (413 ``payload_too_large``) and
:data:`~medpolicy.extract.documents.MAX_DOCUMENT_BYTES`. A document with no readable text (empty,
binary, a PDF without a text layer) is 422 with the document problem's code. Authenticated like the
rest of /v1. Nothing of the document is logged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from medpolicy.extract.pipeline import extraction_record
from medpolicy.service.auth import Client
from medpolicy.service.deps import client_dep
from medpolicy.service.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["extraction"])


def _document(raw: bytes, content_type: str) -> tuple[bytes, str | None, str | None]:
    """(document bytes, its content type, its name) from the request body."""
    if not content_type.startswith("application/json"):
        return raw, content_type or None, None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_type", "a JSON body is an object with text or data", field="body")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise ApiError(422, "invalid_type", "name is a string", field="name", value=name)
    if "text" in body:
        if not isinstance(body["text"], str):
            raise ApiError(422, "invalid_type", "text is a string", field="text")
        return body["text"].encode("utf-8"), "text/plain", name
    data = body.get("data")
    if not isinstance(data, str):
        raise ApiError(422, "missing_field", "give the document as text or as base64 data", field="data")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_base64", "data is not valid base64", field="data") from None
    ctype = body.get("contentType")
    return decoded, ctype if isinstance(ctype, str) else None, name


@router.post(
    "/v1/extractions",
    summary="Propose case facts from a clinical document (text or PDF), each with its evidence",
    responses={400: {}, 401: {}, 413: {}, 422: {}},
)
async def create_extraction(
    request: Request, _client: Annotated[Client, Depends(client_dep)]
) -> JSONResponse:
    raw = await request.body()
    data, content_type, name = _document(raw, request.headers.get("content-type", "").lower())
    record: dict[str, Any] = await run_in_threadpool(
        extraction_record, data, name=name, content_type=content_type
    )
    if "error" in record:
        error = record["error"]
        raise ApiError(
            413 if error["code"] == "too_large" else 422, error["code"], error["message"], field="document"
        )
    return JSONResponse(record)
