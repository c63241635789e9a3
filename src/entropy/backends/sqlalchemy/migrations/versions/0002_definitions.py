"""Definitions for the sqlalchemy backend: hosts, scripts, schedules.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from entropy.backends.sqlalchemy.tables import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.Column("host_type", sa.String(255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("vars", sa.JSON(), nullable=False),
        *_stamps(),
    )
    op.create_table(
        "scripts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("timeout", sa.Integer()),
        *_stamps(),
    )
    op.create_table(
        "schedules",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("audit_name", sa.String(255), nullable=False),
        sa.Column("run_every", sa.Integer()),
        sa.Column("cron", sa.String(255)),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("timeout", sa.Integer()),
        sa.Column("params", sa.JSON(), nullable=False),
        *_stamps(),
        sa.UniqueConstraint("target", "audit_name", name="uq_schedules_target_audit"),
    )


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("scripts")
    op.drop_table("hosts")
