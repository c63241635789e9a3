"""hosts.ssh: how to reach a host over SSH (hosts.yaml's `ssh:` mapping).

A nullable JSON column: hosts without one are reached with the [ssh]
config's defaults, so existing rows need no value.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("hosts", sa.Column("ssh", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("hosts", "ssh")
