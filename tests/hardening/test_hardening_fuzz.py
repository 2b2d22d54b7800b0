"""Fuzzing in the suite, on SQLite and PostgreSQL.

* Schemathesis, from the service's own OpenAPI document: every operation, positive and negative
  examples, with a valid token, without one, and with a wrong one.
* A hypothesis fuzzer of case JSON: real cases (the policies' example cases) mutated at the value
  level (odd values put in place of facts) and at the byte level (bytes flipped, cut, repeated).

Both assert what a client relies on: never a 5xx, never a closed keep-alive connection (only the
413/431 refusals of oversized input close it, on purpose), and every error in the documented shape
(ours, or a FHIR OperationOutcome under /fhir). Examples are bounded to fit CI.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from medpolicy.service.run import demo_cases
from medpolicy.service.testing import LiveServer

EXAMPLES_PER_OPERATION = 8
FUZZ_EXAMPLES = 150
CLOSING = {413, 431}


def check_answer(path: str, status: int, headers: Any, body: bytes) -> None:
    assert status < 500, (path, status, body[:300])
    if status not in CLOSING:
        assert headers.get("connection", "").lower() != "close", (path, status)
    if 400 <= status < 500 and headers.get("content-type", "").split(";")[0].endswith("json"):
        doc = json.loads(body)
        if path.startswith(("/fhir", "/cds-services")) and "error" not in doc:  # FHIR faces (docs)
            assert doc["resourceType"] == "OperationOutcome", (path, doc)
            assert doc["issue"]
        else:
            assert not path.startswith("/fhir"), (path, doc)
            assert set(doc) == {"error"}, (path, doc)
            assert isinstance(doc["error"]["code"], str)
            assert isinstance(doc["error"]["message"], str)
            assert isinstance(doc["error"]["errors"], list)


@pytest.mark.parametrize("auth", ["valid", "none", "wrong"])
def test_schemathesis_every_operation(server: LiveServer, auth: str) -> None:
    schema = schemathesis.openapi.from_dict(server.app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    headers = {
        "valid": {"Authorization": f"Bearer {server.token}"},
        "none": {},
        "wrong": {"Authorization": "Bearer not-a-token-of-anyone-0000"},
    }[auth]
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        for operation in operations:
            for mode in schemathesis.GenerationMode:

                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def call(case: Any) -> None:
                    kwargs = case.as_transport_kwargs(base_url=server.base_url, headers=headers)
                    try:
                        response = http.request(
                            kwargs["method"],
                            kwargs["url"],
                            headers={k: str(v) for k, v in (kwargs.get("headers") or {}).items()},
                            params=kwargs.get("params"),
                            content=_content(kwargs),
                        )
                    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
                        return  # a request no HTTP client can send (an illegal header, say)
                    check_answer(
                        case.formatted_path, response.status_code, response.headers, response.content
                    )

                try:
                    call()
                except Unsatisfiable:  # nothing to make invalid (an operation without input)
                    assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


def _content(kwargs: dict[str, Any]) -> bytes | None:
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return data if isinstance(data, bytes) else None


# -- a fuzzer of real cases ----------------------------------------------------------------------

REAL_CASES = [demo.case for demo in demo_cases()]
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    st.lists(st.text(max_size=12), max_size=80),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(["C20", "c20", "C20.", "77425", "9999-12-31", "2024-02-30", "pT4b", "rT3", "yes", ""]),
)
RAW_TOKENS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b"1" + b"0" * 400,
    b'"\\ud800"',
    b'"\\u0000"',
    b"[" * 70,
]


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    case = dict(draw(st.sampled_from(REAL_CASES)))
    path = draw(st.sampled_from(["/v1/determinations", "/v1/prior-auth"]))
    for _ in range(draw(st.integers(0, 3))):  # value level
        key = draw(st.sampled_from([*case, "id", "label", "unknown_fact"]))
        case[key] = draw(ODD_VALUES)
    body = json.dumps({"case": case}).encode()
    level = draw(st.sampled_from(["none", "token", "bytes", "cut", "duplicate"]))
    if level == "token":  # a value JSON cannot carry, put where a value was
        body = body.replace(b"null", draw(st.sampled_from(RAW_TOKENS)), 1).replace(
            b"true", draw(st.sampled_from(RAW_TOKENS)), 1
        )
        body = body[:-2] + b', "x": ' + draw(st.sampled_from(RAW_TOKENS)) + b"}}"
    elif level == "bytes":
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        body = bytes(data)
    elif level == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif level == "duplicate" and case:
        first = next(iter(case))
        body = body[:-2] + b", " + json.dumps(first).encode() + b": null}}"
    return path, body


def test_fuzzed_real_cases_never_5xx(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, headers=server.headers(), timeout=60) as http:

        @settings(
            max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(mutated_bodies())
        def post(path_and_body: tuple[str, bytes]) -> None:
            path, body = path_and_body
            response = http.post(path, content=body, headers={"Content-Type": "application/json"})
            check_answer(path, response.status_code, response.headers, response.content)

        post()
