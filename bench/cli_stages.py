"""Where the time of `medpolicy decide cases.jsonl` goes: start-up, then per line parse, validate + decide,
render and write (a companion to cli_bench.py, for docs/benchmarks.md).

Start-up is the CPU time of whole processes (best of ``REPEAT``, pinned to one core): ``python -c pass``,
the orjson copy of cli_bench on a one-line file, and `medpolicy decide` on the same file (the fast start
of ``medpolicy.cli_jsonl``, and the full CLI for comparison). The per-line stages are timed inside one
process running the same loop as ``cli_jsonl.decide_jsonl`` over the same 100,000 generated lines, with
a clock read between stages (its own cost, measured, is subtracted); each stage's share of the loop's
CPU time is reported in microseconds per line. Run: PYTHONPATH=src python bench/cli_stages.py
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cli_bench import BASELINE, pin
from gen import cases

N = int(os.environ.get("BENCH_N", "100000"))
REPEAT = 5


def cpu_of(cmd: list[str], env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, preexec_fn=pin, check=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best


def start_up(one: Path) -> dict[str, float]:
    full_cli = {**os.environ, "FORCE_COLOR": ""}  # the fast start declines; no terminal for Rich
    return {
        "python -c pass": cpu_of([sys.executable, "-c", "pass"]),
        "orjson copy, 1 line": cpu_of([sys.executable, "-c", BASELINE, str(one)]),
        "medpolicy decide, 1 line (fast start)": cpu_of(
            [sys.executable, "-m", "medpolicy", "decide", str(one)]
        ),
        "medpolicy decide, 1 line (full CLI)": cpu_of(
            [sys.executable, "-m", "medpolicy", "decide", str(one)], env=full_cli
        ),
    }


def stages(src: Path) -> dict[str, float]:
    """Per-line microseconds of each stage, in one process, as `decide_jsonl` runs them."""
    from medpolicy import strictjson
    from medpolicy.deciding import decider
    from medpolicy.policy import load_policies

    decide_one = decider(load_policies(None))
    loads = strictjson.loads
    clock = time.perf_counter_ns
    gc.freeze()  # as the fast start does
    spent = dict.fromkeys(("read", "parse", "validate + decide", "render", "write"), 0)
    sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 -- closed below
    block: list[str] = []
    cpu = time.process_time()
    t = clock()
    with src.open("rb") as lines:
        for line in lines:
            t1 = clock()
            raw = loads(line)
            t2 = clock()
            d = decide_one(raw)
            t3 = clock()
            block.append(d.to_json(detail="compact"))
            t4 = clock()
            if len(block) >= 512:
                block.append("")
                sink.write("\n".join(block))
                block.clear()
            t5 = clock()
            spent["read"] += t1 - t
            spent["parse"] += t2 - t1
            spent["validate + decide"] += t3 - t2
            spent["render"] += t4 - t3
            spent["write"] += t5 - t4
            t = clock()
    block.append("")
    sink.write("\n".join(block))
    sink.close()
    cpu = time.process_time() - cpu
    # The cost of one clock read, to take out of each stage (one read per stage boundary).
    reads = 100_000
    c0 = clock()
    for _ in range(reads):
        clock()
    per_read = (clock() - c0) / reads
    timed = {k: max(0.0, v / N - per_read) / 1000 for k, v in spent.items()}
    total = sum(timed.values())
    # Scale wall-clock shares to the loop's CPU time (the machine is shared: waits are not work).
    scale = cpu * 1e6 / N / total if total else 1.0
    out = {k: round(v * scale, 2) for k, v in timed.items()}
    out["loop total (CPU)"] = round(cpu * 1e6 / N, 2)
    return out


def main() -> int:
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        src, one = Path(tmp, "cases.jsonl"), Path(tmp, "one.jsonl")
        with src.open("w") as f:
            for c in cases(N):
                f.write(json.dumps(c) + "\n")
        one.write_text(src.open().readline())
        starts = start_up(one)
        copy_all = cpu_of([sys.executable, "-c", BASELINE, str(src)])
        per_line = stages(src)
    print(f"start-up, CPU seconds (best of {REPEAT}; load average {load[0]:.2f}):")
    for k, v in starts.items():
        print(f"    {k:40s} {v:.3f}")
    print(f"per line over {N:,} lines, CPU microseconds (one process, the loop of decide_jsonl):")
    for k, v in per_line.items():
        print(f"    {k:40s} {v:6.2f}")
    copy_per_line = (copy_all - starts["orjson copy, 1 line"]) / N * 1e6
    print(
        f"the orjson copy: {copy_all:.3f} s CPU on {N:,} lines, {copy_per_line:.2f} us per line after start-up"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
