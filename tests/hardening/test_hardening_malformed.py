"""Every malformed input is a 4xx in the documented shape: never a 5xx, never a closed connection.

Run against a live server on SQLite and on PostgreSQL (where NUL bytes and over-long strings used to
reach the database and fail there)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from medpolicy.service.testing import MEDICALLY_NECESSARY, LiveServer

# The facts, to splice into hand-written JSON (date and diagnosis added where a body does not set them)
CASE = json.dumps(
    {k: v for k, v in MEDICALLY_NECESSARY.items() if k not in ("date_of_service", "diagnosis_codes")}
)[1:-1]


def _check(response: httpx.Response, *, fhir: bool = False) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers.get("connection", "").lower() != "close"
    body = response.json()
    if fhir:
        assert body["resourceType"] == "OperationOutcome"
    else:
        assert set(body) == {"error"}
        assert {"code", "message", "field", "value", "errors"} <= set(body["error"])
    assert len(response.content) < 64 * 1024  # an error never echoes a whole request
    return body


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Any:
    with httpx.Client(base_url=server.base_url, headers=server.headers(), timeout=30) as client:
        yield client


def post_raw(http: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    return http.post(path, content=body, headers={"Content-Type": "application/json", **headers})


BAD_CASE_BODIES = {
    "nan": b'{"case": {%s, "margin_distance_mm": NaN}}',
    "infinity": b'{"case": {%s, "margin_distance_mm": Infinity}}',
    "1e999": b'{"case": {%s, "margin_distance_mm": 1e999}}',
    "huge_int": b'{"case": {%s, "margin_distance_mm": 1' + b"0" * 400 + b"}}",
    "id_2_64": b'{"case": {%s, "id": 18446744073709551616}}',
    "label_2_64": b'{"case": {%s, "label": 18446744073709551616}}',
    "surrogate_value": b'{"case": {%s, "tumor_site": "\\ud800"}}',
    "surrogate_key": b'{"case": {%s, "\\ud800": 1}}',
    "nul": b'{"case": {%s, "tumor_site": "rec\\u0000tum"}}',
    "duplicate_key": b'{"case": {%s, "tumor_site": "rectum", "tumor_site": "colon"}}',
    "string_for_list": b'{"case": {%s, "diagnosis_codes": "C20"}}',
    "far_future": b'{"case": {%s, "date_of_service": "9999-12-31"}}',
    "deep": b'{"case": {%s, "label": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}",
    "invalid_utf8": b'{"case": {%s, "label": "\xff\xfe"}}',
}


@pytest.mark.parametrize("name", sorted(BAD_CASE_BODIES))
@pytest.mark.parametrize("path", ["/v1/determinations", "/v1/prior-auth"])
def test_malformed_cases_are_4xx_in_the_documented_shape(http: httpx.Client, path: str, name: str) -> None:
    body = BAD_CASE_BODIES[name].replace(b"%s", CASE.encode())
    if name != "far_future":
        body = body.replace(b'{"case": {', b'{"case": {"date_of_service": "2024-03-04", ', 1)
    if name != "string_for_list":
        body = body.replace(b'{"case": {', b'{"case": {"diagnosis_codes": ["C20"], ', 1)
    error = _check(post_raw(http, path, body))["error"]
    if name in ("nan", "infinity", "1e999", "huge_int", "id_2_64", "label_2_64", "surrogate_value"):
        assert error["code"] == "invalid_json"
    if name == "invalid_utf8":
        assert (error["code"], "utf-8" in error["message"].lower()) == ("invalid_json", True)
    if name == "duplicate_key":
        assert "duplicate key 'tumor_site'" in error["message"]
    if name == "far_future":
        assert error["errors"][0]["code"] == "date_beyond_horizon"
    if name == "string_for_list":
        assert (error["field"], error["errors"][0]["code"]) == ("diagnosis_codes", "invalid_type")
    assert http.get("/healthz").status_code == 200  # the connection and the server are fine


@pytest.mark.parametrize(
    "query",
    ["offset=99999999999999999999", "limit=99999999999999999999", "search=a%00b", "state=%00"],
)
def test_malformed_queries_are_4xx(http: httpx.Client, query: str) -> None:
    _check(http.get(f"/v1/prior-auth?{query}"))


def test_a_nul_in_a_path_is_4xx(http: httpx.Client) -> None:
    _check(http.get("/v1/prior-auth/abc%00def"))
    _check(http.get("/v1/determinations/abc%00def"))


def test_an_overlong_subject_or_text_is_4xx(http: httpx.Client) -> None:
    body = {"case": MEDICALLY_NECESSARY, "subject": "x" * 5000}
    _check(http.post("/v1/prior-auth", json=body))
    _check(http.post("/v1/prior-auth", json={"case": MEDICALLY_NECESSARY, "idempotency_key": "k" * 5000}))


def test_fhir_endpoints_refuse_deep_nesting_and_bad_json_with_an_operation_outcome(
    server: LiveServer, http: httpx.Client
) -> None:
    paths = sorted(
        p for p, ops in server.app.openapi()["paths"].items() if p.startswith("/fhir") and "post" in ops
    )
    assert paths
    deep = b"{" + b'"a":{' * 10_000 + b"}" * 10_001
    bodies = [deep, b"[" * 10_000 + b"]" * 10_000, b'{"resourceType": NaN}', b'{"a": 1, "a": 2}', b"\xff"]
    for path in paths:
        for body in bodies:
            response = post_raw(http, path, body, **{"Content-Type": "application/fhir+json"})
            _check(response, fhir=True)


def test_cds_endpoints_refuse_bad_json_before_or_after_authentication(http: httpx.Client) -> None:
    for body in (b"[" * 10_000 + b"]" * 10_000, b'{"hook": NaN}', b"\xff"):
        response = post_raw(http, "/cds-services/medpolicy-crd-order-sign", body)
        assert 400 <= response.status_code < 500
        assert response.headers.get("connection", "").lower() != "close"


def test_oversized_headers_and_tokens_are_refused(http: httpx.Client) -> None:
    big = "a" * (1024 * 1024)
    response = http.get("/v1/prior-auth", headers={"Authorization": f"Bearer {big}"})
    assert response.status_code in (401, 431)
    response = http.post(
        "/cds-services/medpolicy-crd-order-sign", headers={"Authorization": f"Bearer {big}"}, json={}
    )
    assert response.status_code in (401, 431)
    assert http.get("/healthz").status_code == 200


def test_many_invalid_codes_answer_a_bounded_error(http: httpx.Client) -> None:
    case = {**MEDICALLY_NECESSARY, **{f"bad_{i}": i for i in range(90)}}
    error = _check(http.post("/v1/determinations", json={"case": case}))["error"]
    assert error["message"] == "the case has 90 invalid fields (the first 50 are listed)"
    assert len(error["errors"]) == 50
    codes = {**MEDICALLY_NECESSARY, "diagnosis_codes": ["Q99.999"] * 200}
    error = _check(http.post("/v1/determinations", json={"case": codes}))["error"]
    assert error["errors"][0]["code"] == "limit_exceeded"


def test_an_overlong_pas_patient_reference_is_4xx(server: LiveServer, http: httpx.Client) -> None:
    path = Path(__file__).resolve().parents[1] / "fixtures" / "pas" / "conformant_pas_bundle_v110.json"
    bundle = json.loads(path.read_text(encoding="utf-8"))
    claim = bundle["entry"][0]["resource"]
    for reference in ("Patient/" + "p" * 300, 12345, "Patient/a\u0000b"):
        bundle["identifier"]["value"] = uuid.uuid4().hex
        claim["identifier"][0]["value"] = uuid.uuid4().hex
        claim["patient"] = {"reference": reference}
        response = http.post(
            "/fhir/Claim/$submit",
            content=json.dumps(bundle).encode(),
            headers={"Content-Type": "application/fhir+json"},
        )
        _check(response, fhir=True)
