"""Benchmark (b): end to end through `medpolicy decide`, JSON lines in and determinations out, on one core,
as a ratio to a bare JSON-lines copy measured beside it.

Generates 100,000 mixed cases (every version, unknowns, several sites) and times, alternately, the real
command as a subprocess and a baseline subprocess that only reads each line as JSON and writes it back
with the JSON library the CLI uses (orjson), process start-up included in both (the floor of any
JSON-lines tool in Python). Each keeps its best of ``REPEAT`` runs. Target: medpolicy at least 0.60 of
the copy's rate, counted in cases per CPU second of each process (on a shared machine a process that
waits for a busy core is not slower; the wall-clock ratio is printed beside it). Absolute rates, the
machine and its load average are printed too.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen import cases

N = int(os.environ.get("BENCH_N", "100000"))
REPEAT = 3
TARGET = 0.60  # medpolicy decide / orjson copy
ROOT = Path(__file__).resolve().parents[1]
BASELINE = (
    "import sys\nfrom orjson import dumps, loads\nw = sys.stdout.buffer.write\n"
    "for line in open(sys.argv[1], 'rb'):\n    w(dumps(loads(line)) + b'\\n')\n"
)


def pin() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def timed(cmd: list[str], out: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of the child. On a shared machine wall time
    also counts waiting for the core; CPU time does not."""
    with out.open("w") as sink:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        r = subprocess.run(cmd, stdout=sink, stderr=subprocess.PIPE, text=True, preexec_fn=pin, check=False)
        secs = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({r.returncode}): {r.stderr[-500:]}")
    return secs, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def compile_package() -> None:
    """Compile medpolicy's modules to bytecode once, as ``pip install`` does for an installed package.
    An editable install with ``PYTHONDONTWRITEBYTECODE`` set (as on these machines) would otherwise
    compile every module again in every run, and the runs would time the compiler."""
    import compileall

    import medpolicy

    compileall.compile_dir(str(Path(medpolicy.__file__).parent), quiet=1)


def main() -> int:
    compile_package()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "cases.jsonl"), Path(tmp, "out.jsonl")
        with src.open("w") as f:
            for c in cases(N):
                f.write(json.dumps(c) + "\n")
        medpolicy = [sys.executable, "-m", "medpolicy", "decide", str(src)]
        copy = [sys.executable, "-c", BASELINE, str(src)]
        runs: dict[str, list[tuple[float, float]]] = {"copy": [], "medpolicy": []}
        for _ in range(REPEAT):
            runs["copy"].append(timed(copy, Path(tmp, "base.jsonl")))
            runs["medpolicy"].append(timed(medpolicy, out))
        lines = out.read_text().splitlines()
        outcomes = [json.loads(x).get("outcome", "error") for x in lines]
        if len(lines) != N or "error" in outcomes:
            print(f"FAIL: {len(lines)} lines out for {N} in, {outcomes.count('error')} errors")
            return 1
        copied = Path(tmp, "base.jsonl").read_bytes().count(b"\n")
        if copied != N:
            print(f"FAIL: the baseline copied {copied} lines of {N}")
            return 1
    secs, cpu = min(s for s, _ in runs["medpolicy"]), min(c for _, c in runs["medpolicy"])
    base, base_cpu = min(s for s, _ in runs["copy"]), min(c for _, c in runs["copy"])
    rate, base_rate, cpu_rate = N / secs, N / base, N / cpu
    ratio = base_cpu / cpu  # (N / cpu) / (N / base_cpu): cases per CPU second over the copy's lines
    wall_ratio = rate / base_rate
    load_after = os.getloadavg()
    result = {
        "cases": N,
        "seconds": round(secs, 3),
        "cases_per_s": round(rate),
        "cases_per_cpu_s": round(cpu_rate),
        "copy_baseline_per_s": round(base_rate),
        "copy_baseline_per_cpu_s": round(N / base_cpu),
        "ratio_to_copy_cpu": round(ratio, 3),
        "ratio_to_copy_wall_clock": round(wall_ratio, 3),
        "target_ratio": TARGET,
        "meets_target": ratio >= TARGET,
        "load_average": [load_before, load_after],
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, pinned to one",
    }
    print(
        f"(b) end to end: medpolicy decide on {N:,} JSON lines (all versions, mixed), one core, best of {REPEAT} "
        "alternating runs"
    )
    print(
        f"    machine: {result['machine']}, Python {platform.python_version()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(
        f"    medpolicy decide     : {rate:>10,.0f} cases/s  ({secs:.2f} s, start-up included; {cpu_rate:,.0f} per CPU second)"
    )
    print(
        f"    orjson copy baseline : {base_rate:>10,.0f} lines/s  ({base:.2f} s, read + write only; {N / base_cpu:,.0f} per CPU second)"
    )
    print(
        f"    RATIO decide/copy    : {ratio:.3f}   target >= {TARGET:.2f}   {'MET' if ratio >= TARGET else 'NOT MET'}"
        f"   (per CPU second; by wall clock: {wall_ratio:.3f})"
    )
    outdir = Path(__file__).parent / "out"
    outdir.mkdir(exist_ok=True)
    (outdir / "cli.json").write_text(json.dumps(result, indent=2))
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
