"""A document's bytes to text, or the reason there is none: text files in any common encoding, PDFs with
a text layer (pypdf). Pure: bytes in, text or a problem out; reading the file is the caller's job.

Problems are per document, with a stable code, and never quote the document: ``empty_document``,
``too_large``, ``binary_file``, ``pdf_no_text_layer`` (a scan; it is not guessed), ``pdf_unreadable``,
``pdf_unsupported`` (pypdf is not installed). Warnings let the document through: ``nul_bytes_removed``,
``not_utf8`` (decoded as Windows-1252), ``encoding_replaced`` (undecodable bytes replaced),
``not_english`` (the rules are English; facts may be missed).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from medpolicy.extract.model import ExtractionWarning

__all__ = ["MAX_DOCUMENT_BYTES", "DocumentProblem", "DocumentText", "read_document"]

#: The largest document accepted (a pathology report is a few KB; a PDF with images a few MB).
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
_MAX_NUL_SHARE = 0.01  # more NUL bytes than this (outside UTF-16) means a binary file
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_ENGLISH = re.compile(
    r"(?i)\b(?:the|and|of|with|is|are|in|to|from|for|no|not|was|margin|tumou?r|invades?|carcinoma|"
    r"specimen|diagnosis|lymph|nodes?|negative|positive)\b"
)
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True, slots=True)
class DocumentProblem:
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(slots=True)
class DocumentText:
    """The text of a document (``None`` with a ``problem`` when it has none) and how it was read."""

    kind: str  # "text" or "pdf"
    text: str | None = None
    problem: DocumentProblem | None = None
    warnings: list[ExtractionWarning] = field(default_factory=list)


def read_document(data: bytes, *, content_type: str | None = None) -> DocumentText:
    """The text of ``data`` (a text file or a PDF; ``content_type`` is a hint, the bytes decide)."""
    is_pdf = data[:1024].lstrip().startswith(b"%PDF-") or (content_type or "").lower() == "application/pdf"
    kind = "pdf" if is_pdf else "text"
    if len(data) > MAX_DOCUMENT_BYTES:
        return DocumentText(
            kind,
            problem=DocumentProblem(
                "too_large", f"the document is {len(data):,} bytes; at most {MAX_DOCUMENT_BYTES:,} are read"
            ),
        )
    if not data.strip():
        return DocumentText(kind, problem=DocumentProblem("empty_document", "the document is empty"))
    doc = _pdf(data) if is_pdf else _text(data)
    if doc.text is not None:
        if not doc.text.strip():
            doc.text = None
            doc.problem = DocumentProblem("empty_document", "the document has no text")
        else:
            _language(doc)
    return doc


def _text(data: bytes) -> DocumentText:
    doc = DocumentText("text")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            doc.text = data.decode("utf-16")
            return doc
        except UnicodeDecodeError:
            pass
    nul = data.count(0)
    if nul > max(8, _MAX_NUL_SHARE * len(data)) or len(_CONTROL.findall(data[:65536])) > 0.05 * min(
        len(data), 65536
    ):
        doc.problem = DocumentProblem(
            "binary_file", "the document is not text (binary content); send a text file or a PDF"
        )
        return doc
    if nul:
        data = data.replace(b"\x00", b"")
        doc.warnings.append(ExtractionWarning("nul_bytes_removed", f"{nul} NUL bytes were removed"))
    try:
        doc.text = data.decode("utf-8-sig")
        return doc
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if bad > 0.001 * len(text):
        doc.text = data.decode("cp1252", errors="replace")
        doc.warnings.append(
            ExtractionWarning("not_utf8", "the document is not UTF-8; it was read as Windows-1252")
        )
    else:
        doc.text = text
        doc.warnings.append(
            ExtractionWarning("encoding_replaced", f"{bad} bytes that are not UTF-8 were replaced")
        )
    return doc


def _pdf(data: bytes) -> DocumentText:
    doc = DocumentText("pdf")
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:
        doc.problem = DocumentProblem("pdf_unsupported", "reading PDFs needs pypdf: install medpolicy[nlp]")
        return doc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            doc.problem = DocumentProblem("pdf_encrypted", "the PDF is encrypted")
            return doc
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError):
        doc.problem = DocumentProblem("pdf_unreadable", "the PDF could not be parsed")
        return doc
    text = "\n\n".join(pages)
    if not text.strip():
        doc.problem = DocumentProblem(
            "pdf_no_text_layer",
            f"the PDF ({len(pages)} pages) has no text layer (a scan?); run OCR first, nothing is guessed",
        )
        return doc
    doc.text = text
    return doc


def _language(doc: DocumentText) -> None:
    text = doc.text or ""
    sample = text[:20000]
    words = len(_WORD.findall(sample))
    if words >= 40 and len(_ENGLISH.findall(sample)) < 0.04 * words:
        doc.warnings.append(
            ExtractionWarning(
                "not_english",
                "the document does not look like English; the rules read English reports, so facts may be missed",
            )
        )
