"""Benchmark (a): the engine deciding 100,000 already-validated cases, trace included, beside a
hand-written if/else function for the same current rule, in the same process on one core.

Prints rates and the ratio (target: the engine at least 1/3 of the hand-written rate). The hand-written
function also serves as an oracle: both must agree on every case, or the benchmark fails.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from gen import cases

from medpolicy import Case, decide_case, engine_for, load_policies, parse_case

N = 100_000
REPEAT = 5
TARGET = 1 / 3

IORT = frozenset({"77424", "77425", "77469"})
POSITIVE_OR_CLOSE = frozenset({"close", "positive", "gross_residual"})
T4 = frozenset({"T4", "T4a", "T4b"})


def handwritten(v: Mapping[str, Any]) -> str:
    """The 2009-10-06 rule by hand, three-valued, no trace."""
    procs = v.get("procedure_codes")
    if procs is None:
        return "information_needed"
    if procs.isdisjoint(IORT):
        return "not_applicable"
    site = v.get("tumor_site")
    rectal = None if site is None else site == "rectum"
    if rectal is False:
        return "investigational"
    m = v.get("margin_status")
    margin = None if m is None else m in POSITIVE_OR_CLOSE
    if margin is False:
        return "investigational"
    t = v.get("t_stage")
    t4 = None if t is None else not t.isdisjoint(T4)
    r = v.get("recurrent")
    if t4 is False and r is False:
        return "investigational"
    if rectal and margin and (t4 or r):
        return "medically_necessary"
    return "information_needed"


def best(fn: Callable[[], None]) -> float:
    times = []
    for _ in range(REPEAT):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    policy = load_policies().get("bluekc-iort")
    validated: list[Case] = [parse_case(c, policy) for c in cases(N, current_only=True)]
    values = [c.values for c in validated]

    t = time.perf_counter()
    first = [decide_case(c, policy) for c in validated]
    cold = time.perf_counter() - t
    mismatches = [
        (c.display, d.outcome.value, handwritten(c.values))
        for c, d in zip(validated, first, strict=True)
        if d.outcome.value != handwritten(c.values)
    ]
    if mismatches:
        print(f"FAIL: engine and hand-written rule disagree on {len(mismatches)} cases, e.g. {mismatches[0]}")
        return 1
    assert all(d.trace for d in first), "every determination carries its trace"

    decide = engine_for(policy).decide

    def run_engine() -> None:
        for c in validated:
            decide(c).trace  # noqa: B018 -- the trace is part of what is measured

    def run_hand() -> None:
        for v in values:
            handwritten(v)

    engine_s, hand_s = best(run_engine), best(run_hand)
    engine_rate, hand_rate, cold_rate = N / engine_s, N / hand_s, N / cold
    ratio = engine_rate / hand_rate
    from collections import Counter

    mix = Counter(d.outcome.value for d in first)
    result = {
        "cases": N,
        "outcome_mix": dict(mix),
        "handwritten_per_s": round(hand_rate),
        "engine_per_s": round(engine_rate),
        "engine_first_pass_per_s": round(cold_rate),
        "ratio": round(ratio, 3),
        "target_ratio": round(TARGET, 3),
        "meets_target": ratio >= TARGET,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, pinned to one",
    }
    print(f"(a) engine vs hand-written, {N:,} validated current-version cases, one core, best of {REPEAT}")
    print(f"    outcome mix: {dict(mix)}")
    print(f"    hand-written if/else : {hand_rate:>12,.0f} decisions/s")
    print(
        f"    engine, trace incl.  : {engine_rate:>12,.0f} decisions/s   (first pass, building its key table: {cold_rate:,.0f}/s)"
    )
    print(
        f"    ratio engine/hand    : {ratio:.3f}   target >= {TARGET:.3f}   {'MET' if ratio >= TARGET else 'NOT MET'}"
    )
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "engine.json").write_text(json.dumps(result, indent=2))
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
