"""Tamper evidence for the store's append-only tables: each row is chained to the one before it.

Every row of `pa_events` (the audit trail), `pa_reads` (who read a request's patient data) and
`determinations` carries three columns: `chain_seq` (1, 2, 3, ... per table, unique), `chain_prev`
(the previous row's hash; 64 zeros for the first) and `chain_hash`, the SHA-256 of the previous hash
and the row's canonical content (sorted-key JSON of every column but the chain's own and, for the
integer-keyed tables, the id). As in a transparency log, changing, removing or inserting a row
anywhere breaks the chain from that row on; `verify` walks it and names the first broken link.

Rows are sealed as they are written, in the same transaction:

* ORM writes: `install(sessionmaker)` registers a `before_flush` hook that seals every new row of a
  chained table, whoever added it.
* Core inserts (the determinations' group commit): call `seal_values(conn, table, rows)` first. A
  row may carry its content already rendered (`CANONICAL`, from `canonical_tail`): the service's
  hot path renders a determination's sorted-key JSON with the determination, not from a dict.

The head of a chain is read under a lock: SQLite's write transaction (`BEGIN IMMEDIATE`) or a
PostgreSQL transaction-level advisory lock per table; the unique index on `chain_seq` refuses a fork
even if a writer slipped past the lock. So the chain stays linear under concurrent threads and
server processes.

What a chain cannot show alone: a forger who can write the database and recompute every hash after
the row they change, or who removes rows at the very end. `verify` prints the head (length and
hash); record it somewhere the database's writers cannot reach (a ticket, a log shipper) and pass it
back with `expect_head` to prove that the chain still extends it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, event, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import instance_state

GENESIS = "0" * 64
CHAIN_COLUMNS = frozenset({"chain_seq", "chain_prev", "chain_hash"})
# table -> columns left out of the hashed content besides the chain's (autoincrement ids are assigned
# by the database after the row is sealed; the chain position identifies the row instead)
CHAINED: dict[str, frozenset[str]] = {
    "pa_events": frozenset({"id"}),
    "pa_reads": frozenset({"id"}),
    "determinations": frozenset(),
}
_SKIPPED = {table: skip | CHAIN_COLUMNS for table, skip in CHAINED.items()}
# PostgreSQL advisory-lock keys, one per chained table (arbitrary constants, fixed forever)
_LOCK_KEYS = {"pa_events": 7_303_001, "pa_reads": 7_303_002, "determinations": 7_303_003}


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return value


def row_hash(table: str, seq: int, prev: str, content: Mapping[str, Any]) -> str:
    """The hash of one row: SHA-256 over the previous hash and the row's canonical JSON."""
    skip = CHAINED[table] | CHAIN_COLUMNS
    body = {k: _canonical_value(v) for k, v in content.items() if k not in skip}
    body["_table"] = table
    body["_seq"] = seq
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev.encode("ascii") + b"\n" + canonical).hexdigest()


#: A row's values may carry its canonical content, rendered beforehand (`canonical_tail`), under
#: this key: `seal_values` then hashes it instead of rendering the values again, and removes it.
CANONICAL = "_canonical"


def canonical_tail(table: str, content: Mapping[str, Any]) -> bytes:
    """The canonical JSON `row_hash` hashes, without its chain position: what follows
    ``{"_seq":<seq>,"_table":"<table>",`` (sorted keys put those two first: every column name
    sorts after them). Values may be `orjson.Fragment`s holding their value's sorted-key JSON
    (`orjson.dumps(value, option=orjson.OPT_SORT_KEYS)`), so a large value rendered once for
    other uses need not be rendered again; `row_hash_from_tail` gives the same hash as `row_hash`."""
    skip = _SKIPPED[table]
    body = {
        k: _canonical_value(v) if isinstance(v, datetime) else v for k, v in content.items() if k not in skip
    }
    if body and min(body) <= "_table":
        raise ValueError(f"a column of {table} sorts before the chain's own keys")
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)[1:]


def row_hash_from_tail(table: str, seq: int, prev: str, tail: bytes) -> str:
    """`row_hash` of the row whose `canonical_tail` is `tail`."""
    head = b'{"_seq":%d,"_table":%s%s' % (seq, orjson.dumps(table), b"," if tail != b"}" else b"")
    return hashlib.sha256(prev.encode("ascii") + b"\n" + head + tail).hexdigest()


def _head(conn: Connection, table: str) -> tuple[Any, ...] | None:
    """Lock the chain of `table` for this transaction (PostgreSQL) and read its last link."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEYS[table]})
    row = conn.execute(text(head_sql(table))).first()
    return None if row is None else tuple(row)


def seal_values(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Give each row (a dict of column values, in insert order) its place and hash in the chain."""
    if not rows:
        return
    seal_after(_head(conn, table), table, rows)


def head_sql(table: str) -> str:
    """The query of a chain's last link (``chain_seq, chain_hash``; no row for an empty chain)."""
    if table not in CHAINED:
        raise ValueError(f"{table!r} is not a chained table")
    return (
        f"SELECT chain_seq, chain_hash FROM {table} WHERE chain_seq IS NOT NULL "  # noqa: S608
        "ORDER BY chain_seq DESC LIMIT 1"
    )


def seal_after(head: tuple[Any, ...] | None, table: str, rows: list[dict[str, Any]]) -> None:
    """Seal `rows` after the link `head` (the row of `head_sql`, read in the same write transaction)."""
    seq, prev = (0, GENESIS) if head is None else (int(head[0]), str(head[1]))
    for values in rows:
        seq += 1
        tail = values.pop(CANONICAL, None)
        digest = (
            row_hash(table, seq, prev, values) if tail is None else row_hash_from_tail(table, seq, prev, tail)
        )
        values["chain_seq"], values["chain_prev"], values["chain_hash"] = seq, prev, digest
        prev = digest


def _column_values(obj: Any, table: Table) -> dict[str, Any]:
    return {c.name: getattr(obj, c.key, None) for c in table.columns}


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    pending: dict[str, list[Any]] = {}
    for obj in session.new:
        name = getattr(getattr(obj, "__table__", None), "name", None)
        if name in CHAINED and getattr(obj, "chain_hash", None) is None:
            pending.setdefault(name, []).append(obj)
    if not pending:
        return
    conn = session.connection()
    for name in sorted(pending):  # a fixed order of tables: no lock-order inversion between writers
        objs = sorted(pending[name], key=lambda o: instance_state(o).insert_order or 0)
        table = objs[0].__table__
        values = [_column_values(o, table) for o in objs]
        seal_values(conn, name, values)
        for obj, sealed in zip(objs, values, strict=True):
            obj.chain_seq, obj.chain_prev, obj.chain_hash = (
                sealed["chain_seq"],
                sealed["chain_prev"],
                sealed["chain_hash"],
            )


def install(sessions: sessionmaker[Session]) -> None:
    """Seal new rows of chained tables in every flush of sessions made by `sessions`."""
    if not event.contains(sessions, "before_flush", _before_flush):
        event.listen(sessions, "before_flush", _before_flush)


# -- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first broken link of a chain: which table, which row, what is wrong."""

    table: str
    seq: int | None
    row_id: Any
    problem: str

    def __str__(self) -> str:
        where = f"link {self.seq}" if self.seq is not None else "a row outside the chain"
        return f"{self.table}: {where} (row id {self.row_id}): {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    """The result of walking one table's chain."""

    table: str
    length: int
    head: str
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _rows(conn: Connection, table: Table, batch: int = 1000) -> Iterator[Mapping[Any, Any]]:
    last = 0
    while True:
        rows = conn.execute(
            select(table).where(table.c.chain_seq > last).order_by(table.c.chain_seq).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield row._mapping
        last = int(rows[-1]._mapping["chain_seq"])


def verify_table(conn: Connection, table: Table, expect_head: tuple[int, str] | None = None) -> ChainReport:
    """Walk one chain in order; stop at the first broken link."""
    name = table.name
    unchained = conn.execute(select(table.c.id).where(table.c.chain_seq.is_(None)).limit(1)).first()
    expected_prev, length = GENESIS, 0
    head = GENESIS
    for seq, row in enumerate(_rows(conn, table), start=1):
        at, row_id = int(row["chain_seq"]), row["id"]
        if at != seq:
            problem = f"link {seq} is missing (the next row is link {at}): a row was removed"
            return ChainReport(name, length, head, Break(name, seq, row_id, problem))
        if row["chain_prev"] != expected_prev:
            problem = "it does not point to the link before it: a row before it was removed or replaced"
            return ChainReport(name, length, head, Break(name, at, row_id, problem))
        if row_hash(name, at, expected_prev, row) != row["chain_hash"]:
            problem = "its content does not match its hash: the row was changed after it was written"
            return ChainReport(name, length, head, Break(name, at, row_id, problem))
        expected_prev = head = str(row["chain_hash"])
        length += 1
        if expect_head is not None and at == expect_head[0] and head != expect_head[1]:
            problem = "the chain no longer extends the recorded head: it was rewritten up to here"
            return ChainReport(name, length, head, Break(name, at, row_id, problem))
    if unchained is not None:
        problem = "it has no place in the chain: it was inserted without the store"
        return ChainReport(name, length, head, Break(name, None, unchained[0], problem))
    if expect_head is not None and length < expect_head[0]:
        problem = f"the chain has {length} links, fewer than the {expect_head[0]} recorded: rows were removed"
        return ChainReport(name, length, head, Break(name, length + 1, None, problem))
    return ChainReport(name, length, head, None)


def verify(
    engine: Engine,
    *,
    tables: Iterable[str] | None = None,
    expect: Mapping[str, tuple[int, str]] | None = None,
) -> list[ChainReport]:
    """Walk every chained table (in one read transaction). `expect`: table -> recorded (length, head)."""
    from medpolicy.store.models import Base

    names = list(tables) if tables is not None else list(CHAINED)
    with engine.connect() as conn:
        return [verify_table(conn, Base.metadata.tables[name], (expect or {}).get(name)) for name in names]
