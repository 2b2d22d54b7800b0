"""What a PAS submission carries beside the case: its member, providers and clinical documents.

Read and checked before the request is created (a bad attachment refuses the whole submission, and
nothing is stored); recorded with the request once it is created.
"""

from __future__ import annotations

from collections.abc import Sequence

from medpolicy.interop import pas
from medpolicy.interop.dtr import FhirInputError, Problem
from medpolicy.interop.parties_fhir import AttachedDocument, DocumentInputError, pas_documents, pas_parties
from medpolicy.parties import Parties
from medpolicy.store import Store
from medpolicy.store.casework import DOCUMENT_MAX_BYTES, sniff_media_type

__all__ = ["record_extras", "submission_extras"]


def submission_extras(parsed: pas.PasRequest) -> tuple[Parties, Sequence[AttachedDocument]]:
    """The member, providers and documents of a PAS request (FhirInputError 422 for a bad document)."""
    parties = pas_parties(parsed.claim, parsed.resolve)
    try:
        documents = pas_documents(parsed.claim, parsed.resolve)
    except DocumentInputError as exc:
        raise FhirInputError(
            422,
            "invalid_attachment",
            f"{exc.field}: {exc.message}",
            [Problem("invalid_attachment", exc.field, exc.message)],
        ) from None
    problems: list[Problem] = []
    for doc in documents:
        if len(doc.data) > DOCUMENT_MAX_BYTES:
            problems.append(
                Problem(
                    "document_too_large", doc.path, f"the document is larger than {DOCUMENT_MAX_BYTES} bytes"
                )
            )
        elif sniff_media_type(doc.data) is None:
            problems.append(
                Problem(
                    "unsupported_document_type",
                    doc.path,
                    "a document must be a PDF or UTF-8 text (its type is read from its bytes)",
                    doc.content_type,
                )
            )
    if problems:
        raise FhirInputError(422, problems[0].code, f"{problems[0].field}: {problems[0].message}", problems)
    return parties, documents


def record_extras(
    store: Store, request_id: str, parties: Parties, documents: Sequence[AttachedDocument], client_id: str
) -> None:
    if not parties.empty:
        store.set_parties(request_id, parties)
    for doc in documents:
        store.add_document(
            request_id, doc.data, title=doc.title, filename=doc.filename, added_by=client_id, source="pas"
        )
