"""Security audit: the authenticated principal and details of each event, reads of patient data, a
hash chain over the append-only tables, and SQLite triggers that close the INSERT OR REPLACE hole.

* `pa_events.principal` (who was authenticated) and `pa_events.details` (JSON: a correction's fact,
  old and new value).
* `pa_reads`: who read a request's patient data, when, and what (append-only).
* `chain_seq`, `chain_prev`, `chain_hash` on `determinations`, `pa_events` and `pa_reads`; rows
  written before this revision are sealed here, in id order (see `medpolicy.store.audit_chain`).
* SQLite: REPLACE deletes the conflicting row without firing delete triggers. A BEFORE INSERT trigger
  on each append-only table refuses a row whose id or chain position already exists, so REPLACE
  (and any other conflict resolution) cannot rewrite a row.

Revision ID: 0006_security_audit
Revises: 0005_dtr_questionnaire_errors
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_security_audit"
down_revision: str | None = "0005_dtr_questionnaire_errors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAINED = ("determinations", "pa_events", "pa_reads")
OLD_APPEND_ONLY = ("determinations", "pa_events")


def _add_chain_columns(table: str) -> None:
    op.add_column(table, sa.Column("chain_seq", sa.BigInteger(), nullable=True))
    op.add_column(table, sa.Column("chain_prev", sa.String(64), nullable=True))
    op.add_column(table, sa.Column("chain_hash", sa.String(64), nullable=True))
    op.create_index(f"uq_{table}_chain_seq", table, ["chain_seq"], unique=True)


def _seal_existing(table: str, dialect: str) -> None:
    """Seal the rows written before this revision, in id order (the triggers are off meanwhile)."""
    from medpolicy.store.audit_chain import GENESIS, row_hash
    from medpolicy.store.models import Base

    bind = op.get_bind()
    model = Base.metadata.tables[table]
    order = model.c.created_at if table == "determinations" else model.c.id
    rows = bind.execute(sa.select(model).order_by(order, model.c.id)).all()
    if not rows:
        return
    if dialect == "postgresql":
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        values: dict[str, Any] = dict(row._mapping)
        digest = row_hash(table, seq, prev, values)
        bind.execute(
            sa.update(model)
            .where(model.c.id == values["id"])
            .values(chain_seq=seq, chain_prev=prev, chain_hash=digest)
        )
        prev = digest
    if dialect == "postgresql":
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")
    else:
        _sqlite_no_update(table)


def _sqlite_no_update(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("pa_events", sa.Column("principal", sa.String(200), nullable=True))
    op.add_column(
        "pa_events",
        sa.Column("details", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )
    op.create_table(
        "pa_reads",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("what", sa.String(100), nullable=False),
    )
    op.create_index("ix_pa_reads_request_id", "pa_reads", ["request_id", "id"])
    for table in CHAINED:
        _add_chain_columns(table)

    if dialect == "postgresql":
        op.execute(
            "CREATE TRIGGER pa_reads_append_only BEFORE UPDATE OR DELETE ON pa_reads "
            "FOR EACH ROW EXECUTE FUNCTION medpolicy_append_only()"
        )
        op.execute(
            "CREATE TRIGGER pa_reads_no_truncate BEFORE TRUNCATE ON pa_reads "
            "FOR EACH STATEMENT EXECUTE FUNCTION medpolicy_append_only()"
        )
    elif dialect == "sqlite":
        _sqlite_no_update("pa_reads")
        op.execute(
            "CREATE TRIGGER pa_reads_no_delete BEFORE DELETE ON pa_reads "
            "BEGIN SELECT RAISE(ABORT, 'pa_reads is append-only: DELETE refused'); END"
        )
    for table in OLD_APPEND_ONLY:
        _seal_existing(table, dialect)
    if dialect == "sqlite":
        for table in CHAINED:
            refuse = (
                f"SELECT RAISE(ABORT, '{table} is append-only: a row with this id or chain position "
                "exists (REPLACE refused)')"
            )
            exists = "EXISTS (SELECT 1 FROM {0} WHERE {1} = NEW.{1})"
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN "
                f"{exists.format(table, 'id')} OR {exists.format(table, 'chain_seq')} BEGIN {refuse}; END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in CHAINED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
    for table in OLD_APPEND_ONLY:
        op.drop_index(f"uq_{table}_chain_seq", table_name=table)
        with op.batch_alter_table(table) as batch:
            for column in ("chain_seq", "chain_prev", "chain_hash"):
                batch.drop_column(column)
    with op.batch_alter_table("pa_events") as batch:
        batch.drop_column("principal")
        batch.drop_column("details")
    op.drop_table("pa_reads")
