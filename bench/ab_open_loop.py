"""Paired open-loop latency of two (or more) builds of medpolicy's server, alternating, same minutes.

    .venv/bin/python bench/ab_open_loop.py --variant base=/path/to/other/src --variant new=src \
        [--endpoint order-sign|determinations] [--cds-alg ES384] [--rate 200] [--requests 1500] [--rounds 4]

Each variant is ``NAME=SRC[:ENV=VALUE,...]``: a server started as `bench/load_service.py` starts
medpolicy's (fresh SQLite store, WAL, ``synchronous=FULL``), importing SRC first, with the extra
environment given. All servers run side by side (an idle one costs next to nothing); after a warm-up
each round sends ``--requests`` calls in an open loop at ``--rate`` per second to each server in turn
(the order alternates between rounds), latency from the time each request was due, exactly as
`load_service.py`'s open loop. Prints each round's p50/p99/max and the server's CPU per request, and
per variant the median p99 and how often it was under 20 ms. Wrap it in ``flock /tmp/bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import load_service as ls


def start(src: Path, data_dir: Path, port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    rest = extra.pop("PYTHONPATH_PREFIX", "")
    nice = int(extra.pop("NICE", "0"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (rest, str(src)) if p),
        "MEDPOLICY_DATA_DIR": str(data_dir),
        "MEDPOLICY_CLIENTS": json.dumps({"bench": ls.TOKEN}),
        "MEDPOLICY_CDS_BASE_URL": f"http://127.0.0.1:{port}",
        **extra,
    }
    env.pop("DATABASE_URL", None)
    code = f"from medpolicy.service.run import serve; serve('127.0.0.1', {port}, None, False, 1)"
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    ls.wait_up(proc, port, data_dir / "server.log", "/healthz")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", required=True, help="NAME=SRC[:K=V,...]")
    parser.add_argument("--endpoint", default="order-sign", choices=["order-sign", "determinations"])
    parser.add_argument("--cds-alg", default="ES384", choices=["ES384", "RS384", "ES256"])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warm", type=int, default=1500, help="closed-loop warm-up calls per server")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medpolicy-ab-"))
    servers: list[tuple[str, int, subprocess.Popen[bytes], Any]] = []
    print(f"load average before: {ls._load()}")
    cases = [json.dumps({"case": c}).encode() for c in ls.example_cases()]
    auth = {"Authorization": f"Bearer {ls.TOKEN}"}
    try:
        for spec in args.variant:
            name, _, rest = spec.partition("=")
            src, _, envs = rest.partition(":")
            extra = dict(kv.split("=", 1) for kv in envs.split(",") if kv)
            port = ls.free_port()
            if args.endpoint == "order-sign":
                setup = ls.order_sign_setup(port, args.cds_alg)
                if isinstance(setup, str):
                    raise SystemExit(setup)
                env, make, _bare = setup
                extra = {**env, **extra}
            else:

                def make(_count: int) -> ls.RequestMaker:
                    return lambda i: ls.http_post("/v1/determinations", cases[i % len(cases)], auth)

            proc = start(Path(src).resolve(), root / name, port, extra)
            servers.append((name, port, proc, make))
        for _name, port, _proc, make in servers:
            asyncio.run(
                ls.run_phase(
                    port,
                    ls.Phase("warm"),
                    make(args.warm),
                    lambda _b: None,
                    args.warm,
                    rate=None,
                    concurrency=8,
                )
            )
        p99s: dict[str, list[float]] = {name: [] for name, *_ in servers}
        for r in range(args.rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for name, port, proc, make in order:
                c0, own0 = ls.cpu_seconds(proc.pid), time.process_time()
                phase = asyncio.run(
                    ls.run_phase(
                        port,
                        ls.Phase(f"r{r} {name}"),
                        make(args.requests),
                        lambda _b: None,
                        args.requests,
                        rate=args.rate,
                        concurrency=64,
                    )
                )
                cpu = (ls.cpu_seconds(proc.pid) - c0) / args.requests * 1000
                own = (time.process_time() - own0) / args.requests * 1000
                bad = {s: n for s, n in phase.statuses.items() if not 200 <= s < 300}
                p99s[name].append(phase.pct(99))
                print(
                    f"r{r} {name:<10} p50 {phase.pct(50):6.2f}  p90 {phase.pct(90):6.2f}  p99 {phase.pct(99):7.2f}  "
                    f"max {max(phase.latencies_ms):7.1f} ms  cpu {cpu:.2f} (client {own:.2f}) ms/req  load {os.getloadavg()[0]:.2f}"
                    + (f"  NON-2xx {bad}" if bad else ""),
                    flush=True,
                )
        for name, values in p99s.items():
            under = sum(1 for v in values if v < ls.TARGET_P99_MS)
            print(
                f"{name:<10} p99 median {statistics.median(values):6.2f} ms  "
                f"[{', '.join(f'{v:.1f}' for v in values)}]  under 20 ms: {under} of {len(values)}"
            )
    finally:
        for _name, _port, proc, _make in servers:
            ls.stop(proc)
    print(f"load average after: {ls._load()}; data in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
