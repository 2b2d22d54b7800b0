"""Idempotency keys of POST /v1/determinations (a retry answers with the determination stored first).

Revision ID: 0009_input_hardening
Revises: 0005_dtr_questionnaire_errors
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_input_hardening"
down_revision: str | None = "0007_reviewer_day"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "determination_keys",
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("determination_id", sa.String(40), sa.ForeignKey("determinations.id"), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "idempotency_key", name="pk_determination_keys"),
    )


def downgrade() -> None:
    op.drop_table("determination_keys")
