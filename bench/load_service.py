"""Load benchmark of the HTTP service over loopback, every determination persisted.

    .venv/bin/python bench/load_service.py [--requests 5000] [--rate 500] [--concurrency 16]

Starts `medpolicy.service.run.serve` in its own process on 127.0.0.1 with a fresh SQLite store (in a
temporary folder), then drives it from this process with a light asyncio HTTP/1.1 client over
keep-alive connections:

1. `POST /v1/determinations`, open loop at `--rate` requests per second (latency measured from the
   time each request was due, so a stalled server cannot hide its queue), then closed loop at
   `--concurrency` connections for the sustained maximum;
2. CDS Hooks `order-sign` (the CRD face), the same two phases, with a signed JWT per request, when
   the CRD face is present; otherwise that half is skipped with a message.

Afterwards it counts the rows in the store: every 2xx answer must be one stored determination, no
request lost and none duplicated. Prints throughput, p50, p99 and the ratio to the target
(500 determinations per second sustained, p99 under 50 ms, SQLite store).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 500.0
TARGET_P99_MS = 50.0
TOKEN = "bench-client-token-0123456789abcdef"  # noqa: S105 - a throwaway token for a loopback benchmark


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def report(self, target_rate: float | None = None) -> str:
        rate = self.ok / self.wall_s if self.wall_s else 0.0
        worst = max(self.latencies_ms, default=0.0)
        line = (
            f"{self.name:<44} {len(self.latencies_ms):>6} req  {rate:8.1f} req/s  "
            f"p50 {self.pct(50):7.2f} ms  p99 {self.pct(99):7.2f} ms  max {worst:7.1f} ms"
        )
        errors = {s: n for s, n in self.statuses.items() if not 200 <= s < 300}
        if errors:
            line += f"  NON-2xx {errors}"
        if target_rate:
            line += (
                f"\n{'':<44} ratio to target: throughput {rate / target_rate:.2f}x, "
                f"p99 {TARGET_P99_MS / self.pct(99):.2f}x (over 1 is better than the target)"
            )
        return line


# -- a minimal HTTP/1.1 client (cheap on CPU, so the server gets the cores) -----------------------


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def http_post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


RequestMaker = Callable[[int], bytes]
IdReader = Callable[[bytes], str | None]


async def run_phase(
    port: int,
    phase: Phase,
    make: RequestMaker,
    read_id: IdReader,
    count: int,
    *,
    rate: float | None,
    concurrency: int,
) -> Phase:
    """Send `count` requests: open loop at `rate` per second, or closed loop when `rate` is None."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(await Connection.open(port))
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        conn = await pool.get()
        try:
            status, body = await conn.request(make(i))
        finally:
            pool.put_nowait(conn)
        phase.latencies_ms.append((loop.time() - due) * 1000)
        phase.statuses[status] = phase.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            ident = read_id(body)
            if ident:
                phase.ids.append(ident)

    start = loop.time()
    if rate is None:
        counter = iter(range(count))

        async def worker() -> None:
            for i in counter:
                await one(i, loop.time())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        tasks = []
        for i in range(count):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
    phase.wall_s = loop.time() - start
    while not pool.empty():
        pool.get_nowait().close()
    return phase


# -- the server under test ---------------------------------------------------------------------


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    data_dir: Path, port: int, extra_env: dict[str, str], workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MEDPOLICY_DATA_DIR": str(data_dir),
        "MEDPOLICY_CLIENTS": json.dumps({"bench": TOKEN}),
        **extra_env,
    }
    env.pop("DATABASE_URL", None)
    code = f"import sys; from medpolicy.service.run import serve; serve('127.0.0.1', {port}, None, False, {workers})"
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: see {data_dir / 'server.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 60 s")


def count_rows(db: Path, table: str, where: str = "") -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {table} {where}").fetchone()  # noqa: S608 - fixed names
        return int(n)


def example_cases() -> list[dict[str, Any]]:
    from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY

    return [MEDICALLY_NECESSARY, INVESTIGATIONAL, INFORMATION_NEEDED]


# -- order-sign ----------------------------------------------------------------------------------


def order_sign_setup(
    port: int, alg: str = "ES384"
) -> tuple[dict[str, str], Callable[[int], RequestMaker], IdReader] | str:
    """Environment for the server and a request maker for CRD order-sign, or why it cannot run."""
    sys.path.insert(0, str(ROOT / "tests" / "interop"))
    try:
        import cds_client  # type: ignore[import-not-found]
    except ImportError as exc:
        return f"the CRD test client (tests/interop/cds_client.py) cannot be imported: {exc}"
    needed = ("CdsClient", "order_sign_request", "service_request", "condition", "observation")
    missing = [name for name in needed if not hasattr(cds_client, name)]
    if missing:
        return f"tests/interop/cds_client.py lacks {', '.join(missing)}"
    base = f"http://127.0.0.1:{port}"
    client = cds_client.CdsClient(base_url=base, alg=alg)
    env = {
        "MEDPOLICY_CDS_CLIENTS": json.dumps({client.iss: {"jwks": client.jwks()}}),
        "MEDPOLICY_CDS_BASE_URL": base,
    }
    path = "/cds-services/medpolicy-crd-order-sign"
    aud = client.url(path)
    # A covered IORT order: rectal cancer, cT4b, positive margin (as in tests/interop/test_crd_iort.py).
    body = json.dumps(
        cds_client.order_sign_request(
            [cds_client.service_request("sr1", "77425")],
            conditions=[cds_client.condition("c-rectal", "C20")],
            observations=[
                cds_client.observation("o-t", "21905-5", valueString="cT4b"),
                cds_client.observation("o-m", "21939-4", valueString="Positive (involved)"),
            ],
        )
    ).encode()

    def prepare(count: int) -> RequestMaker:
        # Sign every JWT (fresh jti each) before the clock starts: the client's signing must not
        # take the server's CPU on a 2-core machine.
        raw = [http_post(path, body, {"Authorization": f"Bearer {client.token(aud)}"}) for _ in range(count)]
        return raw.__getitem__

    return env, prepare, lambda _body: None


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000, help="requests per phase (default 5000)")
    parser.add_argument(
        "--rate", type=float, default=TARGET_RATE, help="open-loop rate, requests/s (default 500)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="connections of the closed loop (default 8)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (default 1; on SQLite more contend for its write lock)",
    )
    parser.add_argument(
        "--cds-alg",
        default="ES384",
        choices=["ES384", "RS384", "ES256"],
        help="signature algorithm of the CDS client's JWTs (default ES384)",
    )
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; store: SQLite (WAL, synchronous=FULL) in a fresh temp folder; "
        f"{args.workers} server process(es); load average before: {_load()} (other work on these cores "
        "stretches the tail latencies)"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="medpolicy-bench-"))
    db = data_dir / "medpolicy.db"
    port = free_port()
    crd = order_sign_setup(port, args.cds_alg)
    extra_env = crd[0] if isinstance(crd, tuple) else {}
    server = start_server(data_dir, port, extra_env, args.workers)
    failures: list[str] = []
    try:
        cases = [json.dumps({"case": c}).encode() for c in example_cases()]
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def make_det(i: int) -> bytes:
            return http_post("/v1/determinations", cases[i % len(cases)], auth)

        def det_id(body: bytes) -> str | None:
            ident = json.loads(body).get("id")
            return ident if isinstance(ident, str) else None

        async def determinations() -> list[Phase]:
            warm = await run_phase(port, Phase("warm-up"), make_det, det_id, 300, rate=None, concurrency=4)
            opened = await run_phase(
                port,
                Phase(f"POST /v1/determinations open loop {args.rate:.0f}/s"),
                make_det,
                det_id,
                args.requests,
                rate=args.rate,
                concurrency=64,
            )
            closed = await run_phase(
                port,
                Phase(f"POST /v1/determinations closed loop x{args.concurrency}"),
                make_det,
                det_id,
                args.requests,
                rate=None,
                concurrency=args.concurrency,
            )
            return [warm, opened, closed]

        phases = asyncio.run(determinations())
        sent_ok = sum(p.ok for p in phases)
        ids = [i for p in phases for i in p.ids]
        stored = count_rows(db, "determinations", "WHERE pa_request_id IS NULL")
        distinct_stored = count_rows(db, "(SELECT DISTINCT id FROM determinations)")
        for p in phases[1:]:
            print(p.report(TARGET_RATE))
        print(
            f"persisted: {stored} determinations stored for {sent_ok} 2xx answers "
            f"({len(set(ids))} distinct ids returned, {distinct_stored} distinct ids stored)"
        )
        if not (stored == sent_ok == len(set(ids)) == len(ids)):
            failures.append("determinations lost or duplicated")
        if any(s >= 300 for p in phases for s in p.statuses):
            failures.append("non-2xx answers to POST /v1/determinations")
        open_phase = phases[1]
        if open_phase.pct(99) > TARGET_P99_MS:
            failures.append(
                f"p99 {open_phase.pct(99):.1f} ms at {args.rate:.0f}/s is over {TARGET_P99_MS} ms"
            )
        if phases[2].ok / phases[2].wall_s < TARGET_RATE:
            failures.append("sustained throughput under 500/s")

        if isinstance(crd, str):
            print(f"order-sign: skipped: {crd}")
        else:
            _, prepare_sign, read_none = crd
            before = count_rows(db, "determinations")

            async def order_sign() -> list[Phase]:
                warm = await run_phase(
                    port, Phase("warm-up"), prepare_sign(200), read_none, 200, rate=None, concurrency=4
                )
                opened = await run_phase(
                    port,
                    Phase(f"CDS order-sign open loop {args.rate:.0f}/s"),
                    prepare_sign(args.requests),
                    read_none,
                    args.requests,
                    rate=args.rate,
                    concurrency=64,
                )
                closed = await run_phase(
                    port,
                    Phase(f"CDS order-sign closed loop x{args.concurrency}"),
                    prepare_sign(args.requests),
                    read_none,
                    args.requests,
                    rate=None,
                    concurrency=args.concurrency,
                )
                return [warm, opened, closed]

            sign_phases = asyncio.run(order_sign())
            for p in sign_phases[1:]:
                print(p.report(TARGET_RATE))
            added = count_rows(db, "determinations") - before
            sign_ok = sum(p.ok for p in sign_phases)
            print(f"order-sign persisted: {added} determinations stored for {sign_ok} 2xx answers")
            if any(s >= 300 for p in sign_phases for s in p.statuses):
                failures.append("non-2xx answers to order-sign")
            if added < sign_ok:
                failures.append("order-sign determinations lost")
            # Sustained: the open loop keeps up with the target rate, with p99 under the target.
            sign_open = sign_phases[1]
            if sign_open.ok / sign_open.wall_s < 0.98 * args.rate:
                failures.append(f"order-sign ({args.cds_alg}) does not sustain {args.rate:.0f}/s")
            if sign_open.pct(99) > TARGET_P99_MS:
                failures.append(
                    f"order-sign ({args.cds_alg}) p99 {sign_open.pct(99):.1f} ms at {args.rate:.0f}/s is over {TARGET_P99_MS} ms"
                )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.keep:
            print(f"data kept in {data_dir}")
        else:
            for path in sorted(data_dir.glob("*"), reverse=True):
                path.unlink()
            data_dir.rmdir()
    print(f"load average after: {_load()}")
    if failures:
        print("BELOW TARGET: " + "; ".join(failures))
        return 1
    print(
        "target met for POST /v1/determinations and order-sign: >= 500/s sustained, p99 < 50 ms, "
        "none lost or duplicated"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
