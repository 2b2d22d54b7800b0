"""Service settings from the environment, and the error shapes rendered without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from medpolicy.service.errors import ApiError, operation_outcome
from medpolicy.service.settings import Settings, SettingsError, parse_clients


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.clients == ()
    assert settings.max_body_bytes == 1_048_576
    assert settings.cors_origins == ()  # CORS is off unless configured
    assert settings.date_horizon_days == 730
    assert settings.resolved_database_url == f"sqlite:///{Path('data').resolve() / 'medpolicy.db'}"


def test_everything_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@db.example/medpolicy",
            "MEDPOLICY_DATA_DIR": str(tmp_path),
            "MEDPOLICY_CLIENTS": (
                "ehr-1:token-of-ehr-1-0123456789,review:token-of-review-012345:nurse+physician"
            ),
            "MEDPOLICY_MAX_BODY_BYTES": "2048",
            "MEDPOLICY_CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings.resolved_database_url == "postgresql+psycopg://u@db.example/medpolicy"
    assert settings.max_body_bytes == 2048
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    ehr, review = settings.clients
    assert (ehr.client_id, ehr.roles) == ("ehr-1", frozenset({"submitter"}))
    assert review.roles == frozenset({"submitter", "nurse", "physician"})


def test_clients_as_json() -> None:
    clients = parse_clients(
        '{"ehr-1": "token-of-ehr-1-0123456789", '
        '"rn": {"token": "token-of-rn-0123456789", "roles": ["nurse"]}}'
    )
    assert [c.client_id for c in clients] == ["ehr-1", "rn"]
    assert clients[1].roles == frozenset({"submitter", "nurse"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ehr-1", "must look like client:token"),
        ("ehr-1:short", "at least 16 characters"),
        ("a:token-0123456789abcdef,a:token-0123456789abcdeg", "names a client twice"),
        ("a:token-0123456789abcdef,b:token-0123456789abcdef", "the same token"),
        ("a:token-0123456789abcdef:admin", "unknown role 'admin'"),
        ('{"a": 5}', "must be a token or an object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_clients_are_refused_without_echoing_tokens(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        parse_clients(raw)
    assert "0123456789abcde" not in str(info.value)
    assert "short" not in str(info.value).replace("at least", "")


def test_a_body_limit_must_be_a_number() -> None:
    with pytest.raises(SettingsError, match="whole number"):
        Settings.from_env({"MEDPOLICY_MAX_BODY_BYTES": "lots"})


def test_operation_outcome_carries_the_same_code() -> None:
    error = ApiError(
        422,
        "invalid_case",
        "the case has 2 invalid fields",
        errors=[
            {
                "code": "invalid_value",
                "field": "margin_status",
                "value": "x",
                "message": "not a margin status",
            },
            {"code": "out_of_range", "field": "margin_distance_mm", "value": -1, "message": "negative"},
        ],
    )
    outcome = operation_outcome(error)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["details"]["coding"][0]["code"] for i in outcome["issue"]] == ["invalid_value", "out_of_range"]
    assert [i["expression"] for i in outcome["issue"]] == [["margin_status"], ["margin_distance_mm"]]
    assert {i["code"] for i in outcome["issue"]} == {"invalid"}
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    OperationOutcome.model_validate(outcome)
