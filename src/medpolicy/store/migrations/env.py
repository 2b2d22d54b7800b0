"""Alembic environment of the medpolicy store.

Run programmatically by `medpolicy.store.migrate.upgrade(engine)`, which passes its connection in
`config.attributes["connection"]`. From the command line:
`alembic -x url=sqlite:///data/medpolicy.db -c src/medpolicy/store/migrations/alembic.ini upgrade head`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from medpolicy.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
