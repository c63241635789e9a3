"""State: one row per (audit, host) pair, and the result history.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from entropy.backends.sqlalchemy.tables import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.Column("audit_name", sa.String(255), nullable=False),
        sa.Column("next_run", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("disabled_by", sa.String(16)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON()),
        sa.Column("claimed_by", sa.String(255)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.UniqueConstraint("audit_name", "host", name="uq_audits_audit_host"),
    )
    op.create_index("ix_audits_next_run", "audits", ["next_run"])
    op.create_index("ix_audits_host", "audits", ["host"])
    op.create_table(
        "results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("audit_name", sa.String(255), nullable=False),
        sa.Column("slot", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("output", sa.Text()),
        sa.Column("metrics", sa.JSON()),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("engine_id", sa.String(255)),
    )
    op.create_index("ix_results_host_audit", "results", ["host", "audit_name", "finished_at"])
    op.create_index("ix_results_finished_at", "results", ["finished_at"])


def downgrade() -> None:
    op.drop_table("results")
    op.drop_table("audits")
