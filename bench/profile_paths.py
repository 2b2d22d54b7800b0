"""Where the time goes: profiles of the validated path and of one `POST /v1/determinations` call.

    .venv/bin/python bench/profile_paths.py [validated|v1|both|instructions] [--n 20000] [--top 25]

- ``validated``: ``decider(policies)`` on generated current-version cases (raw dicts), after one
  warm-up pass, under cProfile with the thread's CPU clock;
- ``v1 --split``: the event loop's CPU per call (best of 7 blocks, unprofiled) for the whole call,
  without the store (nothing submitted), and for the service layer alone (a stub answer);
- ``instructions``: the engine bench's two loops (the engine alone on validated cases, ``decider`` on the
  raw dicts) counted by valgrind's cachegrind: instructions and simulated cache misses per case, the
  last level set to this CPU's L2 (``--ll``). Deterministic, unlike timings on a shared machine whose
  speed drifts between rounds: each loop is counted as the difference between a run that sets up
  and runs it once and one that only sets up (``PYTHONHASHSEED=0`` in both). Needs valgrind; four
  runs of one to three minutes each at ``--n 100000``;
- ``v1``: the ASGI app of `medpolicy.service.app.create_app` called in process (no sockets, no
  uvicorn: what the bare baseline shares is left out) with the bench's request, SQLite store in a
  temporary folder, under cProfile with the event-loop thread's CPU clock (the store's writer thread
  commits in the background and is not counted).

Prints the functions with the most own time, and the CPU time per call with and without the
profiler. The figures in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from gen import cases

TOKEN = "bench-client-token-0123456789abcdef"  # noqa: S105 - a throwaway token for an in-process benchmark


def show(profile: cProfile.Profile, calls: int, top: int, sort: str = "tottime") -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats(sort).print_stats(top)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"  profiled: {total / calls * 1e6:.1f} us CPU per call (the profiler's own cost included)")
    print(out.getvalue().split("\n", 4)[-1])


def validated(n: int, top: int) -> None:
    from medpolicy import load_policies
    from medpolicy.deciding import decider

    policies = load_policies()
    one = decider(policies)
    raw = cases(n, current_only=True)
    for _ in range(2):  # a combination is learnt the second time it comes (medpolicy.case_combos)
        for c in raw:
            one(c)
    gc.collect()
    t = time.thread_time()
    for c in raw:
        one(c).trace  # noqa: B018 -- as the engine bench measures it
    plain = time.thread_time() - t
    print(f"validated path (decider), {n:,} cases: {plain / n * 1e6:.2f} us CPU per case unprofiled")
    from medpolicy.case import parser_for
    from medpolicy.engine import engine_for

    policy = policies.get("bluekc-iort")  # the policy the generated cases route to
    parser, engine = parser_for(policy), engine_for(policy)
    checked = [parser.parse(c, None) for c in raw]
    for case in checked:
        engine.decide(case)
    steps: dict[str, Callable[[dict[str, Any]], Any]] = {
        "parse (shapes, replay)": lambda c: parser.parse(c, None),
        "reference parser": lambda c: parser.reference(c, None),
    }
    for label, fn in steps.items():
        for c in raw:  # warm: the second pass is timed
            fn(c)
        t = time.thread_time()
        for c in raw:
            fn(c)
        print(f"  {label}: {(time.thread_time() - t) / n * 1e6:.2f} us")
    t = time.thread_time()
    for case in checked:
        engine.decide(case)
    print(f"  the engine alone: {(time.thread_time() - t) / n * 1e6:.2f} us")
    f = parser.finishes
    if f is not None:
        print(f"  finish replayed {f.hits:,} times, run {f.misses:,} times; {len(f.table):,} kept")
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    for c in raw:
        one(c).trace  # noqa: B018
    profile.disable()
    show(profile, n, top)


def counted(which: str, loops: int, n: int) -> None:
    """Set up one of the engine bench's loops as it does (the decider warmed by three passes, the
    engine's tables filled), then run it ``loops`` times: what cachegrind counts."""
    from medpolicy import engine_for, load_policies
    from medpolicy.case import parser_for
    from medpolicy.deciding import decider

    policies = load_policies()
    raw = cases(n, current_only=True)
    if which == "engine":
        policy = policies.get("bluekc-iort")
        reference = parser_for(policy).reference
        checked = [reference(c, None) for c in raw]
        decide = engine_for(policy).decide
        for case in checked:
            decide(case)
        for _ in range(loops):
            for case in checked:
                decide(case).trace  # noqa: B018 -- as the engine bench measures it
        return
    one = decider(policies)
    for _ in range(3):
        for c in raw:
            one(c)
    for _ in range(loops):
        for c in raw:
            one(c).trace  # noqa: B018 -- as above


def _l2_bytes() -> int:
    """This CPU's L2 cache size (512 KB when it cannot be read, or is not a power of two as
    cachegrind needs)."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
        size = int(text.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
    except (OSError, ValueError):
        return 512 << 10
    return size if size > 0 and size & (size - 1) == 0 else 512 << 10


def instructions(n: int, ll: int) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("instructions: valgrind is not installed (apt-get install valgrind)")
        return
    print(f"cachegrind, {n:,} current-version cases, last level {ll // 1024} KB 8-way (per case):")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    per_case: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="medpolicy-cachegrind-") as tmp:
        for which in ("engine", "validated"):
            totals = []
            for loops in (0, 1):
                out = Path(tmp) / f"{which}.{loops}"
                command = [
                    valgrind,
                    "--tool=cachegrind",
                    "--cache-sim=yes",
                    f"--LL={ll},8,64",
                    f"--cachegrind-out-file={out}",
                    sys.executable,
                    __file__,
                    "_count",
                    "--which",
                    which,
                    "--loops",
                    str(loops),
                    "--n",
                    str(n),
                ]
                subprocess.run(command, check=True, capture_output=True, env=env)
                lines = out.read_text().splitlines()
                events = next(x for x in lines if x.startswith("events:")).split()[1:]
                summary = next(x for x in lines if x.startswith("summary:")).split()[1:]
                totals.append(dict(zip(events, map(int, summary), strict=True)))
            got = {k: (totals[1][k] - totals[0][k]) / n for k in totals[0]}
            per_case[which] = got
            print(
                f"  {which:9s}: {got['Ir']:8,.0f} instructions, {got['D1mr'] + got['D1mw']:6.1f} L1 data misses, "
                f"{got['DLmr'] + got['DLmw']:5.1f} last-level (L2) misses"
            )
    print(
        f"  engine / validated, by instructions: {per_case['engine']['Ir'] / per_case['validated']['Ir']:.3f}"
    )


def v1(n: int, top: int, split_parts: bool = False) -> None:
    tmp = tempfile.mkdtemp(prefix="medpolicy-profile-")
    os.environ["MEDPOLICY_DATA_DIR"] = tmp
    os.environ["MEDPOLICY_CLIENTS"] = json.dumps({"bench": TOKEN})
    os.environ.pop("DATABASE_URL", None)
    from medpolicy.service.app import create_app
    from medpolicy.service.settings import Settings
    from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY

    app = create_app(Settings.from_env())
    bodies = [
        json.dumps({"case": c}).encode() for c in (MEDICALLY_NECESSARY, INVESTIGATIONAL, INFORMATION_NEEDED)
    ]
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
    ]
    statuses: dict[int, int] = {}

    async def call(body: bytes) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/determinations",
            "raw_path": b"/v1/determinations",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def run(count: int, profile: cProfile.Profile | None) -> float:
        t = time.thread_time()
        if profile is not None:
            profile.enable()
        for i in range(count):
            await call(bodies[i % len(bodies)])
        if profile is not None:
            profile.disable()
        return time.thread_time() - t

    async def split() -> None:
        """The loop's CPU per call with parts of the call taken away (best of 7 blocks each)."""
        from medpolicy.service import v1 as v1_module

        whole = v1_module._determine

        async def without_store(case: dict[str, Any], policy_id: str | None, store: Any, client: Any) -> Any:
            determination = store.decide(case, policy_id=policy_id)
            record, _values = store._rendered_values(case, determination, client_id=client.client_id)
            location = {"Location": f"/v1/determinations/{record.id}"}
            return v1_module.RenderedJSONResponse(record.to_json(), status_code=201, headers=location)

        async def service_only(*_args: Any) -> Any:
            return v1_module.JSONResponse({"id": "det_x"}, status_code=201)

        block = max(1, n // 7)
        for label, body_fn in (
            ("the whole call", whole),
            ("without the store (decide, row values, answer; nothing submitted)", without_store),
            ("the service layer alone (middleware, fast path, token, JSON; a stub answer)", service_only),
        ):
            v1_module._determine = body_fn  # type: ignore[assignment]
            await run(300, None)
            best = min([await run(block, None) for _ in range(7)])
            print(f"  {label}: {best / block * 1e6:.0f} us")
        v1_module._determine = whole

    async def main() -> None:
        async with app.router.lifespan_context(app):
            if split_parts:
                await split()
                return
            await run(300, None)
            block = max(1, n // 5)  # the best of five blocks: other processes' load only adds
            plain = min([await run(block, None) for _ in range(5)])
            print(
                f"POST /v1/determinations in process, {n:,} calls, one at a time: "
                f"{plain / block * 1e6:.0f} us CPU per call on the event loop, unprofiled (best of 5 blocks)"
            )
            profile = cProfile.Profile(time.thread_time)
            await run(n, profile)
            show(profile, n, top)
            show(profile, n, top, "cumulative")

    asyncio.run(main())
    print(f"  statuses: {statuses}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "what", nargs="?", default="both", choices=["validated", "v1", "both", "instructions", "_count"]
    )
    parser.add_argument("--n", type=int, default=20000, help="cases (validated) or calls (v1; a tenth)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--split",
        action="store_true",
        help="v1: the loop's CPU per call whole, without the store, and of the service layer alone",
    )
    parser.add_argument("--ll", type=int, default=_l2_bytes(), help="instructions: last-level cache bytes")
    parser.add_argument("--which", default="validated", help=argparse.SUPPRESS)
    parser.add_argument("--loops", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what == "_count":  # one run under cachegrind (``instructions``)
        counted(args.which, args.loops, args.n)
        return 0
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.what == "instructions":
        instructions(args.n, args.ll)
        return 0
    if args.what in ("validated", "both"):
        validated(args.n, args.top)
    if args.what in ("v1", "both"):
        v1(max(1, args.n // 10), args.top, args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
