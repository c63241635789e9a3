"""SQLite: the lease indexes cover only the rows in `processing`.

Every claim set claimed_by and lease_until and every record set them back
to NULL, so each audit moved four entries in two indexes that held every
row (bench dispatch: about 15% of the throughput). Only rows in
`processing` are ever looked up by them (renewals, recovery, release), so
on SQLite they become partial indexes: a claim adds one entry to each, a
record removes it. PostgreSQL and MySQL/MariaDB keep them whole.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INDEXES = (("ix_audits_claimed_by", "claimed_by"), ("ix_audits_lease_until", "lease_until"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, column in _INDEXES:
        op.drop_index(name, "audits")
        op.create_index(name, "audits", [column], sqlite_where=sa.text("status = 'processing'"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, column in _INDEXES:
        op.drop_index(name, "audits")
        op.create_index(name, "audits", [column])
