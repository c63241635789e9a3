"""hosts.zone: which zone's workers run a host's audits (hosts.yaml's `zone:`).

Not null, with `default` for the rows already there: a host that names no
zone is in the default zone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "hosts", sa.Column("zone", sa.String(64), nullable=False, server_default="default")
    )


def downgrade() -> None:
    op.drop_column("hosts", "zone")
