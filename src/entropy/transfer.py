"""Moving a fleet between backends: its definitions, and optionally its state.

`entropy import` uses this to copy between any two backends (dir, file,
sqlalchemy, mongodb). Definitions go through a Catalog, so what arrives is
what the source validated; state (audit rows, result history, ad hoc
downtimes and acks, repair states and repair history) goes row for row
between the two state stores.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from .backends.base import Backend, safe_url
from .config import number
from .definitions import Problems, build_catalog
from .errors import BackendError
from .model import Catalog, Host, Schedule
from .removal import RemovalPolicy, RemovalRefused, check_removal


def check_state_copy(src: Backend, dst: Backend, force: bool = False) -> int:
    """How many of dst's rows copying src's state would drop; RemovalRefused past max_removal.

    Replacing the state removes dst's rows that src has no row for, like a
    sync would, so the same rule (and dst's max_removal) applies. Called
    before anything is written.
    """
    incoming = {(row.audit_name, row.host) for row in src.audits()}
    stored = dst.audits()
    gone = [(r.audit_name, r.host) for r in stored if (r.audit_name, r.host) not in incoming]
    policy = RemovalPolicy(max_removal=number(dst.conf, "max_removal"), force=force)
    try:
        check_removal(len(stored), gone, policy)
    except RemovalRefused as exc:
        exc.action = "import --with-state"
        exc.hint = "Nothing was written. To replace them anyway, add --force to `entropy import`."
        raise
    return len(gone)


def replace_hosts(dst: Backend, hosts: dict[str, Host]) -> tuple[Catalog, Catalog]:
    """Make these dst's hosts, keeping its scripts, schedules and repairs; (before, after).

    The new catalog is validated first (a schedule whose host or group is
    gone is a problem at its place): with a problem nothing is written.
    """
    before = current_definitions(dst)
    after = build_catalog(
        hosts, before.scripts, before.schedules, before.sources, Problems(), before.repairs
    )
    dst.write_definitions(after)
    return before, after


def current_definitions(backend: Backend) -> Catalog:
    """backend's definitions; an empty catalog when it holds none yet (a new dir or file)."""
    path = getattr(backend, "path", None)
    if isinstance(path, Path):  # the YAML backends: nothing written there yet?
        files = [path / "hosts.yaml", path / "scripts.yaml"] if backend.name == "dir" else [path]
        if not any(f.is_file() and f.stat().st_size for f in files):
            return Catalog({}, {}, [])
    return backend.load()


class StateCounts(NamedTuple):
    """What copy_state moved."""

    rows: int
    results: int
    downtimes: int  # ad hoc downtimes
    acks: int
    repair_states: int  # (repair, host) states: attempts, flags
    repair_runs: int


def copy_state(src: Backend, dst: Backend, now: datetime) -> StateCounts:
    """Replace dst's audit rows, result history, ad hoc downtimes, acks, repair states and
    repair history with src's; `now`: when dst's repair states changed.

    Two backends sharing one state store have nothing to copy, and copying
    would delete what it is about to re-insert: that is refused. Downtimes,
    acks and the repairs go through the store contract, after the rows (an
    ack names a pair, a downtime hosts and audits, a repair state a host,
    not row ids). A repair running at src arrives not running, its attempt
    counted (RepairStore.import_all): no engine at dst runs it.
    """
    if same_state(src, dst):
        raise BackendError(
            f"{src.name} and {dst.name} share the state store "
            f"{safe_url(src.state_url())}; there is no state to copy"
        )
    source, target = src.state, dst.state
    dump = source.export_rows()
    downtimes, acks = source.downtimes(), source.acks()
    repairs = source.repairs.export_all()
    target.import_rows(dump)
    for downtime in target.downtimes():
        target.remove_downtime(downtime.name)
    for downtime in downtimes:
        target.add_downtime(downtime)
    for ack in target.acks():
        target.clear_ack(ack.audit_name, ack.host)
    for ack in acks:
        target.set_ack(ack)
    target.repairs.import_all(repairs, now)
    return StateCounts(len(dump.rows), len(dump.results), len(downtimes), len(acks),
                       len(repairs.states), len(repairs.runs))  # fmt: skip


def same_definitions(a: Backend, b: Backend) -> bool:
    """Whether two backends read their definitions from the same place."""
    return a.definitions.place() == b.definitions.place()


def same_state(a: Backend, b: Backend) -> bool:
    return a.state_url() == b.state_url()


def catalog_differences(a: Catalog, b: Catalog) -> list[str]:
    """What makes two catalogs give a different fleet; empty when they are equivalent.

    Equivalent means the same hosts, scripts and repairs, the same schedules (target,
    audit and settings, whichever file they were in), and the same pairs with
    the same settings. Where things were written (file:line) does not count.
    """
    problems: list[str] = []
    for what, left, right in (
        ("host", a.hosts, b.hosts),
        ("script", a.scripts, b.scripts),
        ("repair", a.repairs, b.repairs),
    ):
        for name in sorted(left.keys() | right.keys()):
            if name not in right:
                problems.append(f"{what} {name!r} is missing from the second")
            elif name not in left:
                problems.append(f"{what} {name!r} is missing from the first")
            elif left[name] != right[name]:
                problems.append(f"{what} {name!r} differs: {left[name]!r} != {right[name]!r}")
    left_schedules = {_schedule_key(s) for s in a.schedules}
    right_schedules = {_schedule_key(s) for s in b.schedules}
    for target, audit in sorted({key[:2] for key in left_schedules ^ right_schedules}):
        problems.append(f"schedule {audit!r} on {target!r} differs")
    left_pairs = {p.key: (p.ip_address, _settings(p.schedule)) for p in a.pairs}
    right_pairs = {p.key: (p.ip_address, _settings(p.schedule)) for p in b.pairs}
    for key in sorted(left_pairs.keys() | right_pairs.keys()):
        if left_pairs.get(key) != right_pairs.get(key):
            problems.append(f"audit {key[0]!r} on host {key[1]!r} differs")
    return problems


def _schedule_key(schedule: Schedule) -> tuple[str, str, str]:
    return (schedule.target, schedule.audit_name, _settings(schedule))


def _settings(schedule: Schedule) -> str:
    """Schedule.settings() in a hashable, order-free form (params are dicts)."""
    timing, disabled, reason, timeout, params, monitoring = schedule.settings()
    return json.dumps(
        [repr(timing), disabled, reason, timeout, params, repr(monitoring)],
        sort_keys=True,
        default=_default,
    )


def _default(value: Any) -> str:
    return repr(value)
