"""DTR $log-questionnaire-errors: what DTR applications could not do with our questionnaires.

Revision ID: 0005_dtr_questionnaire_errors
Revises: 0004_cds_jti
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005_dtr_questionnaire_errors"
down_revision: str | None = "0004_cds_jti"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dtr_questionnaire_errors",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("questionnaire", sa.Text(), nullable=False),
        sa.Column("outcome", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )
    op.create_index(
        "ix_dtr_questionnaire_errors_questionnaire", "dtr_questionnaire_errors", ["questionnaire"]
    )


def downgrade() -> None:
    op.drop_index("ix_dtr_questionnaire_errors_questionnaire", table_name="dtr_questionnaire_errors")
    op.drop_table("dtr_questionnaire_errors")
