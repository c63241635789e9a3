"""Operator disables of removed pairs, kept so they come back with their pair.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from entropy.backends.sqlalchemy.tables import BigId, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "removed_disables",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("audit_name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("removed_at", UTCDateTime(), nullable=False),
        sa.Column("removed_by", sa.String(255)),
        sa.UniqueConstraint("audit_name", "host", name="uq_removed_disables_audit_host"),
    )
    op.create_index("ix_removed_disables_removed_at", "removed_disables", ["removed_at"])


def downgrade() -> None:
    op.drop_table("removed_disables")
