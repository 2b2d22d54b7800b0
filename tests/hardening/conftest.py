"""Fixtures of the hardening tests: a live service on SQLite and (marker `postgres`) on PostgreSQL.

PostgreSQL: MEDPOLICY_TEST_PG_URL, else a postgresql DATABASE_URL, else 127.0.0.1:5432/test (skipped
when unreachable, a failure when CI=true). Each server gets a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from medpolicy.service.testing import LiveServer, running_server, settings_for_tests

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    explicit = os.environ.get("MEDPOLICY_TEST_PG_URL")
    if explicit:
        return explicit
    database_url = os.environ.get("DATABASE_URL", "")
    return database_url if database_url.startswith("postgresql") else DEFAULT_PG_URL


@pytest.fixture(scope="module")
def pg_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh schema."""
    url = pg_url()
    admin = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        reason = f"PostgreSQL is unreachable ({type(exc).__name__}); set MEDPOLICY_TEST_PG_URL"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    schema = f"medpolicy_test_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("hardening")
    overrides = {}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("pg_schema")
    with running_server(settings_for_tests(folder, **overrides)) as live:
        yield live
