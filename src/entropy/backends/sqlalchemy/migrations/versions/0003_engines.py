"""Several engines on one state store: the engines registry, and lease indexes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from entropy.backends.sqlalchemy.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engines",
        sa.Column("engine_id", sa.String(255), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime()),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_audits_claimed_by", "audits", ["claimed_by"])
    op.create_index("ix_audits_lease_until", "audits", ["lease_until"])


def downgrade() -> None:
    op.drop_index("ix_audits_lease_until", "audits")
    op.drop_index("ix_audits_claimed_by", "audits")
    op.drop_table("engines")
