"""How `POST /v1/determinations` throughput grows with server processes on PostgreSQL.

    .venv/bin/python bench/workers_pg.py [--workers 1,2,3,4] [--requests 3000] [--concurrency 16]
                                         [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

For each worker count: a fresh schema in the database, `medpolicy serve --workers N` on it
(`medpolicy.service.run.serve`), a warm-up, then a closed loop at ``--concurrency`` connections from
the same light client as `load_service.py`; the rows are counted afterwards (every 2xx answer one
stored determination). Prints a table of throughput against processes, with the machine and its load.
Not part of `make bench` (it needs a PostgreSQL server); the figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from load_service import (
    TOKEN,
    Phase,
    _load,
    example_cases,
    free_port,
    http_post,
    run_phase,
    start_server,
    stop,
)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", default="1,2,3,4", help="comma-separated worker counts (default 1,2,3,4)"
    )
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests of each closed loop (default 3000)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="connections (default 16)")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--database-url", default=os.environ.get("MEDPOLICY_BENCH_PG_URL", DEFAULT_URL))
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; store: "
        f"PostgreSQL; client: {args.concurrency} connections, closed loop; load average before: {_load()}"
    )
    admin = sa.create_engine(args.database_url)
    cases = [json.dumps({"case": c}).encode() for c in example_cases()]
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def make(i: int) -> bytes:
        return http_post("/v1/determinations", cases[i % len(cases)], auth)

    def read_id(body: bytes) -> str | None:
        ident = json.loads(body).get("id")
        return ident if isinstance(ident, str) else None

    rows: list[tuple[int, float, float, float]] = []
    failed = False
    for n in counts:
        schema = f"medpolicy_bench_{secrets.token_hex(4)}"
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(args.database_url).update_query_dict({"options": f"-csearch_path={schema}"})
        data_dir = Path(tempfile.mkdtemp(prefix="medpolicy-bench-pg-"))
        port = args.port or free_port()
        server = start_server(data_dir, port, {}, n, url.render_as_string(hide_password=False))
        try:

            async def drive(port: int = port, n: int = n) -> Phase:
                await run_phase(
                    port, Phase("warm-up"), make, read_id, 400, rate=None, concurrency=args.concurrency
                )
                return await run_phase(
                    port,
                    Phase(f"{n} worker(s)"),
                    make,
                    read_id,
                    args.requests,
                    rate=None,
                    concurrency=args.concurrency,
                )

            phase = asyncio.run(drive())
            with admin.connect() as conn:
                count = f'SELECT count(*) FROM "{schema}".determinations'  # noqa: S608 - our own schema name
                stored = conn.execute(sa.text(count)).scalar_one()
            ok = phase.ok
            print(f"  {phase.report()}  stored {stored} (of {ok + 400} sent)")
            if stored != ok + 400 or ok != args.requests:
                failed = True
            rows.append((n, ok / phase.wall_s, phase.pct(50), phase.pct(99)))
        finally:
            stop(server)
            shutil.rmtree(data_dir, ignore_errors=True)
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
    print(f"load average after: {_load()}")
    print("| processes | determinations/s | vs 1 process | p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|---:|")
    for n, rate, p50, p99 in rows:
        print(f"| {n} | {rate:,.0f} | {rate / rows[0][1]:.2f} | {p50:.1f} | {p99:.1f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
