"""Store fixtures: every store test runs against SQLite (a temp file) and a real PostgreSQL server.

PostgreSQL comes from MEDPOLICY_TEST_PG_URL, else DATABASE_URL (when it names PostgreSQL), else
postgresql+psycopg://postgres@127.0.0.1:5432/test. Each test gets a fresh schema, dropped after it.
When the server is unreachable the PostgreSQL tests are skipped with the reason, except under
CI=true, where they fail: CI must never pass without having run them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from medpolicy import PolicySet, load_policies
from medpolicy.store import Store

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    explicit = os.environ.get("MEDPOLICY_TEST_PG_URL")
    if explicit:
        return explicit
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith("postgresql"):
        return database_url
    return DEFAULT_PG_URL


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server's URL, after checking it answers (skip locally, fail in CI)."""
    url = pg_url()
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = f"PostgreSQL at {shown} is unreachable ({type(exc).__name__}); set MEDPOLICY_TEST_PG_URL"
        if _in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema (dropped afterwards)."""
    schema = f"medpolicy_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture(scope="session")
def policies() -> PolicySet:
    return load_policies()


@pytest.fixture
def store(store_url: str, policies: PolicySet) -> Iterator[Store]:
    s = Store.open(store_url, policies=policies)
    try:
        yield s
    finally:
        s.close()
