"""`POST /v1/determinations` takes an `Idempotency-Key`, like the prior-auth endpoint: a retry gets the
stored determination back, a reused key with another body is refused, concurrent first attempts store
one determination. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from medpolicy.service.testing import INVESTIGATIONAL, MEDICALLY_NECESSARY, LiveServer


def test_a_retry_with_the_same_key_returns_the_same_determination(server: LiveServer) -> None:
    key = f"det-{uuid.uuid4()}"
    headers = server.headers(**{"Idempotency-Key": key})
    before = server.store.count_determinations()
    first = httpx.post(server.url("/v1/determinations"), json={"case": MEDICALLY_NECESSARY}, headers=headers)
    assert first.status_code == 201
    again = httpx.post(server.url("/v1/determinations"), json={"case": MEDICALLY_NECESSARY}, headers=headers)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert server.store.count_determinations() == before + 1
    other = httpx.post(server.url("/v1/determinations"), json={"case": INVESTIGATIONAL}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    # keys are per client: another client's same key is its own
    mine = server.headers(server.other_token, **{"Idempotency-Key": key})
    theirs = httpx.post(server.url("/v1/determinations"), json={"case": INVESTIGATIONAL}, headers=mine)
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


def test_concurrent_first_attempts_store_one_determination(server: LiveServer) -> None:
    headers = server.headers(**{"Idempotency-Key": f"race-{uuid.uuid4()}"})
    before = server.store.count_determinations()

    def attempt(_: int) -> httpx.Response:
        return httpx.post(
            server.url("/v1/determinations"), json={"case": MEDICALLY_NECESSARY}, headers=headers, timeout=60
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert sorted({a.status_code for a in answers}) in ([200, 201], [201])
    assert [a.status_code for a in answers].count(201) == 1
    assert len({a.json()["id"] for a in answers}) == 1
    assert server.store.count_determinations() == before + 1


def test_an_overlong_or_empty_key_is_refused(server: LiveServer) -> None:
    for key in ("k" * 201, ""):
        response = httpx.post(
            server.url("/v1/determinations"),
            json={"case": MEDICALLY_NECESSARY},
            headers=server.headers(**{"Idempotency-Key": key}),
        )
        assert response.status_code == 422
