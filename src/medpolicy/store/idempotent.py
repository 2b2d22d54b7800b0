"""Idempotent determinations: `POST /v1/determinations` with an `Idempotency-Key`.

The determination and its key are written in one transaction, so an answered request is stored once:
a retry with the same key and body gets the stored determination back (not a new one), a reuse of
the key for another body is refused (409 `idempotency_key_reused`), and of two concurrent first
attempts one wins and the other answers with the winner's determination. Requests without a key
keep the group-commit path (`Store.submit_determination`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from medpolicy.store import audit_chain
from medpolicy.store.errors import IdempotencyConflictError
from medpolicy.store.models import DeterminationKeyRow, DeterminationRow
from medpolicy.store.records import DeterminationRecord, RenderedDetermination

if TYPE_CHECKING:
    from medpolicy.engine import Determination
    from medpolicy.store.store import Store


def fingerprint(case: Mapping[str, Any], policy_id: str | None) -> str:
    """Tells a retry (the same body) from a reused key (another body)."""
    canonical = orjson.dumps({"case": case, "policy_id": policy_id}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def find(store: Store, client_id: str, key: str, digest: str) -> DeterminationRecord | None:
    """The determination stored under `key` for this client, or None; 409 if the body differs."""
    with store._read() as session:
        row = session.get(DeterminationKeyRow, (client_id, key))
        if row is None:
            return None
        if row.request_hash != digest:
            raise IdempotencyConflictError(
                f"idempotency key {key!r} was used for a different determination ({row.determination_id})"
            )
    return store.get_determination(row.determination_id)


def save(
    store: Store,
    case: Mapping[str, Any],
    determination: Determination,
    *,
    client_id: str,
    key: str,
    digest: str,
) -> tuple[DeterminationRecord | RenderedDetermination, bool]:
    """Store `determination` under `key`: (the new record, True), or the earlier one's (record,
    False). The new one is rendered once, as on the group-commit path (`Store.submit_rendered`)."""
    rendered, values = store._rendered_values(case, determination, client_id=client_id)
    try:
        with store._write_lock or nullcontext(), store._write_engine.begin() as conn:
            row = dict(values)  # the stored row also carries its place in the audit hash chain
            audit_chain.seal_values(conn, "determinations", [row])
            conn.execute(insert(DeterminationRow), [row])
            conn.execute(
                insert(DeterminationKeyRow),
                [
                    {
                        "client_id": client_id,
                        "idempotency_key": key,
                        "request_hash": digest,
                        "determination_id": values["id"],
                    }
                ],
            )
    except IntegrityError:
        existing = find(store, client_id, key, digest)  # a concurrent first attempt won
        if existing is None:  # pragma: no cover - the conflict was something else
            raise
        return existing, False
    return rendered, True


__all__ = ["find", "fingerprint", "save"]
