"""Downtimes, acknowledgements and overdue pairs (issue 15): what the CLI and the API share.

Ad hoc downtimes and acks are kept in the state store (its contract's
add_downtime/set_ack ...); downtimes of the definitions (downtimes.yaml,
`downtimes:`) are listed beside them and changed where they are defined.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import NotFound
from ..model import Ack, AuditRow, Catalog, Downtime, Outcome
from ..monitoring import AckRefused, new_ack, next_downtime_window, overdue_since
from .errors import BadRequest
from .runtime import Runtime

MAX_WINDOW = 366 * 86400  # seconds an ad hoc downtime or an ack may last


def who() -> str:
    """user@host, kept as created_by."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid, e.g. in a container
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


# -- downtimes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DowntimeView:
    """One downtime as `downtime list` shows it: where it comes from and its window."""

    downtime: Downtime
    source: str  # "ad hoc" or where the definitions say it (path:line)
    window: tuple[datetime, datetime] | None  # in force now, else the next; None: none left
    active: bool

    def to_dict(self) -> dict[str, Any]:
        start, end = self.window or (None, None)
        return {**self.downtime.to_dict(), "source": self.source, "active": self.active,
                "window_start": start, "window_end": end}  # fmt: skip


def add_downtime(
    rt: Runtime,
    reason: str,
    host: str | None = None,
    group: str | None = None,
    audit: str | None = None,
    seconds: float | None = None,
    until: datetime | str | None = None,
    skip_checks: bool = False,
    created_by: str | None = None,
) -> Downtime:
    """Keep an ad hoc downtime from now, for `seconds` or until `until`; return it (its id).

    Exactly one of host and group (a name the definitions have), one of
    seconds and until; an audit narrows it to that audit. BadRequest or
    NotFound say what is wrong.
    """
    if bool(host) == bool(group):
        raise BadRequest("give --host or --group (one of them)")
    if (seconds is None) == (until is None):
        raise BadRequest("give --for or --until (one of them)")
    if not reason or not reason.strip():
        raise BadRequest("a downtime needs a reason", "reason")
    catalog = rt.backend.load()
    catalog.select_hosts(host, group)  # NotFound names an unknown host or empty group
    if audit is not None:
        catalog.select(audit, host, group)  # NotFound: unknown, or not run there
    now = rt.clock.now()
    if until is not None:
        end = _moment(until, str(rt.option("cron_timezone")))
    else:
        end = now + timedelta(seconds=float(seconds))  # type: ignore[arg-type]
    if end <= now:
        raise BadRequest(f"the downtime would end at {end.isoformat()}, before now", "until")
    if end - now > timedelta(seconds=MAX_WINDOW):
        raise BadRequest("an ad hoc downtime lasts at most 366 days; put longer ones in the "
                         "definitions (downtimes.yaml)")  # fmt: skip
    downtime = Downtime(
        f"dt-{uuid.uuid4().hex[:8]}",
        reason.strip(),
        hosts=(host,) if host else (),
        groups=(group,) if group else (),
        audits=(audit,) if audit else (),
        start=now,
        end=end,
        skip_checks=skip_checks,
        created_by=created_by or who(),
        created_at=now,
    )
    rt.backend.state.add_downtime(downtime)
    return downtime


def _moment(value: datetime | str, timezone: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadRequest(f"{value!r} is not a date and time such as 2026-03-01T22:00 "
                             "or 2026-03-01T22:00:00Z", "until") from None  # fmt: skip
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value.astimezone(UTC)


def downtimes(rt: Runtime, catalog: Catalog | None = None) -> list[DowntimeView]:
    """Every downtime: the definitions' first, then the ad hoc ones; ended ones left out."""
    catalog = catalog or rt.backend.load()
    now = rt.clock.now()
    views = []
    for downtime in catalog.downtimes.values():
        views.append(_view(downtime, str(downtime.where), now))
    for downtime in rt.backend.state.downtimes():
        views.append(_view(downtime, "ad hoc", now))
    return [v for v in views if v.window is not None]


def _view(downtime: Downtime, source: str, now: datetime) -> DowntimeView:
    window = next_downtime_window(downtime, now)
    return DowntimeView(downtime, source, window, window is not None and window[0] <= now)


def remove_downtime(rt: Runtime, name: str) -> None:
    """Drop an ad hoc downtime by its id; one of the definitions is changed where it is."""
    if rt.backend.state.remove_downtime(name):
        return
    catalog = rt.backend.load()
    if name in catalog.downtimes:
        where = catalog.downtimes[name].where
        raise BadRequest(f"downtime {name!r} is in the definitions ({where}); remove it there")
    raise NotFound(f"no downtime {name!r} (see `entropy downtime list`)")


# -- acknowledgements ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acked:
    """What `ack` did: the acks made, and the pairs of a group left alone (ok, no result)."""

    acks: list[Ack]
    skipped: list[tuple[str, str]]  # (host, why)

    def to_dict(self) -> dict[str, Any]:
        return {"acknowledged": [a.to_dict() for a in self.acks],
                "skipped": [{"host": h, "why": why} for h, why in self.skipped]}  # fmt: skip


def current_outcome(row: AuditRow) -> Outcome | None:
    """A row's state: its monitoring state's, else its latest result's."""
    if row.monitor is not None:
        return row.monitor.state
    outcome = (row.result or {}).get("outcome")
    return None if outcome is None else Outcome(outcome)


def ack(
    rt: Runtime,
    audit: str,
    reason: str,
    host: str | None = None,
    group: str | None = None,
    expire: float | None = None,
    sticky: bool = False,
    created_by: str | None = None,
) -> Acked:
    """Acknowledge AUDIT's problem on one host, or on each host of a group that has one.

    One host with nothing to acknowledge (ok, no result) is AckRefused; in a
    group such pairs are skipped and said, and none at all is AckRefused.
    """
    if bool(host) == bool(group):
        raise BadRequest("give --host or --group (one of them)")
    if expire is not None and not 0 < expire <= MAX_WINDOW:
        raise BadRequest("--expire must be between 1s and 366 days", "expire")
    catalog = rt.backend.load()
    pairs = catalog.select(audit, host, group)
    rows = {r.host: r for r in rt.backend.audits(audit_name=audit)}
    now = rt.clock.now()
    made, skipped = [], []
    for pair in sorted(pairs, key=lambda p: p.host):
        row = rows.get(pair.host)
        current = current_outcome(row) if row is not None else None
        try:
            one = new_ack(audit, pair.host, current, reason, now,
                          None if expire is None else int(expire), sticky,
                          created_by or who())  # fmt: skip
        except AckRefused as exc:
            if host:
                raise
            skipped.append((pair.host, str(exc)))
            continue
        made.append(one)
    if not made:
        raise AckRefused(f"nothing to acknowledge: no host of group {group!r} has a problem "
                         f"with {audit!r}")  # fmt: skip
    for one in made:
        rt.backend.state.set_ack(one)
    return Acked(made, skipped)


def unack(rt: Runtime, audit: str, host: str | None = None, group: str | None = None) -> list[str]:
    """Lift AUDIT's acknowledgements on a host or a group's hosts; the hosts it was lifted on."""
    if bool(host) == bool(group):
        raise BadRequest("give --host or --group (one of them)")
    catalog = rt.backend.load()
    pairs = catalog.select(audit, host, group)
    state = rt.backend.state
    lifted = [p.host for p in sorted(pairs, key=lambda p: p.host)
              if state.clear_ack(audit, p.host)]  # fmt: skip
    if host and not lifted:
        raise NotFound(f"audit {audit!r} on {host!r} is not acknowledged")
    return lifted


def acks(rt: Runtime, host: str | None = None, audit: str | None = None) -> list[Ack]:
    """The acknowledgements in force (expired ones are not shown)."""
    now = rt.clock.now()
    return [a for a in rt.backend.state.acks(host, audit)
            if a.expires_at is None or now < a.expires_at]  # fmt: skip


# -- overdue pairs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overdue:
    row: AuditRow
    since: datetime  # when it became overdue
    last_result_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.row.public(), "overdue_since": self.since,
                "last_result_at": self.last_result_at}  # fmt: skip


def overdue(rt: Runtime, host: str | None = None, audit: str | None = None) -> list[Overdue]:
    """Enabled pairs whose last result (or their row's creation) is older than twice their
    interval: a check that silently stopped."""
    catalog = rt.backend.load()
    timing = {p.key: p.schedule.timing for p in catalog.pairs}
    now = rt.clock.now()
    found = []
    for row in rt.backend.audits(host=host, audit_name=audit):
        pair_timing = timing.get((row.audit_name, row.host))
        if row.disabled or pair_timing is None:
            continue
        finished = (row.result or {}).get("finished_at")
        last = datetime.fromisoformat(finished) if isinstance(finished, str) else finished
        since = overdue_since(pair_timing, last or row.created_at, now)
        if since is not None:
            found.append(Overdue(row, since, last))
    return found
