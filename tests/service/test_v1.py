"""Our own API over real HTTP (uvicorn on loopback): determinations and prior authorization."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from medpolicy.service.testing import (
    INFORMATION_NEEDED,
    INVALID,
    INVESTIGATIONAL,
    MEDICALLY_NECESSARY,
    MISSING_FACTS,
    LiveServer,
)

ERROR_KEYS = {"code", "message", "field", "value", "errors"}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the one error shape, status and code; return the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    for item in error["errors"]:
        assert set(item) == {"code", "field", "value", "message"}
    return error


def post(
    server: LiveServer, path: str, body: Any, token: str | None = None, **headers: str
) -> httpx.Response:
    return httpx.post(server.url(path), json=body, headers=server.headers(token, **headers), timeout=30)


def get(server: LiveServer, path: str, token: str | None = None) -> httpx.Response:
    return httpx.get(server.url(path), headers=server.headers(token), timeout=30)


def submit(
    server: LiveServer, case: dict[str, Any], token: str | None = None, **extra: Any
) -> dict[str, Any]:
    response = post(server, "/v1/prior-auth", {"case": case, **extra}, token)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- determinations ----------------------------------------------------------------------------


def test_post_a_case_get_a_stored_determination(live_server: LiveServer) -> None:
    response = post(live_server, "/v1/determinations", {"case": MEDICALLY_NECESSARY})
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["id"].startswith("det_")
    assert response.headers["location"] == f"/v1/determinations/{record['id']}"
    assert record["outcome"] == "medically_necessary"
    assert record["determination"]["outcome"] == "medically_necessary"
    assert record["policy_id"] == "bluekc-iort"
    assert record["policy_version"]
    assert record["engine_version"]
    assert record["case"] == MEDICALLY_NECESSARY
    assert datetime.fromisoformat(record["created_at"]).utcoffset() == timedelta(0)
    # a 2xx means committed: the store has it, and so does a GET
    assert live_server.store.get_determination(record["id"]).case == MEDICALLY_NECESSARY
    again = get(live_server, f"/v1/determinations/{record['id']}")
    assert again.status_code == 200
    assert again.json() == record


def test_an_invalid_case_lists_every_field_error(live_server: LiveServer) -> None:
    before = live_server.store.count_determinations()
    error = error_of(post(live_server, "/v1/determinations", {"case": INVALID}), 422, "invalid_case")
    fields = {item["field"] for item in error["errors"]}
    assert {"margin_status", "margin_distance_mm"} <= fields
    for item in error["errors"]:
        assert item["code"]
        assert item["message"]
    assert {item["value"] for item in error["errors"] if item["field"] == "margin_status"} == {"sort of"}
    assert live_server.store.count_determinations() == before


def test_an_unknown_policy_is_not_found(live_server: LiveServer) -> None:
    response = post(
        live_server, "/v1/determinations", {"case": MEDICALLY_NECESSARY, "policy_id": "no-such-policy"}
    )
    error_of(response, 404, "policy_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.case"),
        ({"case": []}, "body.case"),
        ({"case": {}, "colour": "red"}, "body.colour"),
    ],
)
def test_request_validation_errors_take_the_one_shape(live_server: LiveServer, body: Any, field: str) -> None:
    error = error_of(post(live_server, "/v1/determinations", body), 422, "invalid_request")
    assert field in {item["field"] for item in error["errors"]}


def test_the_fast_path_and_the_full_handler_answer_alike(live_server: LiveServer) -> None:
    """A well-formed `POST /v1/determinations` is answered by its fast path (in the service
    middleware); a JSON body under another JSON media type goes through FastAPI's full handler.
    Both give the same answer, and the same refusals."""

    def send(body: Any, media_type: str, **headers: str) -> httpx.Response:
        return httpx.post(
            live_server.url("/v1/determinations"),
            content=json.dumps(body).encode(),
            headers=live_server.headers(**{"Content-Type": media_type, **headers}),
            timeout=30,
        )

    def comparable(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 201, response.text
        record: dict[str, Any] = response.json()
        assert response.headers["location"] == f"/v1/determinations/{record['id']}"
        return {k: v for k, v in record.items() if k not in ("id", "created_at")}

    for case in (MEDICALLY_NECESSARY, INVESTIGATIONAL, INFORMATION_NEEDED):
        for body in (
            {"case": case},
            {"case": case, "policy_id": "bluekc-iort"},
            {"case": case, "policy_id": None},
        ):
            fast = send(body, "application/json; charset=utf-8", **{"X-Request-ID": "fast-1"})
            full = send(body, "application/merge-patch+json")
            assert comparable(fast) == comparable(full)
            assert fast.headers["x-request-id"] == "fast-1"
    for bad, field in (({"case": {}, "policy_id": 5}, "body.policy_id"), ({"case": "C20"}, "body.case")):
        for media_type in ("application/json", "application/merge-patch+json"):
            error = error_of(send(bad, media_type), 422, "invalid_request")
            assert field in {item["field"] for item in error["errors"]}
    for media_type in ("application/json", "application/merge-patch+json"):
        error_of(send({"case": INVALID}, media_type), 422, "invalid_case")
        refused = httpx.post(
            live_server.url("/v1/determinations"),
            json={"case": MEDICALLY_NECESSARY},
            headers={"Authorization": "Bearer not-a-valid-token-000000", "Content-Type": media_type},
        )
        error_of(refused, 401, "invalid_token")


def test_a_body_that_is_not_json(live_server: LiveServer) -> None:
    response = httpx.post(
        live_server.url("/v1/determinations"),
        content=b'{"case": ',
        headers=live_server.headers(**{"Content-Type": "application/json"}),
    )
    error_of(response, 422, "invalid_json")


def test_an_unknown_determination_is_not_found(live_server: LiveServer) -> None:
    error_of(get(live_server, "/v1/determinations/det_nope"), 404, "determination_not_found")


def test_a_client_cannot_read_another_clients_determination(live_server: LiveServer) -> None:
    record = post(live_server, "/v1/determinations", {"case": MEDICALLY_NECESSARY}).json()
    error_of(
        get(live_server, f"/v1/determinations/{record['id']}", live_server.other_token),
        404,
        "determination_not_found",
    )
    assert get(live_server, f"/v1/determinations/{record['id']}", live_server.nurse_token).status_code == 200


# -- authentication, limits, CORS, logs --------------------------------------------------------

ENDPOINTS: list[tuple[str, str]] = [
    ("POST", "/v1/determinations"),
    ("GET", "/v1/determinations/det_x"),
    ("POST", "/v1/prior-auth"),
    ("GET", "/v1/prior-auth"),
    ("GET", "/v1/prior-auth/pa_x"),
    ("POST", "/v1/prior-auth/pa_x/actions"),
    ("GET", "/v1/prior-auth/pa_x/events"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "unauthorized"), ("Basic dXNlcjpwdw==", "unauthorized"), ("Bearer not-a-token", "invalid_token")],
)
def test_every_endpoint_needs_a_bearer_token(
    live_server: LiveServer, method: str, path: str, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(
        method, live_server.url(path), headers=headers, json={"case": {}} if method == "POST" else None
    )
    error_of(response, 401, code)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_health_needs_no_token(live_server: LiveServer) -> None:
    assert httpx.get(live_server.url("/healthz")).json() == {"status": "ok"}


def test_unknown_endpoints_and_methods_take_the_one_shape(live_server: LiveServer) -> None:
    error_of(get(live_server, "/v1/nothing-here"), 404, "not_found")
    error_of(
        httpx.delete(live_server.url("/v1/determinations/det_x"), headers=live_server.headers()),
        405,
        "method_not_allowed",
    )


def test_request_bodies_have_a_size_limit(make_live_server: Callable[..., LiveServer]) -> None:
    server = make_live_server(max_body_bytes=2_000)
    big = {"case": {**MEDICALLY_NECESSARY, "padding": "x" * 5_000}}
    for path in ("/v1/determinations", "/v1/prior-auth", "/v1/prior-auth/pa_x/actions"):
        error_of(post(server, path, big), 413, "payload_too_large")
    # also when the client streams without announcing a length
    chunks = (b'{"case": {"padding": "' + b"x" * 1000 + b'"' for _ in range(5))
    response = httpx.post(server.url("/v1/determinations"), content=chunks, headers=server.headers())
    error_of(response, 413, "payload_too_large")
    assert server.store.count_determinations() == 0
    assert post(server, "/v1/determinations", {"case": MEDICALLY_NECESSARY}).status_code == 201


def test_cors_lets_browser_clients_in(make_live_server: Callable[..., LiveServer]) -> None:
    server = make_live_server(cors_origins=("https://ehr.example.org",))
    preflight = httpx.options(
        server.url("/v1/determinations"),
        headers={
            "Origin": "https://ehr.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ehr.example.org"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "idempotency-key" in allowed
    response = post(
        server, "/v1/determinations", {"case": MEDICALLY_NECESSARY}, Origin="https://ehr.example.org"
    )
    assert response.headers["access-control-allow-origin"] == "https://ehr.example.org"
    other = httpx.options(
        server.url("/v1/determinations"),
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_log_lines_carry_no_case_data(live_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    marker = "Zebediah-Q-Patient"
    response = post(
        live_server,
        "/v1/prior-auth",
        {"case": INVESTIGATIONAL, "subject": marker},
        **{"X-Request-ID": "req-log-test-1"},
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "req-log-test-1"
    post(live_server, "/v1/determinations", {"case": {**INVALID, "diagnosis_codes": [marker]}})
    get(live_server, f"/v1/prior-auth?search={marker}")
    access = [r for r in caplog.records if r.name == "medpolicy.access"]
    line = next(r.getMessage() for r in access if "req-log-test-1" in r.getMessage())
    assert line.startswith("POST /v1/prior-auth 201 ")
    server_side = [r for r in caplog.records if r.name.split(".")[0] in {"medpolicy", "uvicorn", "fastapi"}]
    assert server_side
    for record in server_side:  # the test's own HTTP client (httpx) logs its URLs; that is not the service
        text = record.getMessage()
        assert marker not in text
        assert "C50.911" not in text
        assert live_server.token not in text


def test_the_openapi_document_describes_every_endpoint(live_server: LiveServer) -> None:
    doc = httpx.get(live_server.url("/openapi.json")).json()
    for method, path in ENDPOINTS:
        templated = path.replace("det_x", "{determination_id}").replace("pa_x", "{request_id}")
        assert method.lower() in doc["paths"][templated], templated
        operation = doc["paths"][templated][method.lower()]
        assert operation["summary"]
        assert {"401", "422"} <= set(operation["responses"])
    assert "bearer" in doc["components"]["securitySchemes"]


# -- prior authorization -----------------------------------------------------------------------


def test_submit_and_read_a_prior_auth_request(live_server: LiveServer) -> None:
    created = submit(live_server, MEDICALLY_NECESSARY, urgency="expedited", subject="M-1")
    assert created["state"] == "approved"
    assert created["urgency"] == "expedited"
    received = datetime.fromisoformat(created["received_at"])
    assert datetime.fromisoformat(created["due_at"]) - received == timedelta(hours=72)
    assert created["determination"]["outcome"] == "medically_necessary"
    assert get(live_server, f"/v1/prior-auth/{created['id']}").json() == created
    events = get(live_server, f"/v1/prior-auth/{created['id']}/events").json()["items"]
    assert [(e["action"], e["role"], e["to_state"]) for e in events] == [
        ("submit", "submitter", "received"),
        ("approve", "system", "approved"),
    ]


def test_standard_requests_are_due_in_seven_days(live_server: LiveServer) -> None:
    created = submit(live_server, INVESTIGATIONAL)
    due = datetime.fromisoformat(created["due_at"]) - datetime.fromisoformat(created["received_at"])
    assert due == timedelta(days=7)
    assert created["state"] == "pending_physician_review"
    assert created["recommendation"] == "investigational"


def test_prior_auth_errors(live_server: LiveServer) -> None:
    error_of(get(live_server, "/v1/prior-auth/pa_nope"), 404, "prior_auth_not_found")
    error_of(get(live_server, "/v1/prior-auth/pa_nope/events"), 404, "prior_auth_not_found")
    error_of(
        post(live_server, "/v1/prior-auth/pa_nope/actions", {"action": "withdraw"}),
        404,
        "prior_auth_not_found",
    )
    error_of(post(live_server, "/v1/prior-auth", {"case": INVALID}), 422, "invalid_case")
    error = error_of(
        post(live_server, "/v1/prior-auth", {"case": {}, "urgency": "urgent"}), 422, "invalid_request"
    )
    assert error["field"] == "body.urgency"
    error_of(get(live_server, "/v1/prior-auth?state=lost"), 422, "invalid_request")
    error_of(get(live_server, "/v1/prior-auth?limit=0"), 422, "invalid_request")


def test_idempotent_retry_and_key_reuse(live_server: LiveServer) -> None:
    body = {"case": MEDICALLY_NECESSARY, "urgency": "standard"}
    first = post(live_server, "/v1/prior-auth", body, **{"Idempotency-Key": "retry-1"})
    assert first.status_code == 201
    retry = post(live_server, "/v1/prior-auth", body, **{"Idempotency-Key": "retry-1"})
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    by_field = post(live_server, "/v1/prior-auth", {**body, "idempotency_key": "retry-1"})
    assert (by_field.status_code, by_field.json()["id"]) == (200, first.json()["id"])
    error_of(
        post(
            live_server, "/v1/prior-auth", {**body, "urgency": "expedited"}, **{"Idempotency-Key": "retry-1"}
        ),
        409,
        "idempotency_key_reused",
    )
    error_of(
        post(live_server, "/v1/prior-auth", {**body, "idempotency_key": "a"}, **{"Idempotency-Key": "b"}),
        422,
        "idempotency_key_mismatch",
    )


def test_concurrent_submissions_with_one_key_make_one_request(live_server: LiveServer) -> None:
    body = {"case": INVESTIGATIONAL, "urgency": "expedited"}
    responses: list[httpx.Response] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        responses.append(post(live_server, "/v1/prior-auth", body, **{"Idempotency-Key": "concurrent-1"}))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    mine = live_server.store.list_pa_requests(limit=500)
    assert len([r for r in mine if r.idempotency_key == "concurrent-1"]) == 1


def test_submitters_see_only_their_own_requests(live_server: LiveServer) -> None:
    mine = submit(live_server, INFORMATION_NEEDED, subject="visibility-test")
    error_of(
        get(live_server, f"/v1/prior-auth/{mine['id']}", live_server.other_token), 404, "prior_auth_not_found"
    )
    theirs = get(live_server, "/v1/prior-auth?search=visibility-test", live_server.other_token).json()[
        "items"
    ]
    assert theirs == []
    listed = get(live_server, "/v1/prior-auth?search=visibility-test", live_server.nurse_token).json()[
        "items"
    ]
    assert [r["id"] for r in listed] == [mine["id"]]


def test_physician_review_over_http(live_server: LiveServer) -> None:
    request = submit(live_server, INVESTIGATIONAL)
    path = f"/v1/prior-auth/{request['id']}/actions"
    error_of(
        post(live_server, path, {"action": "deny", "role": "physician", "actor": "x", "reason": "r"}),
        403,
        "role_not_granted",
    )
    error_of(
        post(
            live_server,
            path,
            {"action": "deny", "role": "nurse", "on_behalf_of": "nurse.ann", "reason": "r"},
            live_server.nurse_token,
        ),
        403,
        "action_not_permitted",
    )
    error_of(
        post(
            live_server,
            path,
            {"action": "approve", "role": "nurse", "on_behalf_of": "nurse.ann"},
            live_server.nurse_token,
        ),
        403,
        "action_not_permitted",
    )
    error_of(
        post(
            live_server,
            path,
            {"action": "deny", "role": "physician", "on_behalf_of": "dr.bo"},
            live_server.physician_token,
        ),
        422,
        "reason_required",
    )
    error_of(
        post(
            live_server,
            path,
            {"action": "deny", "role": "physician", "reason": "r"},
            live_server.physician_token,
        ),
        422,
        "reviewer_required",
    )
    error_of(
        post(
            live_server,
            path,
            {"action": "escalate", "role": "physician", "on_behalf_of": "dr.bo"},
            live_server.physician_token,
        ),
        422,
        "invalid_request",
    )
    denied = post(
        live_server,
        path,
        {
            "action": "deny",
            "role": "physician",
            "on_behalf_of": "dr.bo",
            "reason": "investigational for breast cancer",
        },
        live_server.physician_token,
    )
    assert denied.status_code == 200, denied.text
    assert denied.json()["state"] == "denied"
    assert denied.json()["decision_reason"] == "investigational for breast cancer"
    error_of(
        post(live_server, path, {"action": "withdraw"}),
        409,
        "invalid_transition",
    )
    events = get(live_server, f"/v1/prior-auth/{request['id']}/events").json()["items"]
    assert [(e["actor"], e["role"], e["from_state"], e["to_state"]) for e in events][-1] == (
        "dr.bo",
        "physician",
        "pending_physician_review",
        "denied",
    )


def test_submitter_supplies_information_and_withdraws(live_server: LiveServer) -> None:
    request = submit(live_server, INFORMATION_NEEDED)
    assert request["state"] == "information_needed"
    path = f"/v1/prior-auth/{request['id']}/actions"
    error_of(post(live_server, path, {"action": "provide_information"}), 422, "case_update_required")
    error_of(
        post(
            live_server, path, {"action": "provide_information", "case_update": {"margin_status": "sort of"}}
        ),
        422,
        "invalid_case",
    )
    error_of(
        post(live_server, path, {"action": "withdraw"}, live_server.other_token), 404, "prior_auth_not_found"
    )
    approved = post(live_server, path, {"action": "provide_information", "case_update": MISSING_FACTS})
    assert approved.status_code == 200
    assert approved.json()["state"] == "approved"

    other = submit(live_server, INFORMATION_NEEDED)
    withdrawn = post(
        live_server, f"/v1/prior-auth/{other['id']}/actions", {"action": "withdraw", "reason": "cancelled"}
    )
    assert withdrawn.json()["state"] == "withdrawn"
    last = get(live_server, f"/v1/prior-auth/{other['id']}/events").json()["items"][-1]
    assert (last["actor"], last["role"], last["action"]) == ("test-submitter", "submitter", "withdraw")


def test_listing_by_state(live_server: LiveServer) -> None:
    request = submit(live_server, INVESTIGATIONAL, subject="listing-by-state")
    pending = get(live_server, "/v1/prior-auth?state=pending_physician_review&limit=500").json()
    assert request["id"] in [r["id"] for r in pending["items"]]
    assert {r["state"] for r in pending["items"]} == {"pending_physician_review"}
    assert (pending["limit"], pending["offset"]) == (500, 0)


def test_fhir_paths_answer_errors_as_operation_outcome(make_live_server: Callable[..., LiveServer]) -> None:
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    server = make_live_server(max_body_bytes=500)
    for response, code in [
        (httpx.get(server.url("/fhir/NoSuchType/x"), headers=server.headers()), "not_found"),
        (post(server, "/fhir/Claim/$submit", {"padding": "x" * 1000}), "payload_too_large"),
    ]:
        assert response.headers["content-type"].startswith("application/fhir+json"), response.text
        body = response.json()
        OperationOutcome.model_validate(body)
        assert body["issue"][0]["details"]["coding"][0]["code"] == code


def test_every_v1_endpoint_and_setting_is_documented(live_server: LiveServer) -> None:
    import re
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    documented = {re.sub(r"\{[^}]*\}", "{}", p) for p in re.findall(r"(?:GET|POST) (/v1/[^\s`?]*)", docs)}
    doc = httpx.get(live_server.url("/openapi.json")).json()
    for path, operations in doc["paths"].items():
        if path.startswith("/v1/"):
            for method in operations:
                assert f"{method.upper()} " in docs
                assert re.sub(r"\{[^}]*\}", "{}", path) in documented, path
    for variable in (
        "DATABASE_URL",
        "MEDPOLICY_DATA_DIR",
        "MEDPOLICY_CLIENTS",
        "MEDPOLICY_MAX_BODY_BYTES",
        "MEDPOLICY_CORS_ORIGINS",
        "MEDPOLICY_POLICIES_DIR",
        "MEDPOLICY_SQLITE_SYNCHRONOUS",
    ):
        assert f"`{variable}`" in docs, variable
    for code in re.findall(
        r'"(\w+)"', (Path(__file__).resolve().parents[2] / "src/medpolicy/service/v1.py").read_text()
    ):
        if code.endswith(("_required", "_not_found", "_mismatch", "_not_granted")):
            assert f"`{code}`" in docs, code
