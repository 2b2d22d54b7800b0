"""Determinations in the store: decide a case with the store's policies, store the determination with
its whole case (one group commit for many callers), read them back.

`DeterminationsMixin` is part of `Store` (the methods are `Store` methods).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

import medpolicy
from medpolicy.deciding import decide, decider
from medpolicy.store import audit_chain
from medpolicy.store.db import GroupCommitWriter, SqliteAppender
from medpolicy.store.errors import NotFoundError, StoreError
from medpolicy.store.models import DeterminationRow
from medpolicy.store.records import DeterminationRecord, RenderedDetermination, det_record, new_id

if TYPE_CHECKING:
    from medpolicy import Determination, PolicySet

__all__ = ["DeterminationsMixin", "engine_version"]


def engine_version() -> str:
    try:
        from importlib.metadata import version

        return f"medpolicy {version('medpolicy')}"
    except Exception:  # pragma: no cover - not installed (running from a source tree)
        return "medpolicy unknown"


@dataclass(frozen=True)
class _Decided:
    outcome: str
    policy_id: str | None
    policy_version: str | None
    engine_version: str
    data: dict[str, Any]


def _describe(determination: Determination | Mapping[str, Any], default_engine: str) -> _Decided:
    """Read outcome, policy id and version, engine version and JSON of a determination."""
    data: dict[str, Any] = (
        dict(determination) if isinstance(determination, Mapping) else determination.to_dict()
    )
    policy = data.get("policy")
    policy_id = data.get("policy_id")
    policy_version = data.get("policy_version")
    if isinstance(policy, Mapping):
        policy_id = policy_id or policy.get("id")
        policy_version = policy_version or policy.get("version")
    return _Decided(
        outcome=str(data.get("outcome")),
        policy_id=None if policy_id is None else str(policy_id),
        policy_version=None if policy_version is None else str(policy_version),
        engine_version=str(data.get("engine_version") or default_engine),
        data=data,
    )


_SCALARS = frozenset(
    (
        "id",
        "created_at",
        "client_id",
        "pa_request_id",
        "policy_id",
        "policy_version",
        "engine_version",
        "outcome",
    )
)


def _json_native(case: Mapping[str, Any]) -> dict[str, Any]:
    """The case as plain JSON values (dates become ISO strings), as it will read back from the store."""
    native: dict[str, Any] = orjson.loads(orjson.dumps(dict(case), default=_json_default))
    return native


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


class DeterminationsMixin:
    """The determination methods of `Store` (see the module docstring)."""

    if TYPE_CHECKING:
        policies: PolicySet | None
        engine_version: str
        clock: Callable[[], datetime]
        _writer: GroupCommitWriter
        _appender: SqliteAppender | None
        _write_lock: threading.Lock | None
        _write_engine: Engine
        #: (the policies they decide with, a decider per policy id) and the lock their learning takes.
        _deciders: tuple[PolicySet, dict[str | None, Callable[[Mapping[str, Any]], Determination]]] | None
        _deciders_lock: threading.Lock

        def _read(self) -> AbstractContextManager[Session]: ...

    # -- determinations -----------------------------------------------------------------------

    def decide(
        self,
        case: Mapping[str, Any],
        *,
        policy_id: str | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> Determination:
        """Run the engine on `case` with this store's policies (raises `medpolicy.CaseError`).

        Without ``sources``, through a decider kept per policy id (`medpolicy.deciding.decider`: the
        same answers and errors as `decide`, with routes remembered and repeated combinations of
        values decided from learnt templates, `medpolicy.case_combos`); a lock keeps its learning to
        one thread at a time (the service's event loop, and its thread pool for large cases)."""
        policies = self.policies
        if policies is None:
            raise StoreError("this store has no policies to decide with", code="no_policies", status=503)
        if sources is None:
            deciders = self._deciders
            if deciders is None or deciders[0] is not policies:  # new, or the policies were replaced
                deciders = self._deciders = (policies, {})
            by_policy = deciders[1]
            one = by_policy.get(policy_id)
            with self._deciders_lock:
                if one is None:
                    one = by_policy[policy_id] = decider(policies, policy_id=policy_id)
                return one(case)
        return decide(case, policies, policy_id=policy_id, sources=sources)

    def decide_and_save(
        self, case: Mapping[str, Any], *, client_id: str, policy_id: str | None = None
    ) -> DeterminationRecord:
        """Decide `case` and store the determination; return the stored record."""
        determination = self.decide(case, policy_id=policy_id)
        return self.save_determination(case, determination, client_id=client_id)

    def save_determination(
        self,
        case: Mapping[str, Any],
        determination: Determination | Mapping[str, Any],
        *,
        client_id: str,
        pa_request_id: str | None = None,
    ) -> DeterminationRecord:
        """Store one determination with its full case; committed when this returns."""
        record, committed = self.submit_determination(
            case, determination, client_id=client_id, pa_request_id=pa_request_id
        )
        committed.result()
        return record

    def submit_determination(
        self,
        case: Mapping[str, Any],
        determination: Determination | Mapping[str, Any],
        *,
        client_id: str,
        pa_request_id: str | None = None,
    ) -> tuple[DeterminationRecord, Future[None]]:
        """Queue one determination for the next group commit: (record, future done once committed).

        For async callers: `await asyncio.wrap_future(future)` before answering. Concurrent
        submissions share one transaction, so the store syncs its log once for many requests.
        """
        values = self._determination_values(
            case, determination, client_id=client_id, pa_request_id=pa_request_id
        )
        record = DeterminationRecord(**values)
        return record, self._writer.submit(values)

    def submit_rendered(
        self, case: Mapping[str, Any], determination: Determination, *, client_id: str
    ) -> tuple[RenderedDetermination, Future[None]]:
        """`submit_determination` for the service's hot path: the same row, stored and hashed into
        the audit chain alike, with the determination rendered once (`to_json_and_canonical`) and
        never parsed back into a dict; the record holds the JSON text, ready to answer."""
        record, values = self._rendered_values(case, determination, client_id=client_id)
        return record, self._writer.submit(values)

    def _rendered_values(
        self, case: Mapping[str, Any], determination: Determination, *, client_id: str
    ) -> tuple[RenderedDetermination, dict[str, Any]]:
        """The record and the row values (`_determination_values`' row, its JSON columns as
        `orjson.Fragment`s of their text, which the columns' orjson serializer writes as it is,
        and its canonical content for the audit chain, `audit_chain.CANONICAL`)."""
        text, canonical = determination.to_json_and_canonical()
        case_json = orjson.dumps(dict(case), default=_json_default)
        version = determination.version
        values: dict[str, Any] = {
            "id": new_id("det"),
            "created_at": self.clock(),
            "client_id": client_id,
            "pa_request_id": None,
            "policy_id": str(determination.policy.id),
            "policy_version": None if version is None else str(version.id),
            "engine_version": str(medpolicy.__version__ or self.engine_version),
            "outcome": str(determination.outcome.value),
            "case": orjson.Fragment(orjson.dumps(orjson.loads(case_json), option=orjson.OPT_SORT_KEYS)),
            "determination": orjson.Fragment(canonical),
        }
        tail = audit_chain.canonical_tail("determinations", values)
        record = RenderedDetermination(
            case_json=case_json, determination_json=text, **{k: v for k, v in values.items() if k in _SCALARS}
        )
        values["case"] = orjson.Fragment(case_json)
        values["determination"] = orjson.Fragment(text)
        values[audit_chain.CANONICAL] = tail
        return record, values

    def _insert_determinations(self, rows: list[dict[str, Any]]) -> None:
        rows = [dict(row) for row in rows]  # a failed batch is retried row by row: seal copies
        appender = self._appender
        if appender is not None:  # SQLite: through the driver (the same transaction, less Python)
            with self._write_lock or nullcontext(), appender.transaction() as txn:
                head = txn.first(audit_chain.head_sql("determinations"))
                audit_chain.seal_after(head, "determinations", rows)
                txn.insert(rows)
            return
        with self._write_lock or nullcontext(), self._write_engine.begin() as conn:
            audit_chain.seal_values(conn, "determinations", rows)
            conn.execute(insert(DeterminationRow), rows)

    def get_determination(self, determination_id: str) -> DeterminationRecord:
        with self._read() as session:
            row = session.get(DeterminationRow, determination_id)
            if row is None:
                raise NotFoundError(f"no determination {determination_id!r}", code="determination_not_found")
            return det_record(row)

    def list_determinations(self, pa_request_id: str) -> list[DeterminationRecord]:
        """Every determination of a prior-authorization request, oldest first. Each holds the whole
        case as it was then, so the list replays how the request's facts and outcome changed."""
        with self._read() as session:
            rows = session.scalars(
                select(DeterminationRow)
                .where(DeterminationRow.pa_request_id == pa_request_id)
                .order_by(DeterminationRow.created_at, DeterminationRow.id)
            )
            return [det_record(row) for row in rows]

    def count_determinations(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(DeterminationRow)) or 0)

    def _determination_row(
        self,
        case: Mapping[str, Any],
        determination: Determination | Mapping[str, Any],
        *,
        client_id: str,
        pa_request_id: str | None,
    ) -> DeterminationRow:
        return DeterminationRow(
            **self._determination_values(
                case, determination, client_id=client_id, pa_request_id=pa_request_id
            )
        )

    def _determination_values(
        self,
        case: Mapping[str, Any],
        determination: Determination | Mapping[str, Any],
        *,
        client_id: str,
        pa_request_id: str | None,
    ) -> dict[str, Any]:
        decided = _describe(determination, self.engine_version)
        return {
            "id": new_id("det"),
            "created_at": self.clock(),
            "client_id": client_id,
            "pa_request_id": pa_request_id,
            "policy_id": decided.policy_id,
            "policy_version": decided.policy_version,
            "engine_version": decided.engine_version,
            "outcome": decided.outcome,
            "case": _json_native(case),
            "determination": decided.data,
        }
