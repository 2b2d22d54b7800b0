"""Durability under a crash, on SQLite (a file) and PostgreSQL: the service runs in its own processes
(`serve --workers 2`), several threads stream determinations and prior-authorization requests at it, the process is killed
with SIGKILL mid-stream and started again. Every request answered 2xx is stored exactly once, a retry
with the same idempotency key answers with the same request, and the audit trail's chains verify.

`POST /v1/determinations` takes no idempotency key in this branch, so the retry check uses the
prior-auth endpoint's keys (requests that got no answer before the kill are retried too)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from medpolicy.cli import app
from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY

pytestmark = pytest.mark.slow

TOKEN = "durability-test-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
CASES = (MEDICALLY_NECESSARY, INVESTIGATIONAL, INFORMATION_NEEDED)
THREADS = 4
WORKERS = 2  # two server processes: the audit chain must stay linear across them
SERVE = [sys.executable, "-m", "medpolicy", "serve", "--host", "127.0.0.1"]
ACKED_BEFORE_KILL = 60  # answered writes to wait for before the kill (a count, not a time)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _service(url: str, folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MEDPOLICY_DATA_DIR": str(folder),
        "MEDPOLICY_CLIENTS": f"ehr-durable:{TOKEN}",
    }
    log = (folder / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            *SERVE,
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--public-base-url",
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill reaches every worker
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to a minute on a busy machine
            if process.poll() is not None:
                raise RuntimeError(f"the service exited: {(folder / log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the service did not start")
        yield process, base
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _stream(
    base: str, n: int, acked: list[tuple[str, str, str]], tried: list[str], stop: threading.Event
) -> None:
    """Write until the server dies: (kind, idempotency key or '', id) for each 2xx answer."""
    with httpx.Client(base_url=base, headers=HEADERS, timeout=10) as client:
        i = 0
        while not stop.is_set():
            i += 1
            case = CASES[i % len(CASES)]
            key = f"t{n}-{i}"
            tried.append(key)
            try:
                pa = client.post("/v1/prior-auth", json={"case": case}, headers={"Idempotency-Key": key})
                if pa.is_success:
                    acked.append(("pa", key, pa.json()["id"]))
                det = client.post("/v1/determinations", json={"case": case})
                if det.is_success:
                    acked.append(("det", "", det.json()["id"]))
            except httpx.HTTPError:
                return  # the server is gone


def _crash_and_check(url: str, folder: Path) -> None:
    acked: list[tuple[str, str, str]] = []
    tried: list[str] = []
    stop = threading.Event()
    with _service(url, folder) as (process, base):
        threads = [
            threading.Thread(target=_stream, args=(base, n, acked, tried, stop)) for n in range(THREADS)
        ]
        for t in threads:
            t.start()
        while len(acked) < ACKED_BEFORE_KILL and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)  # mid-stream: the threads are still writing
        process.wait()
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert len(acked) >= ACKED_BEFORE_KILL

    with (
        _service(url, folder) as (_process, base),
        httpx.Client(base_url=base, headers=HEADERS, timeout=30) as c,
    ):
        for kind, _key, ident in acked:
            path = f"/v1/prior-auth/{ident}" if kind == "pa" else f"/v1/determinations/{ident}"
            assert c.get(path).status_code == 200, (kind, ident)
        acked_pa = {key: ident for kind, key, ident in acked if kind == "pa"}
        for key in tried:  # acknowledged or not: a retry answers with one request per key
            case = CASES[int(key.rsplit("-", 1)[1]) % len(CASES)]
            first = c.post("/v1/prior-auth", json={"case": case}, headers={"Idempotency-Key": key})
            assert first.status_code in (200, 201), first.text
            if key in acked_pa:
                assert first.status_code == 200
                assert first.json()["id"] == acked_pa[key]
                assert first.headers["Idempotent-Replayed"] == "true"
            again = c.post("/v1/prior-auth", json={"case": case}, headers={"Idempotency-Key": key})
            assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT idempotency_key, count(*) FROM pa_requests GROUP BY 1")).all()
            det_ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM determinations"))]
    finally:
        engine.dispose()
    assert {key for key, _ in rows} == set(tried)  # stored exactly once each
    assert all(count == 1 for _, count in rows)
    acked_dets = [ident for kind, _, ident in acked if kind == "det"]
    assert len(set(det_ids)) == len(det_ids)
    assert set(acked_dets) <= set(det_ids)
    result = CliRunner().invoke(app, ["audit", "verify", "--database-url", url])
    assert result.exit_code == 0, result.output


def test_a_kill_9_mid_stream_loses_no_acknowledged_write(store_url: str, tmp_path: Path) -> None:
    _crash_and_check(store_url, tmp_path)
