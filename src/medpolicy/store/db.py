"""Database plumbing of the store: engines (SQLite pragmas), group commit, background WAL checkpoints."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, PoolProxiedConnection, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from medpolicy.store.errors import StoreError

log = logging.getLogger("medpolicy.store")


def make_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for `url`. SQLite: WAL, busy timeout, foreign keys, explicit BEGIN (IMMEDIATE to write).

    `synchronous=FULL` (the default) syncs the WAL at every commit, so a committed record survives a
    power cut, not only a crash of the process.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            hide_parameters=True,  # no case or patient data in a database error's text (docs/security.md)
        )
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        private_file(Path(database))
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        hide_parameters=True,
        pool_size=8,
        max_overflow=8,
    )
    synchronous = sqlite_synchronous.upper()
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"sqlite synchronous must be OFF, NORMAL, FULL or EXTRA, not {sqlite_synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def private_file(path: Path) -> None:
    """Create the store's file readable by its owner only (0600), in a folder only its owner may
    enter (0700) when this creates the folder. SQLite gives its -wal and -shm files the same mode."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _json_dumps(value: Any) -> str:
    """JSON columns are written with orjson (the store's hot path serialises every determination)."""
    return orjson.dumps(value).decode()


class GroupCommitWriter:
    """Writes determinations in batches: one transaction (one WAL sync) for every row waiting.

    Each caller gets a Future resolved only after its row's transaction has committed, so an answer
    sent after `future.result()` still means "committed"; a batch that fails is retried row by row,
    so one bad row fails only its own caller.
    """

    def __init__(self, insert: Callable[[list[dict[str, Any]]], None], max_batch: int = 256) -> None:
        self._insert = insert
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[None]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def submit(self, values: dict[str, Any]) -> Future[None]:
        future: Future[None] = Future()
        if self._closed:
            future.set_exception(StoreError("the store is closed", code="store_closed", status=503))
            return future
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="medpolicy-store-writer", daemon=True
                    )
                    self._thread.start()
        self._queue.put((values, future))
        return future

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
        while True:  # a submission that raced with close: fail it rather than leave it waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _settle(item[1], StoreError("the store is closed", code="store_closed", status=503))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._write(batch)

    def _write(self, batch: list[tuple[dict[str, Any], Future[None]]]) -> None:
        try:
            self._insert([values for values, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for item in batch:  # find the row that failed; the others still commit
                self._write([item])
            return
        for _, future in batch:
            _settle(future, None)


def _settle(future: Future[None], error: BaseException | None) -> None:
    """Resolve a caller's future; one cancelled meanwhile (the client went away) is left as it is."""
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


class SqliteAppender:
    """Appends rows to one table of a SQLite store in short write transactions, through the driver.

    The group commit's hot path. Through SQLAlchemy Core a one-row transaction cost ~0.6 ms of the
    writer thread's Python (pool checkout and reset, events, execution contexts, result set-up) on
    top of SQLite's own ~0.3 ms, and under a steady trickle of requests every transaction is one row:
    that Python ran with the GIL held, beside the event loop. Here the writer keeps one connection
    of the engine's pool (its connect listeners set WAL, ``synchronous`` and the checkpoint policy
    as for any other) and runs ``BEGIN IMMEDIATE``, the reads the caller needs, one ``executemany``
    and ``COMMIT`` on it. The values are converted by each column type's own bind processor, as Core
    would; a driver error is raised as SQLAlchemy's (``IntegrityError``, ...), without parameters.

    One thread uses it at a time (the writer's); `close` returns the connection to the pool.
    """

    def __init__(self, engine: Engine, table: Table) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("SqliteAppender is for SQLite stores")
        for column in table.columns:
            if column.default is not None or column.server_default is not None:
                raise ValueError(f"{table.name}.{column.name} has a default: insert it through Core")
        self._engine = engine
        self._keys = [column.key for column in table.columns]
        dialect = engine.dialect
        self._processors = [column.type.bind_processor(dialect) for column in table.columns]
        self._sql = str(insert(table).compile(dialect=dialect, column_keys=self._keys))
        self._raw: PoolProxiedConnection | None = None

    @contextmanager
    def transaction(self) -> Iterator[AppendTransaction]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on exit, rolled back on an error."""
        raw = self._raw
        if raw is None:
            raw = self._raw = self._engine.raw_connection()
        conn: Any = raw.driver_connection
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield AppendTransaction(self, conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            self._raw = None
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except Exception:  # noqa: S110 - the connection is dropped below either way
                pass
            raw.invalidate()  # a connection that failed is not reused
            if isinstance(exc, Exception) and not isinstance(exc, DBAPIError):
                dbapi = self._engine.dialect.loaded_dbapi
                if isinstance(exc, dbapi.Error):
                    raise DBAPIError.instance(
                        None, None, exc, dbapi.Error, hide_parameters=True, dialect=self._engine.dialect
                    ) from exc
            raise

    def rows_sql(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Parameters of the insert for `rows` (each column's bind processor applied)."""
        keys, processors = self._keys, self._processors
        unknown = {k for row in rows for k in row}.difference(keys)
        if unknown:
            raise ValueError(f"unknown columns: {', '.join(sorted(unknown))}")
        out = []
        for row in rows:
            values: list[Any] = []
            for key, process in zip(keys, processors, strict=True):
                if key not in row:
                    values.append(None)  # SQL NULL, as a column Core leaves out of its INSERT
                    continue
                value = row[key]
                values.append(process(value) if process is not None else value)
            out.append(tuple(values))
        return out

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()


class AppendTransaction:
    """One transaction of a `SqliteAppender`: read what the rows need, then insert them."""

    def __init__(self, appender: SqliteAppender, conn: Any) -> None:
        self._appender = appender
        self._conn = conn

    def first(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of a query (fixed SQL, no parameters), or None."""
        row: tuple[Any, ...] | None = self._conn.execute(sql).fetchone()
        return row

    def insert(self, rows: list[dict[str, Any]]) -> None:
        self._conn.executemany(self._appender._sql, self._appender.rows_sql(rows))


class Checkpointer:
    """Checkpoints a SQLite WAL from a background thread, off the commit path.

    SQLite's automatic checkpoint runs inside whichever commit crosses the threshold and syncs the
    database file there, a latency spike for that request and every one queued behind it. This turns
    it off for the store's connections and runs a PASSIVE checkpoint (which never blocks writers)
    every `interval` seconds instead.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()

        @event.listens_for(engine, "connect")
        def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        engine.dispose()  # connections made before this listener (migrations) are replaced
        self._thread = threading.Thread(target=self._run, name="medpolicy-store-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.checkpoint()

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        raw = self._engine.raw_connection()
        try:
            raw.driver_connection.execute(f"PRAGMA wal_checkpoint({mode})")  # type: ignore[union-attr]
        except Exception:  # a busy database: the next round checkpoints
            log.warning("WAL checkpoint failed; retrying in %.0f s", self._interval)
        finally:
            raw.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.checkpoint("TRUNCATE")
