"""The reviewer's day: members and providers, assignment, peer-to-peer, clinical documents, notes.

Revision ID: 0007_reviewer_day
Revises: 0005_dtr_questionnaire_errors
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007_reviewer_day"
down_revision: str | None = "0005_dtr_questionnaire_errors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("pa_documents", "pa_notes")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pa_casework",
        sa.Column("request_id", sa.String(40), sa.ForeignKey("pa_requests.id"), primary_key=True),
        sa.Column("member_id", sa.String(200), nullable=True),
        sa.Column("member_name", sa.String(200), nullable=True),
        sa.Column("provider_search", sa.Text(), nullable=True),
        sa.Column("parties", JSON, nullable=False),
        sa.Column("assignee", sa.String(100), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("denial_code", sa.String(100), nullable=True),
        sa.Column("peer_to_peer", JSON, nullable=False),
        sa.Column("citations", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pa_casework_member_id", "pa_casework", ["member_id"])
    op.create_index("ix_pa_casework_assignee", "pa_casework", ["assignee"])
    op.create_table(
        "pa_documents",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(40), sa.ForeignKey("pa_requests.id"), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(200), nullable=True),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_pa_documents_request_id", "pa_documents", ["request_id"])
    op.create_table(
        "pa_notes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(40), sa.ForeignKey("pa_requests.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("for_physician", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_pa_notes_request_id", "pa_notes", ["request_id", "id"])
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:  # documents and notes are evidence: never changed or removed
        if dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION medpolicy_append_only()"
            )
        elif dialect == "sqlite":
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.drop_index("ix_pa_notes_request_id", table_name="pa_notes")
    op.drop_table("pa_notes")
    op.drop_index("ix_pa_documents_request_id", table_name="pa_documents")
    op.drop_table("pa_documents")
    op.drop_index("ix_pa_casework_assignee", table_name="pa_casework")
    op.drop_index("ix_pa_casework_member_id", table_name="pa_casework")
    op.drop_table("pa_casework")
