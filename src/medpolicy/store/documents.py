"""Clinical documents of a prior-authorization request (table `pa_documents` of migration
0007_reviewer_day): PDF or UTF-8 text, the type sniffed from the bytes, a size limit, the SHA-256,
append-only, and every read an audit event. `DocumentsMixin` is part of `Store` (through
`medpolicy.store.casework.CaseworkMixin`):

    doc = store.add_document(pa.id, data, title="Pathology report", added_by="ehr-1", source="pas")
    store.list_documents(pa.id)                                   # metadata, oldest first
    store.get_document(doc.id, actor="nurse.nora", role="nurse")  # with content; audited
"""

from __future__ import annotations

import hashlib
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ForeignKey, Integer, LargeBinary, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from medpolicy.store.errors import NotFoundError, StoreError
from medpolicy.store.models import UTCDateTime
from medpolicy.store.records import new_id

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DOCUMENT_MAX_BYTES",
    "DOCUMENT_TYPES",
    "Document",
    "DocumentError",
    "DocumentsMixin",
    "sniff_media_type",
]

metadata = MetaData()
documents_table = Table(
    "pa_documents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(40), ForeignKey("pa_requests.id"), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
    Column("added_by", String(200), nullable=False),
    Column("source", String(40), nullable=False),
    Column("title", String(200), nullable=False),
    Column("filename", String(200)),
    Column("media_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
)
DOCUMENT_MAX_BYTES = int(os.environ.get("MEDPOLICY_DOCUMENT_MAX_BYTES", str(10 * 1024 * 1024)))
#: the types a document may have, as sniffed from its bytes (never from its name)
DOCUMENT_TYPES = {"application/pdf": "PDF", "text/plain": "text"}


class DocumentError(StoreError):
    """A document refused: too large (413), empty or of a type we do not take (415)."""

    code = "invalid_document"
    status = 422


def sniff_media_type(data: bytes) -> str | None:
    """The document's type from its bytes: PDF (``%PDF-``) or UTF-8 text without control bytes."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return None
    return "text/plain"


@dataclass(frozen=True)
class Document:
    id: str
    request_id: str
    added_at: datetime
    added_by: str
    source: str  # pas, v1, workbench
    title: str
    filename: str | None
    media_type: str
    size: int
    sha256: str
    content: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return DOCUMENT_TYPES.get(self.media_type, self.media_type)

    def text(self) -> str | None:
        """The text of a text document (None for a PDF or when the content was not loaded)."""
        if self.content is None or self.media_type != "text/plain":
            return None
        return self.content.decode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "added_at": self.added_at.isoformat(),
            "added_by": self.added_by,
            "source": self.source,
            "title": self.title,
            "filename": self.filename,
            "media_type": self.media_type,
            "size": self.size,
            "sha256": self.sha256,
        }


def _document(row: Any, *, content: bool = False) -> Document:
    return Document(
        id=row.id,
        request_id=row.request_id,
        added_at=row.added_at,
        added_by=row.added_by,
        source=row.source,
        title=row.title,
        filename=row.filename,
        media_type=row.media_type,
        size=row.size,
        sha256=row.sha256,
        content=bytes(row.content) if content else None,
    )


class DocumentsMixin:
    """The document methods of `Store`."""

    if TYPE_CHECKING:
        clock: Callable[[], datetime]

        def _write(self) -> AbstractContextManager[Session]: ...
        def _read(self) -> AbstractContextManager[Session]: ...
        def _event(
            self, session: Session, request_id: str, actor: str, role: str, action: str, reason: str | None
        ) -> None: ...

    def add_document(
        self,
        request_id: str,
        data: bytes,
        *,
        title: str,
        added_by: str,
        source: str,
        filename: str | None = None,
        role: str = "submitter",
    ) -> Document:
        """Store a clinical document of a request (PDF or text, sniffed from the bytes)."""
        if not data:
            raise DocumentError("the document is empty", code="document_empty")
        if len(data) > DOCUMENT_MAX_BYTES:
            raise DocumentError(
                f"the document is {len(data)} bytes; the limit is {DOCUMENT_MAX_BYTES}",
                code="document_too_large",
                status=413,
            )
        media_type = sniff_media_type(data)
        if media_type is None:
            raise DocumentError(
                "the document is neither a PDF nor UTF-8 text (its type is read from its bytes)",
                code="unsupported_document_type",
                status=415,
            )
        title = " ".join(title.split())[:200] or (filename or "Document")[:200]
        filename = None if not filename else os.path.basename(filename.replace("\\", "/"))[:200] or None
        doc = Document(
            id=new_id("doc"),
            request_id=request_id,
            added_at=self.clock(),
            added_by=added_by,
            source=source,
            title=title,
            filename=filename,
            media_type=media_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        with self._write() as session:
            self._event(
                session,
                request_id,
                added_by,
                role,
                "document_added",
                f"{doc.title} ({DOCUMENT_TYPES[media_type]}, {doc.size} bytes, sha256 {doc.sha256[:12]}…)",
            )
            session.execute(
                insert(documents_table).values(
                    id=doc.id,
                    request_id=request_id,
                    added_at=doc.added_at,
                    added_by=added_by,
                    source=source,
                    title=doc.title,
                    filename=doc.filename,
                    media_type=media_type,
                    size=doc.size,
                    sha256=doc.sha256,
                    content=data,
                )
            )
        return doc

    def list_documents(self, request_id: str) -> list[Document]:
        """The request's documents, oldest first (without their content)."""
        cols = [c for c in documents_table.c if c.name != "content"]
        with self._read() as session:
            rows = session.execute(
                select(*cols)
                .where(documents_table.c.request_id == request_id)
                .order_by(documents_table.c.added_at, documents_table.c.id)
            )
            return [_document(r) for r in rows]

    def get_document(self, document_id: str, *, actor: str, role: str) -> Document:
        """A document with its content. Every read is an audit event (`document_viewed`) by `actor`."""
        with self._read() as session:
            row = session.execute(select(documents_table).where(documents_table.c.id == document_id)).first()
        if row is None:
            raise NotFoundError(f"no document {document_id!r}", code="document_not_found")
        doc = _document(row, content=True)
        with self._write() as session:
            self._event(session, doc.request_id, actor, role, "document_viewed", f"{doc.title} ({doc.id})")
        return doc
