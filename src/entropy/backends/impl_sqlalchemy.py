"""Definitions and state in one SQL database: SQLite, PostgreSQL or MySQL/MariaDB.

The hosts, scripts, schedules and repairs tables hold what the YAML files hold for
the dir backend, and are read through the same parsers, so a database
entry is validated exactly like a YAML one; problems are reported as
`URL#table:row-id`. Changes (`entropy host add` ...) are written and the
whole catalog re-validated in one transaction: a change that would leave
the definitions invalid is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from ..config import option, state_dir
from ..dump import downtime_entry, monitoring_keys, repair_entry
from ..errors import NotFound
from ..model import Catalog, Downtime, Host, RepairRule, Schedule, Script
from ..timing import Every, format_duration
from .base import EditableDefinitions, safe_url
from .entries import catalog_from_entries, problems_of, refuse_new_problems
from .sqlalchemy.state import SqlStateStore
from .sqlalchemy.tables import downtime_definitions, hosts, repairs, schedules, scripts


class SqlalchemyDefinitions(EditableDefinitions):
    name = "sqlalchemy"

    def state_url(self) -> str:
        configured = self.location or option(self.conf, "connection", "sqlalchemy")
        return str(configured or f"sqlite:///{state_dir(self.conf) / 'entropy.sqlite'}")

    def describe(self) -> str:
        return f"sqlalchemy:{safe_url(self.state_url())}"

    def place(self) -> str:
        return f"sqlalchemy:{self.state_url()}"

    def hint(self) -> str:
        return (
            f"the hosts, scripts, schedules, repairs and downtime_definitions tables of "
            f"{safe_url(self.state_url())}"
        )

    def _store(self) -> SqlStateStore:
        """The backend's state store: the definitions' tables are in its database."""
        assert self._state is not None, "a source is used through its Backend"
        store = self._state()
        if not isinstance(store, SqlStateStore):  # state_url() is ours: cannot happen
            raise TypeError(f"sqlalchemy definitions need a SQL state store, not {store!r}")
        return store

    # -- reading ----------------------------------------------------------------

    def signature(self) -> Hashable:
        """Each table's (rows, highest id, latest updated_at): any change moves one of them,
        so an engine's watch picks up `entropy host add` within seconds."""
        found = []
        with self._store().transaction() as conn:
            for table in (hosts, scripts, schedules, repairs, downtime_definitions):
                c = table.c
                found.append(tuple(conn.execute(
                    select(func.count(), func.max(c.id), func.max(c.updated_at))
                ).one()))  # fmt: skip
        return tuple(found)

    def load(self) -> Catalog:
        with self._store().transaction() as conn:
            return self._read(conn)

    def _read(self, conn: Connection) -> Catalog:
        return catalog_from_entries(
            safe_url(self.state_url()),
            str(option(self.conf, "cron_timezone")),
            (
                (r.name, _host_entry(r), r.id)
                for r in conn.execute(select(hosts).order_by(hosts.c.id))
            ),
            (
                (r.name, {"kind": r.kind, **r.params, **_duration("timeout", r.timeout)}, r.id)
                for r in conn.execute(select(scripts).order_by(scripts.c.id))
            ),
            (
                (r.target, r.audit_name, _schedule_entry(r), r.id)
                for r in conn.execute(select(schedules).order_by(schedules.c.id))
            ),
            ((r.name, r.rule, r.id) for r in conn.execute(select(repairs).order_by(repairs.c.id))),
            (
                (r.name, r.entry, r.id)
                for r in conn.execute(
                    select(downtime_definitions).order_by(downtime_definitions.c.id)
                )
            ),
        )

    # -- writing ----------------------------------------------------------------

    def _change(self, write: Callable[[Connection, datetime], Any]) -> Any:
        """Apply a change and re-validate everything before it commits (see refuse_new_problems)."""
        with self._store().transaction() as conn:
            before = problems_of(lambda: self._read(conn))
            outcome = write(conn, datetime.now(UTC))
            refuse_new_problems(before, problems_of(lambda: self._read(conn)))
            return outcome

    def write_definitions(self, catalog: Catalog) -> None:
        """Replace every definition with the catalog's."""

        def replace(conn: Connection, now: datetime) -> None:
            for table in (downtime_definitions, repairs, schedules, scripts, hosts):
                conn.execute(delete(table))
            if catalog.hosts:
                conn.execute(insert(hosts), [_host_row(h, now) for h in catalog.hosts.values()])
            if catalog.scripts:
                conn.execute(
                    insert(scripts), [_script_row(s, now) for s in catalog.scripts.values()]
                )
            # YAML may repeat a (group, audit) entry in two files when the settings
            # agree; the table keeps one.
            unique = {(s.target, s.audit_name): s for s in reversed(catalog.schedules)}
            if unique:
                conn.execute(insert(schedules), [_schedule_row(s, now) for s in unique.values()])
            if catalog.repairs:
                conn.execute(
                    insert(repairs), [_repair_row(r, now) for r in catalog.repairs.values()]
                )
            if catalog.downtimes:
                conn.execute(
                    insert(downtime_definitions),
                    [_downtime_row(d, now) for d in catalog.downtimes.values()],
                )

        self._change(replace)

    def put_host(self, host: Host) -> bool:
        """Add the host, or replace the one of that name; True if it was new."""
        return self._put(hosts, hosts.c.name == host.name, _host_row(host, datetime.now(UTC)))

    def put_script(self, script: Script) -> bool:
        return self._put(
            scripts, scripts.c.name == script.name, _script_row(script, datetime.now(UTC))
        )

    def put_schedule(self, schedule: Schedule) -> bool:
        match = (schedules.c.target == schedule.target) & (
            schedules.c.audit_name == schedule.audit_name
        )
        return self._put(schedules, match, _schedule_row(schedule, datetime.now(UTC)))

    def put_repair(self, rule: RepairRule) -> bool:
        return self._put(repairs, repairs.c.name == rule.name, _repair_row(rule, datetime.now(UTC)))

    def _put(self, table: Any, match: Any, row: dict[str, Any]) -> bool:
        def put(conn: Connection, now: datetime) -> bool:
            existing = conn.execute(select(table.c.id, table.c.created_at).where(match)).first()
            if existing is None:
                conn.execute(insert(table).values(row))
                return True
            conn.execute(table.update().where(table.c.id == existing.id).values(
                {**row, "created_at": existing.created_at}))  # fmt: skip
            return False

        return self._change(put)

    def remove_host(self, name: str) -> None:
        self._remove(hosts, hosts.c.name == name, f"no host {name!r}")

    def remove_script(self, name: str) -> None:
        self._remove(scripts, scripts.c.name == name, f"no script {name!r}")

    def remove_schedule(self, target: str, audit_name: str) -> None:
        match = (schedules.c.target == target) & (schedules.c.audit_name == audit_name)
        self._remove(schedules, match, f"no schedule of {audit_name!r} on {target!r}")

    def remove_repair(self, name: str) -> None:
        self._remove(repairs, repairs.c.name == name, f"no repair {name!r}")

    def _remove(self, table: Any, match: Any, missing: str) -> None:
        def remove(conn: Connection, _now: datetime) -> None:
            if not conn.execute(delete(table).where(match)).rowcount:
                raise NotFound(missing)

        self._change(remove)


def _host_entry(row: Any) -> dict[str, Any]:
    entry = {"ip_address": row.ip_address, "host_type": row.host_type, "groups": row.groups,
             "vars": row.vars, "ssh": row.ssh, "zone": row.zone}  # fmt: skip
    if row.parents:
        entry["parents"] = row.parents
    return entry


def _duration(key: str, seconds: int | None) -> dict[str, str]:
    return {} if seconds is None else {key: format_duration(seconds)}


def _schedule_entry(row: Any) -> dict[str, Any]:
    monitoring = row.monitoring or {}
    entry: dict[str, Any] = (
        {}  # passive: its timing is its freshness, in `monitoring`
        if monitoring.get("passive")
        else {"run_every": format_duration(row.run_every)}
        if row.run_every
        else {"cron": row.cron}
    )
    entry.update(disabled=bool(row.disabled), params=row.params or {})
    if row.disabled_reason is not None:
        entry["disabled_reason"] = row.disabled_reason
    entry.update(_duration("timeout", row.timeout))
    entry.update(monitoring)
    return entry


def _host_row(host: Host, now: datetime) -> dict[str, Any]:
    return {"name": host.name, "ip_address": host.ip_address, "host_type": host.host_type,
            "groups": list(host.groups), "vars": host.vars, "created_at": now,
            "updated_at": now, "ssh": None if host.ssh is None else host.ssh.to_dict(),
            "zone": host.zone, "parents": list(host.parents) or None}  # fmt: skip


def _script_row(script: Script, now: datetime) -> dict[str, Any]:
    return {"name": script.name, "kind": script.kind, "params": script.params,
            "timeout": script.timeout, "created_at": now, "updated_at": now}  # fmt: skip


def _schedule_row(schedule: Schedule, now: datetime) -> dict[str, Any]:
    timing = schedule.timing
    return {
        "target": schedule.target, "audit_name": schedule.audit_name,
        "run_every": timing.seconds if isinstance(timing, Every) else None,
        "cron": None if isinstance(timing, Every) else timing.expr,
        "disabled": schedule.disabled, "disabled_reason": schedule.disabled_reason,
        "timeout": schedule.timeout, "params": schedule.params,
        "created_at": now, "updated_at": now,
        "monitoring": monitoring_keys(schedule.monitoring) or None if schedule.monitoring else None,
    }  # fmt: skip


def _repair_row(rule: RepairRule, now: datetime) -> dict[str, Any]:
    return {"name": rule.name, "rule": repair_entry(rule), "created_at": now, "updated_at": now}


def _downtime_row(downtime: Downtime, now: datetime) -> dict[str, Any]:
    return {"name": downtime.name, "entry": downtime_entry(downtime), "created_at": now,
            "updated_at": now}  # fmt: skip
