"""Monitoring (issue 15): each pair's soft/hard state, ad hoc downtimes, acknowledgements,
and the monitoring definitions of the sqlalchemy backend.

- audits.monitor: the pair's MonitorState as JSON; NULL for pairs without
  monitoring (every row already there).
- downtimes: ad hoc downtimes (`entropy downtime add`), one JSON document
  each under its id, with its end for expiry.
- acks: one acknowledgement per (audit, host), with its expiry.
- hosts.parents, schedules.monitoring: hosts.yaml's `parents:` and a schedule
  entry's monitoring keys, for definitions kept in the database;
  downtime_definitions: what downtimes.yaml holds for the dir backend.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from entropy.backends.sqlalchemy.tables import BigId, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audits", sa.Column("monitor", sa.JSON()))
    op.add_column("hosts", sa.Column("parents", sa.JSON()))
    op.add_column("schedules", sa.Column("monitoring", sa.JSON()))
    op.create_table(
        "downtimes",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("downtime", sa.JSON(), nullable=False),
        sa.Column("ends_at", UTCDateTime()),
    )
    op.create_index("ix_downtimes_ends_at", "downtimes", ["ends_at"])
    op.create_table(
        "acks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("audit_name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("ack", sa.JSON(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.UniqueConstraint("audit_name", "host", name="uq_acks_audit_host"),
    )
    op.create_index("ix_acks_expires_at", "acks", ["expires_at"])
    op.create_table(
        "downtime_definitions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("entry", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("downtime_definitions")
    op.drop_table("acks")
    op.drop_table("downtimes")
    op.drop_column("schedules", "monitoring")
    op.drop_column("hosts", "parents")
    op.drop_column("audits", "monitor")
