"""The group commit's SQLite path (`SqliteAppender`): the same rows as SQLAlchemy Core writes, the
same durability settings, the same errors, and a clean start after a failed transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from medpolicy import PolicySet
from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY
from medpolicy.store import Store, audit_chain
from medpolicy.store.db import SqliteAppender, make_engine
from medpolicy.store.models import Base


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM determinations ORDER BY chain_seq").fetchall()


def test_the_appender_writes_the_rows_core_writes(tmp_path: Path, policies: PolicySet) -> None:
    through_driver = Store.open(f"sqlite:///{tmp_path / 'a.db'}", policies=policies)
    through_core = Store.open(f"sqlite:///{tmp_path / 'b.db'}", policies=policies)
    through_core._appender = None  # the Core path, as on PostgreSQL
    assert through_driver._appender is not None
    values = [
        through_driver._determination_values(
            case, through_driver.decide(case), client_id="cds:ehr", pa_request_id=None
        )
        for case in (MEDICALLY_NECESSARY, INVESTIGATIONAL, INFORMATION_NEEDED)
    ]
    for store in (through_driver, through_core):
        store._insert_determinations(values[:1])
        store._insert_determinations(values[1:])  # a batch of two
        assert store.get_determination(values[2]["id"]).outcome == "information_needed"
        assert all(report.ok for report in audit_chain.verify(store.engine))
        store.close()
    driver_rows, core_rows = _rows(tmp_path / "a.db"), _rows(tmp_path / "b.db")
    assert len(driver_rows) == 3
    assert driver_rows == core_rows  # byte for byte: JSON, timestamps, chain links


def test_the_appender_commits_with_the_stores_durability(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}", sqlite_synchronous="FULL")
    Base.metadata.create_all(engine)
    appender = SqliteAppender(engine, Base.metadata.tables["determinations"])
    try:
        with appender.transaction() as txn:
            assert txn.first("PRAGMA synchronous") == (2,)  # FULL: the WAL is synced at each commit
            assert txn.first("PRAGMA journal_mode") == ("wal",)
    finally:
        appender.close()
        engine.dispose()


def test_a_failed_transaction_rolls_back_and_the_next_one_commits(store: Store) -> None:
    """On SQLite through the appender, on PostgreSQL through Core: the same behaviour."""
    first = store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-1")
    decided = store.decide(INVESTIGATIONAL)
    fresh = store._determination_values(INVESTIGATIONAL, decided, client_id="ehr-2", pa_request_id=None)
    duplicate = store._determination_values(INVESTIGATIONAL, decided, client_id="ehr-2", pa_request_id=None)
    duplicate["id"] = first.id  # the same primary key again: the database refuses it
    with pytest.raises(sa.exc.IntegrityError):  # SQLAlchemy's error, as through Core
        store._insert_determinations([fresh, duplicate])
    assert store.count_determinations() == 1  # the whole batch rolled back
    store._insert_determinations([fresh])
    assert store.get_determination(fresh["id"]).client_id == "ehr-2"
    assert [r.length for r in audit_chain.verify(store.engine, tables=["determinations"])] == [2]
    assert all(r.ok for r in audit_chain.verify(store.engine))


def test_the_appender_refuses_unknown_columns_and_other_databases(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    Base.metadata.create_all(engine)
    appender = SqliteAppender(engine, Base.metadata.tables["determinations"])
    try:
        with pytest.raises(ValueError, match="unknown columns: nope"), appender.transaction() as txn:
            txn.insert([{"id": "x", "nope": 1}])
        with sqlite3.connect(tmp_path / "s.db") as conn:
            assert conn.execute("SELECT count(*) FROM determinations").fetchone() == (0,)
    finally:
        appender.close()
        engine.dispose()
    with pytest.raises(ValueError, match="for SQLite stores"):
        SqliteAppender(sa.create_engine("postgresql://u@127.0.0.1/x"), Base.metadata.tables["determinations"])
