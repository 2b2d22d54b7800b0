"""Bounded resources: one client cannot take the server down.

* `/healthz` keeps answering while three maximum-size bad requests are being processed (the heavy
  parsing and checking runs off the event loop).
* 10,000 distinct maximum-size valid and invalid cases keep the server's resident memory growth under
  50 MB (the parser's caches are bounded by entries and hold only small values).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from medpolicy.codes import icd10cm
from medpolicy.limits import LIMITS
from medpolicy.service.testing import LiveServer

MAX_BODY = 1_048_576


def max_size_bad_body(seed: int) -> bytes:
    """Just under the body limit: as many fields and codes as the limits allow, every one invalid."""
    n = LIMITS.max_list_items
    case = {
        f"unknown_{seed}_{i}": [f"Z{seed}{i}{j}".ljust(LIMITS.max_string_chars, "9") for j in range(n)]
        for i in range(LIMITS.max_case_fields - 4)
    }
    case["diagnosis_codes"] = [f"Q{seed}{j}".ljust(12, "7") for j in range(n)]
    body = json.dumps({"case": case}).encode()
    assert len(body) < MAX_BODY
    return body


def test_healthz_answers_while_three_maximum_size_bad_requests_are_processed(server: LiveServer) -> None:
    in_flight = 0
    lock = threading.Lock()
    statuses: list[int] = []

    def big(seed: int) -> None:
        nonlocal in_flight
        with httpx.Client(base_url=server.base_url, headers=server.headers(), timeout=120) as http:
            for round_ in range(4):
                body = max_size_bad_body(seed * 10 + round_)
                with lock:
                    in_flight += 1
                try:
                    response = http.post(
                        "/v1/determinations", content=body, headers={"Content-Type": "application/json"}
                    )
                finally:
                    with lock:
                        in_flight -= 1
                statuses.append(response.status_code)
                assert len(response.content) < 64 * 1024  # the first errors and a count, not 15 MB

    threads = [threading.Thread(target=big, args=(seed,)) for seed in range(1, 4)]
    for t in threads:
        t.start()
    answered_during = 0
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        while any(t.is_alive() for t in threads):
            with lock:
                busy_before = in_flight
            assert http.get("/healthz").status_code == 200
            with lock:
                busy_after = in_flight
            if busy_before and busy_after:
                answered_during += 1
    for t in threads:
        t.join()
    assert statuses == [422] * 12
    assert answered_during >= 1  # /healthz was answered while big requests were being processed


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


REQUESTS = 10_000  # the count: distinct maximum-size cases, half valid, half invalid
WARM_UP = 400
THREADS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _memory_test_body(i: int, rng: random.Random, billable: list[str]) -> bytes:
    """Request `i`: odd ones valid (distinct codes, padded dates, a long label), even ones invalid
    (distinct bad codes and unknown fields); every one near the limits of a case."""
    pad = " " * (i % 150)
    if i % 2:
        case: dict[str, object] = {
            "date_of_service": f"2024-0{1 + i % 9}-1{i % 10}{pad}",
            "procedure_codes": ["77425"],
            "diagnosis_codes": rng.sample(billable, LIMITS.max_list_items),
            "t_stage": [f"pT{1 + i % 4}"] * 10,
            "tumor_site": f"{pad}rectum",
            "label": f"case {i} ".ljust(LIMITS.max_string_chars, "x"),
        }
    else:
        case = {
            "date_of_service": "2024-03-04",
            "diagnosis_codes": [f"X{i}-{j}".ljust(LIMITS.max_string_chars, "q") for j in range(50)],
            **{f"f{i}_{k}": f"v{i}".ljust(LIMITS.max_string_chars, "z") for k in range(90)},
        }
    return json.dumps({"case": case}).encode()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_distinct_maximum_size_cases_keep_memory_growth_under_50_mb(tmp_path: Path) -> None:
    """10,000 distinct maximum-size requests, half valid and half invalid, sent from several
    keep-alive connections at once: the server's resident memory grows by less than 50 MB."""
    port = _free_port()
    token = "memory-test-token-0123456789"
    env = {
        **os.environ,
        "MEDPOLICY_CLIENTS": f"mem:{token}",
        "MEDPOLICY_DATA_DIR": str(tmp_path),
        "MEDPOLICY_SQLITE_SYNCHRONOUS": "OFF",
    }
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "medpolicy", "serve", "--port", str(port), "--public-base-url", base],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        billable = [c for c, kind in icd10cm().kinds.items() if kind == "billable"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        wrong: list[tuple[int, int]] = []

        def send(indexes: range | list[int], seed: int) -> None:
            # http.client: a cheap client, so that the server, not the test, gets the CPU
            rng = random.Random(seed)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                for i in indexes:
                    conn.request("POST", "/v1/determinations", _memory_test_body(i, rng, billable), headers)
                    response = conn.getresponse()
                    response.read()
                    if response.status != (201 if i % 2 else 422):
                        wrong.append((i, response.status))
            finally:
                conn.close()

        send(range(WARM_UP), 0)  # warm up: code tables, pools, allocator arenas
        baseline = _rss_kb(proc.pid)
        threads = [
            threading.Thread(target=send, args=(list(range(WARM_UP + t, WARM_UP + REQUESTS, THREADS)), t + 1))
            for t in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        grown_mb = (_rss_kb(proc.pid) - baseline) / 1024
        print(f"resident memory growth over {REQUESTS} maximum-size requests: {grown_mb:.1f} MB")
        assert wrong == []
        assert grown_mb < 50
    finally:
        proc.terminate()
        proc.wait(30)
