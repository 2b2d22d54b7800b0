"""A reviewer's verdict on a fact proposed from a document, in the request's audit trail.

Accepting or changing a proposed fact gives it to the case through ``Store.apply_action`` (its source is
then ``given``, and the engine decides again); rejecting it leaves the case as it is and records an
``extraction_rejected`` event, so the trail shows every proposal a person weighed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medpolicy.store.store import Store

__all__ = ["record_rejection"]


def record_rejection(
    store: Store, request_id: str, *, fact: str, proposed: Any, document_id: str, actor: str, role: str
) -> None:
    """Record that ``actor`` rejected the value proposed for ``fact`` from document ``document_id``."""
    reason = f"rejected the extracted {fact} ({_show(proposed)}) from document {document_id}"
    with store._write() as session:
        store._event(session, request_id, actor, role, "extraction_rejected", reason)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
