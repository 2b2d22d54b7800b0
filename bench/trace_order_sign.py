"""Where an order-sign call's time goes under an open loop: a tracing run of medpolicy's server alone.

    .venv/bin/python bench/trace_order_sign.py [--rate 190] [--requests 3000] [--closed N] [--cds-alg ES384]

Starts medpolicy's server as `bench/load_service.py` does, with the bench-only tracer of
`bench/servetrace/sitecustomize.py` loaded (``--no-trace``: without it), warms it up, then sends
``--requests`` CDS order-sign calls in an open loop at ``--rate`` per second (or a closed loop over
``--closed`` connections). Prints the latencies, the server's CPU per request by thread (user and
system, with context switches: the cost of wake-ups), and what the tracer saw: group-commit batch
sizes and durations, WAL checkpoints, garbage collections, event-loop lag and the time in the JWT
check and in building the answer. A wall-clock load run: wrap it in ``flock /tmp/bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import load_service as ls


def thread_times(pid: int) -> dict[str, tuple[float, float, int, int]]:
    """tid -> (user s, system s, voluntary, involuntary context switches) of each thread."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = dict(
                line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        out[task.name] = (
            int(fields[11]) / tick,
            int(fields[12]) / tick,
            int(status["voluntary_ctxt_switches"]),
            int(status["nonvoluntary_ctxt_switches"]),
        )
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def summary(trace: dict[str, Any], since: float) -> None:
    batches = [b for b in trace["batch"] if b[0] >= since]
    sizes = Counter(b[1] for b in batches)
    ms = [b[2] for b in batches]
    print(f"group commit: {len(batches)} transactions, rows per transaction {dict(sorted(sizes.items()))}")
    print(
        f"  transaction ms (with the WAL sync): p50 {pct(ms, 50):.2f} p99 {pct(ms, 99):.2f} max {max(ms):.1f}"
    )
    cps = [c[1] for c in trace["checkpoint"] if c[0] >= since]
    if cps:
        print(f"WAL checkpoints: {len(cps)}, ms p50 {pct(cps, 50):.1f} max {max(cps):.1f}")
    for gen in (0, 1, 2):
        runs = [g[2] for g in trace["gc"] if g[0] >= since and g[1] == gen]
        if runs:
            print(
                f"gc generation {gen}: {len(runs)} collections, {sum(runs):.1f} ms in all, longest {max(runs):.1f} ms"
            )
    lags = [x[1] for x in trace["lag"] if x[0] >= since]
    print(f"event-loop lag > 3 ms: {len(lags)} times, > 10 ms: {sum(1 for x in lags if x > 10)}")
    for stage in ("verify", "answer"):
        values = trace[stage]
        print(f"{stage}: mean {sum(values) / len(values):.2f} ms, p99 {pct(values, 99):.2f} ms")
    req = [r[1] for r in trace["req"] if r[0] >= since]
    print(f"in call_service (with the commit wait): p50 {pct(req, 50):.2f} p99 {pct(req, 99):.2f} ms")
    calls = sorted((p for p in trace.get("parts", []) if p[0] >= since), key=lambda p: p[4])
    if calls:
        slow = calls[-max(1, len(calls) // 100) :]  # the slowest 1%
        for label, chosen in (("all calls", calls), ("the slowest 1%", slow)):
            n = len(chosen)
            verify, answer, commit, total = (sum(p[i] for p in chosen) / n for i in (1, 2, 3, 4))
            print(
                f"{label} ({n}), mean ms: JWT check {verify:.2f}, answer {answer:.2f}, commit wait "
                f"{commit:.2f}, the rest of call_service {total - verify - answer - commit:.2f}; in all {total:.2f}"
            )
        slowest(trace, slow)


def slowest(trace: dict[str, Any], slow: list[list[float]]) -> None:
    """The slowest calls in bursts (calls that started within 0.2 s of each other), and what ran
    meanwhile: WAL checkpoints, garbage collections, the longest transactions, event-loop lag."""
    bursts: list[list[list[float]]] = []
    for call in sorted(slow):
        if bursts and call[0] - bursts[-1][-1][0] < 0.2:
            bursts[-1].append(call)
        else:
            bursts.append([call])
    for burst in bursts:
        a, b = burst[0][0] - 0.05, max(c[0] + c[4] / 1000 for c in burst)
        cps = [round(c[1], 1) for c in trace["checkpoint"] if c[0] < b and c[0] + c[1] / 1000 > a]
        gcs = [f"gen{g[1]} {g[2]:.1f}" for g in trace["gc"] if a < g[0] < b and g[2] > 0.5]
        txns = sorted(round(t[2], 1) for t in trace["batch"] if t[0] < b and t[0] + t[2] / 1000 > a)[-3:]
        lags = sorted(round(x[1], 1) for x in trace["lag"] if a < x[0] < b)[-3:]
        print(
            f"  burst of {len(burst)} slow calls over {(b - a) * 1000:.0f} ms: longest {max(c[4] for c in burst):.0f} "
            f"ms (commit wait {max(c[3] for c in burst):.0f}); meanwhile checkpoints (ms) {cps}, gc > 0.5 ms "
            f"{gcs}, longest transactions (ms) {txns}, largest loop lags (ms) {lags}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=190.0)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--closed", type=int, default=0, help="a closed loop over N connections instead")
    parser.add_argument("--cds-alg", default="ES384", choices=["ES384", "RS384", "ES256"])
    parser.add_argument("--no-trace", action="store_true", help="the server without the tracer")
    parser.add_argument(
        "--src", type=Path, default=None, help="the medpolicy source folder the server imports"
    )
    parser.add_argument("--warm", type=int, default=600, help="closed-loop calls before the measured loop")
    args = parser.parse_args()
    if args.src is not None:
        ls.SERVER_SRC[0] = args.src.resolve()
    data_dir = Path(tempfile.mkdtemp(prefix="medpolicy-trace-"))
    port = ls.free_port()
    setup = ls.order_sign_setup(port, args.cds_alg)
    if isinstance(setup, str):
        raise SystemExit(setup)
    env, make, _bare = setup
    out = data_dir / "trace.json"
    extra = dict(env)
    if not args.no_trace:
        extra["MEDPOLICY_BENCH_TRACE"] = str(out)
        rest = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(Path(__file__).parent / "servetrace") + (
            os.pathsep + rest if rest else ""
        )
    print(f"load average before: {ls._load()}")
    server = ls.start_server(data_dir, port, extra)
    try:
        warm = ls.Phase("warm-up")
        asyncio.run(
            ls.run_phase(port, warm, make(args.warm), lambda _b: None, args.warm, rate=None, concurrency=8)
        )
        since = time.perf_counter()  # the same clock as the server's (CLOCK_MONOTONIC)
        before = thread_times(server.pid)
        name = f"closed loop x{args.closed}" if args.closed else f"open loop {args.rate:.0f}/s"
        phase = asyncio.run(
            ls.run_phase(
                port,
                ls.Phase(name),
                make(args.requests),
                lambda _b: None,
                args.requests,
                rate=None if args.closed else args.rate,
                concurrency=args.closed or 64,
            )
        )
        after = thread_times(server.pid)
        print(phase.report())
        n = len(phase.latencies_ms)
        if not args.no_trace:
            os.kill(server.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 30  # a loaded machine takes a while to write a few MB
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        names = json.loads(out.read_text()).get("threads", {}) if out.exists() else {}
        total = 0.0
        for tid, (user, system, vol, invol) in sorted(after.items()):
            u0, s0, v0, i0 = before.get(tid, (0.0, 0.0, 0, 0))
            cpu = (user - u0) + (system - s0)
            total += cpu
            if cpu > 0 or vol - v0 > 10:
                label = names.get(tid, "MainThread" if tid == str(server.pid) else "?")
                print(
                    f"  {label:<28} {cpu / n * 1000:6.3f} ms CPU/request (user {(user - u0) / n * 1000:.3f}, "
                    f"system {(system - s0) / n * 1000:.3f}), context switches {(vol - v0) / n:.1f} "
                    f"voluntary, {(invol - i0) / n:.1f} involuntary per request"
                )
        print(f"server CPU per request: {total / n * 1000:.2f} ms")
        if out.exists():
            summary(json.loads(out.read_text()), since)
    finally:
        ls.stop(server)
    print(f"load average after: {ls._load()}; data in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
