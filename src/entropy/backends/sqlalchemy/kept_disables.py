"""The `removed_disables` table: operator disables of removed pairs, read and written in sync.

What to keep and what to put back is decided by entropy.removal (the same
rule for every store); this module only stores it, inside the sync's
transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, tuple_

from ...removal import DisablePlan, KeptDisable
from .tables import removed_disables

_CHUNK = 500  # keys per DELETE ... IN (...)


def read(conn: Connection) -> list[KeptDisable]:
    c = removed_disables.c
    rows = conn.execute(
        select(c.audit_name, c.host, c.disabled_reason, c.removed_at, c.removed_by)
    ).all()
    return [KeptDisable(r.audit_name, r.host, r.disabled_reason, r.removed_at,
                        r.removed_by or "") for r in rows]  # fmt: skip


def write(conn: Connection, plan: DisablePlan) -> None:
    """Forget the expired and the restored, then remember the newly removed (replacing)."""
    c = removed_disables.c
    if plan.expired_before is not None:
        conn.execute(delete(removed_disables).where(c.removed_at < plan.expired_before))
    done = [*plan.restore, *(k.key for k in plan.remember)]
    for start in range(0, len(done), _CHUNK):
        chunk = done[start : start + _CHUNK]
        conn.execute(delete(removed_disables).where(tuple_(c.audit_name, c.host).in_(chunk)))
    if plan.remember:
        conn.execute(
            removed_disables.insert(),
            [
                {"audit_name": k.audit_name, "host": k.host, "disabled_reason": k.reason,
                 "removed_at": k.removed_at, "removed_by": k.removed_by or None}
                for k in plan.remember
            ],
        )  # fmt: skip
