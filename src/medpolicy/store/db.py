"""Database plumbing of the store: engines (SQLite pragmas), group commit, background WAL checkpoints."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

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
