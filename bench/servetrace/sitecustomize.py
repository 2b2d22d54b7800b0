"""A bench-only tracer for a medpolicy server process (never imported by the service itself).

`bench/trace_order_sign.py` puts this folder first on the server's PYTHONPATH with
``MEDPOLICY_BENCH_TRACE=<file.json>``; Python then imports this module at start-up, and it records,
in memory, until the server exits (or gets SIGUSR1), then writes them to that file:

- ``gc``: every garbage collection (end time, generation, ms, objects collected);
- ``req``: each CDS call (start, ms in `call_service`, including the wait for its commit);
- ``verify`` / ``answer``: ms in the JWT check and in building the answer (event-loop CPU);
- ``batch``: each group-commit transaction (start, rows, ms including the WAL sync);
- ``checkpoint``: each background WAL checkpoint (start, ms);
- ``lag``: event-loop lag above 3 ms, from a task that sleeps 2 ms (start, ms late);
- ``parts``: each CDS call's parts (start; ms in the JWT check, in building the answer, waiting for
  the commit, and in `call_service` in all).

No request content is recorded: times and counts only.
"""

from __future__ import annotations

import os

if os.environ.get("MEDPOLICY_BENCH_TRACE"):
    import asyncio
    import builtins
    import gc
    import json
    import signal
    import time
    from typing import Any

    _OUT = os.environ["MEDPOLICY_BENCH_TRACE"]
    _T: dict[str, list[Any]] = {
        k: [] for k in ("gc", "req", "verify", "answer", "batch", "checkpoint", "lag", "parts")
    }
    _clock = time.perf_counter
    _gc_started = [0.0]

    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _gc_started[0] = _clock()
        else:
            now = _clock()
            _T["gc"].append((now, info["generation"], (now - _gc_started[0]) * 1000, info["collected"]))

    def _dump(*_args: Any) -> None:
        import threading

        names = {str(t.native_id): t.name for t in threading.enumerate()}
        with open(_OUT + ".part", "w", encoding="utf-8") as f:
            json.dump({**_T, "threads": names}, f)
        os.replace(_OUT + ".part", _OUT)  # whole or not there: the reader polls for it

    def _patch() -> None:
        import contextvars
        import types

        import medpolicy.service.cds as cds_module
        import medpolicy.store.db as db_module

        cds: Any = cds_module  # patched below: typed loosely
        db: Any = db_module

        call, verified, answer = cds.call_service, cds._verified_caller, cds._answer
        write, checkpoint = db.GroupCommitWriter._write, db.Checkpointer.checkpoint
        monitor: list[asyncio.Task[None]] = []
        parts: contextvars.ContextVar[list[float]] = contextvars.ContextVar("parts")
        real_asyncio = cds.asyncio

        async def wrap_future_timed(future: Any) -> Any:
            t0 = _clock()
            try:
                return await real_asyncio.wrap_future(future)
            finally:
                mine = parts.get(None)
                if mine is not None:
                    mine[2] += (_clock() - t0) * 1000

        proxy = types.SimpleNamespace(
            **{k: getattr(real_asyncio, k) for k in dir(real_asyncio) if not k.startswith("__")}
        )
        proxy.wrap_future = wrap_future_timed

        async def lag() -> None:
            while True:
                t0 = _clock()
                await asyncio.sleep(0.002)
                late = (_clock() - t0) * 1000 - 2
                if late > 3:
                    _T["lag"].append((t0, late))

        async def call_service(service_id: str, request: Any, runtime: Any) -> Any:
            if not monitor:
                monitor.append(asyncio.get_running_loop().create_task(lag()))
            t0 = _clock()
            mine = [0.0, 0.0, 0.0]
            parts.set(mine)
            try:
                return await call(service_id, request, runtime)
            finally:
                total = (_clock() - t0) * 1000
                _T["req"].append((t0, total))
                _T["parts"].append((t0, *mine, total))

        async def verified_caller(*args: Any) -> Any:
            t0 = _clock()
            try:
                return await verified(*args)
            finally:
                ms = (_clock() - t0) * 1000
                _T["verify"].append(ms)
                mine = parts.get(None)
                if mine is not None:
                    mine[0] += ms

        def answer_timed(*args: Any) -> Any:
            t0 = _clock()
            try:
                return answer(*args)
            finally:
                ms = (_clock() - t0) * 1000
                _T["answer"].append(ms)
                mine = parts.get(None)
                if mine is not None:
                    mine[1] += ms

        def write_timed(self: Any, batch: list[Any]) -> None:
            t0 = _clock()
            write(self, batch)
            _T["batch"].append((t0, len(batch), (_clock() - t0) * 1000))

        def checkpoint_timed(self: Any, mode: str = "PASSIVE") -> None:
            t0 = _clock()
            checkpoint(self, mode)
            _T["checkpoint"].append((t0, (_clock() - t0) * 1000))

        cds.asyncio = proxy
        cds.call_service = call_service
        cds._verified_caller = verified_caller
        cds._answer = answer_timed
        db.GroupCommitWriter._write = write_timed
        db.Checkpointer.checkpoint = checkpoint_timed

    _import = builtins.__import__
    _patched = [False]

    def _import_then_patch(name: str, *args: Any, **kwargs: Any) -> Any:
        module = _import(name, *args, **kwargs)
        if not _patched[0] and name == "medpolicy.service.run":
            _patched[0] = True
            builtins.__import__ = _import
            _patch()
        return module

    gc.callbacks.append(_on_gc)
    builtins.__import__ = _import_then_patch
    signal.signal(signal.SIGUSR1, _dump)
    import atexit

    atexit.register(_dump)
