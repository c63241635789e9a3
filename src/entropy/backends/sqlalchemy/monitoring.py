"""Monitoring state in SQL (issue 15): ad hoc downtimes, acknowledgements, per-row state.

Not on the hot path: a pair without monitoring never comes here. Each
function takes the store's transaction factory, as the repair store does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update

from ...errors import StoreConflict
from ...model import Ack, Downtime, MonitorState
from ..base import MonitorRow, downtime_order
from .tables import acks, audits, downtimes

Transaction = Callable[[], AbstractContextManager[Connection]]
_CHUNK = 200  # (audit, host) keys per query


def write_states(conn: Connection, states: Mapping[int, MonitorState], engine_id: str) -> None:
    """The rows' monitoring states, only where this engine still holds the claim (fencing)."""
    c = audits.c
    mine = (c.id == bindparam("k_id"), c.claimed_by == bindparam("k_engine"),
            c.status == "processing")  # fmt: skip
    params = [
        {"k_id": row_id, "k_engine": engine_id, "k_monitor": state.to_dict()}
        for row_id, state in sorted(states.items())
    ]
    conn.execute(update(audits).where(*mine).values(monitor=bindparam("k_monitor")), params)


def monitor_rows(
    transaction: Transaction, keys: Collection[tuple[str, str]], audit_row: Callable[[Any], Any]
) -> dict[tuple[str, str], MonitorRow]:
    c = audits.c
    wanted = sorted(set(keys))
    found: dict[tuple[str, str], MonitorRow] = {}
    with transaction() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            # (audit_name, host) IN (...) is not on every database: by audit, then host.
            query = select(audits).where(
                or_(*(and_(c.audit_name == a, c.host == h) for a, h in chunk))
            )
            for row in conn.execute(query):
                mine = MonitorRow.of(audit_row(row._mapping))
                found[(mine.audit_name, mine.host)] = mine
    return found


def add_downtime(transaction: Transaction, downtime: Downtime, where: str) -> None:
    with transaction() as conn:
        taken = select(downtimes.c.name).where(downtimes.c.name == downtime.name)
        if conn.execute(taken).first() is not None:  # the primary key guards a race too
            raise StoreConflict(f"state store {where}: downtime {downtime.name!r} exists")
        conn.execute(insert(downtimes).values(
            name=downtime.name, downtime=downtime.to_dict(), ends_at=downtime.end))  # fmt: skip


def list_downtimes(transaction: Transaction) -> list[Downtime]:
    with transaction() as conn:
        found = [Downtime.from_dict(r.downtime) for r in conn.execute(select(downtimes))]
    return sorted(found, key=downtime_order)


def remove_downtime(transaction: Transaction, name: str) -> bool:
    with transaction() as conn:
        return conn.execute(delete(downtimes).where(downtimes.c.name == name)).rowcount > 0


def expire_downtimes(transaction: Transaction, now: datetime) -> int:
    with transaction() as conn:
        return conn.execute(delete(downtimes).where(downtimes.c.ends_at <= now)).rowcount


def set_ack(transaction: Transaction, ack: Ack) -> None:
    c = acks.c
    with transaction() as conn:  # replace: delete then insert, in one transaction
        conn.execute(delete(acks).where(c.audit_name == ack.audit_name, c.host == ack.host))
        conn.execute(insert(acks).values(audit_name=ack.audit_name, host=ack.host,
                                         ack=ack.to_dict(), expires_at=ack.expires_at))  # fmt: skip


def list_acks(transaction: Transaction, host: str | None, audit_name: str | None) -> list[Ack]:
    c = acks.c
    query = select(acks.c.ack).order_by(c.host, c.audit_name)
    if host is not None:
        query = query.where(c.host == host)
    if audit_name is not None:
        query = query.where(c.audit_name == audit_name)
    with transaction() as conn:
        return [Ack.from_dict(value) for value in conn.execute(query).scalars()]


def clear_ack(transaction: Transaction, audit_name: str, host: str) -> bool:
    c = acks.c
    with transaction() as conn:
        gone = conn.execute(delete(acks).where(c.audit_name == audit_name, c.host == host))
        return gone.rowcount > 0


def expire_acks(transaction: Transaction, now: datetime) -> int:
    with transaction() as conn:
        return conn.execute(delete(acks).where(acks.c.expires_at <= now)).rowcount
