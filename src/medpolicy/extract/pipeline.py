"""One document's bytes to the JSON the CLI, the service and PAS prefill all give: read, extract, shape.

The record (one per document)::

    {"file": "...", "facts": {...}, "source": "extracted", "evidence": {...}, "confidence": {...},
     "warnings": [...], "detail": {...}, "engine": "medspacy", "kind": "text"}

or, when the document has no readable text, ``{"file": "...", "kind": "pdf", "error": {"code", "message"},
"warnings": [...]}``. Pure: the caller reads the bytes.
"""

from __future__ import annotations

from typing import Any

from medpolicy.extract.core import extract
from medpolicy.extract.documents import read_document

__all__ = ["extraction_record"]


def extraction_record(
    data: bytes, *, name: str | None = None, content_type: str | None = None
) -> dict[str, Any]:
    doc = read_document(data, content_type=content_type)
    record: dict[str, Any] = {"file": name} if name is not None else {}
    if doc.text is None:
        assert doc.problem is not None
        record.update(
            kind=doc.kind, error=doc.problem.to_dict(), warnings=[w.to_dict() for w in doc.warnings]
        )
        return record
    result = extract(doc.text)
    body = result.to_dict()
    body["warnings"] = [w.to_dict() for w in doc.warnings] + body["warnings"]
    record.update(body)
    record["kind"] = doc.kind
    return record
