"""Repairs: rules (sqlalchemy backend), their guardrails' state, and their runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from entropy.backends.sqlalchemy.tables import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repairs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "repair_state",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("repair_name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_started_at", UTCDateTime()),
        sa.Column("running_by", sa.String(255)),
        sa.Column("running_until", UTCDateTime()),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("flagged_reason", sa.Text()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("repair_name", "host", name="uq_repair_state_repair_host"),
    )
    op.create_table(
        "repair_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("repair_name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("audit_name", sa.String(255), nullable=False),
        sa.Column("script", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("output", sa.Text()),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("engine_id", sa.String(255)),
        sa.Column("verify", sa.String(16)),
        sa.Column("verify_outcome", sa.String(16)),
        sa.Column("verify_summary", sa.Text()),
        sa.Column("trigger_result", sa.JSON()),
    )
    op.create_index("ix_repair_runs_host", "repair_runs", ["host", "finished_at"])
    op.create_index("ix_repair_runs_finished_at", "repair_runs", ["finished_at"])


def downgrade() -> None:
    op.drop_table("repair_runs")
    op.drop_table("repair_state")
    op.drop_table("repairs")
