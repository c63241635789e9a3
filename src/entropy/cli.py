"""The `entropy` command. Nothing imports this module."""

from __future__ import annotations

import contextlib
import difflib
import functools
import getpass
import heapq
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import yaml
from oslo_config import cfg

from . import __version__, yamlread
from .backends import Backend, Capability, fetch
from .backends.base import EditableDefinitions, EngineRegistry, StateStore, safe_url
from .cli_options import accept_global_options, log_level
from .cli_readonly import read_only
from .cli_repairs import (
    events,
    print_repair_history,
    print_repair_json,
    print_repair_line,
    print_repair_summary,
    repair,
)
from .cli_ssh import ssh as ssh_commands
from .cli_transfer import export_command, import_command
from .clock import SystemClock
from .config import engine_id, lease_settings, load_conf, option, splay_cap
from .definitions import Problems, parse_entry, parse_hosts, parse_schedules, parse_scripts
from .engine import Engine, EngineSettings
from .errors import DurationError, EntropyError, NotFound, ValidationError
from .events import Events
from .gctuning import collector_paused
from .jsonout import print_json, to_json
from .model import AuditRow, Catalog, Outcome, Pair, Result
from .progress import progress_on_terminal
from .removal import RemovalRefused
from .repairs import Repairer
from .runners import Job, run_job
from .runners import kill_all as kill_all_runs
from .scheduler import Scheduler
from .ssh import settings as ssh_settings
from .textout import print_table, stamp
from .timing import format_duration, parse_duration

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Session:
    """What every command needs: the config, the backend, and the clock, made once."""

    def __init__(
        self, config_files: tuple[str, ...], config_dirs: tuple[str, ...], backend_url: str | None
    ) -> None:
        self.config_files, self.config_dirs, self.backend_url = (
            config_files,
            config_dirs,
            backend_url,
        )
        self.clock = SystemClock()
        self.failed = False  # set by a command whose exit status should say so
        self.read_only = False  # set by @read_only commands before they open the backend
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        """The backend --backend (or the config) names; an error if its definitions are missing."""
        if self._backend is None:
            self._backend = fetch(self.conf, self.backend_url)
            self._backend.read_only = self.read_only
            self._backend.require_present()
        return self._backend

    @functools.cached_property
    def conf(self) -> cfg.ConfigOpts:
        conf = load_conf(self.config_files, self.config_dirs)
        ssh_settings.use_conf(conf)  # [ssh] is read when the first ssh script runs
        return conf

    def option(self, name: str) -> Any:
        return option(self.conf, name)

    def events(self) -> Events | None:
        """The event publisher [notifications] transport_url asks for, if any."""
        url = option(self.conf, "transport_url", "notifications")
        if not url:
            return None
        return Events(str(url), int(option(self.conf, "buffer_size", "notifications")))

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            if self._backend.no_state is not None:  # it answered as an empty store
                click.echo(f"entropy: {self._backend.no_state}", err=True)


class Interrupted(BaseException):
    """SIGINT or SIGTERM ended a command; raised in the main thread by the signal handler.

    A BaseException, so no `except Exception` on the way out swallows it.
    """

    def __init__(self, signum: int, during: str = "") -> None:
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}{during}")


def _interrupt(signum: int, _frame: Any) -> None:
    kill_all_runs()  # `audit run` waits for its commands (local and ssh): end them
    raise Interrupted(signum)


def _raise_on_signals(ctx: click.Context) -> None:
    """Ctrl-C and SIGTERM end any command at once, with a message (restored on close)."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach only the main thread (a test may call us from another)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, _interrupt)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    ctx.call_on_close(restore)


class EntropyGroup(click.Group):
    """Turns Entropy's errors into one clear message and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (Interrupted, KeyboardInterrupt) as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            message = str(exc) if isinstance(exc, Interrupted) else "interrupted by SIGINT"
            click.echo(f"entropy: {message}", err=True)
            ctx.exit(128 + signum)
        except ValidationError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' if count != 1 else ''}; nothing was changed", err=True)
            ctx.exit(2)
        except EntropyError as exc:
            click.echo(f"entropy: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=EntropyGroup, context_settings=CONTEXT)
@click.option(
    "--config-file",
    multiple=True,
    metavar="FILE",
    help="entropy.conf to read (repeatable; later files win). Default: the "
    "oslo.config search path (~/.entropy/, /etc/entropy/ ...).",
)
@click.option(
    "--config-dir",
    multiple=True,
    metavar="DIR",
    help="Directory of *.conf files read after --config-file (repeatable).",
)
@click.option(
    "--backend",
    "backend_url",
    metavar="URL",
    help="Backend to use instead of entropy_backend in the config: dir:PATH, "
    "file:PATH.yaml (a bare existing path works too), or a database URL for the sqlalchemy "
    "backend: sqlite:///PATH, postgresql+psycopg://..., mysql+pymysql://...",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v: info, -vv: debug).")
@click.version_option(__version__, prog_name="entropy")
@click.pass_context
def main(
    ctx: click.Context,
    config_file: tuple[str, ...],
    config_dir: tuple[str, ...],
    backend_url: str | None,
    verbose: int,
) -> None:
    """Audit a fleet of hosts on schedule and repair what the audits find.

    Definitions (hosts, scripts, schedules) and state (one row per audit and
    host) come from a backend chosen by entropy_backend in entropy.conf or by
    --backend. Options can also be set in the environment as
    OS_<GROUP>__<OPTION>, e.g. OS_DIR__PATH=/srv/fleet. --config-file,
    --config-dir, --backend and -v work before the command or after it
    (`entropy status --backend URL`).

    \b
    Start with:
      entropy --backend dir:examples/local validate
      entropy --backend dir:examples/local engine run
      entropy --backend dir:examples/local results --limit 20
    """
    logging.basicConfig(
        level=log_level(verbose),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    session = Session(config_file, config_dir, backend_url)
    ctx.obj = session
    ctx.call_on_close(session.close)
    _raise_on_signals(ctx)


pass_session = click.make_pass_decorator(Session)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@main.command()
@json_option
@pass_session
@read_only
def validate(session: Session, as_json: bool) -> None:
    """Check every definition; print each problem as path:line:col (exit 2 if any)."""
    try:
        with progress_on_terminal():  # a 50 MB hosts.yaml takes a while
            catalog = session.backend.load()
    except ValidationError as exc:
        if not as_json:
            raise
        print_json(
            {
                "valid": False,
                "problems": [
                    {
                        "path": p.where.path,
                        "line": p.where.line,
                        "col": p.where.col,
                        "message": p.message,
                    }
                    for p in exc.problems
                ],
            }
        )
        sys.exit(2)
    if as_json:
        print_json(
            {
                "valid": True,
                "hosts": len(catalog.hosts),
                "scripts": len(catalog.scripts),
                "schedule_files": len(catalog.sources),
                "audits": len(catalog.pairs),
            }
        )
    else:
        click.echo(catalog.summary())


@main.command()
@click.option(
    "--force",
    is_flag=True,
    help="Remove the rows of gone pairs even when they are more than max_removal of them.",
)
@json_option
@pass_session
def sync(session: Session, force: bool, as_json: bool) -> None:
    """Load and validate the definitions, then make the audit rows match them.

    New (audit, host) pairs are added with a spread-out first run, pairs that
    are gone are removed, and the rest keep their state. Invalid definitions
    change nothing.

    A sync that would remove more than max_removal (default 10%) of the
    stored rows, or every row, is refused and changes nothing (exit 1): a
    truncated schedule file looks just like that. --force accepts it. An
    operator's disable of a removed pair is kept for disable_retention and
    comes back with the pair.

    --json prints {"added", "removed", "kept", "updated", "restored_disables",
    "remembered_disables", "audits"} (counts of rows; audits: the pairs the
    definitions give); a refusal prints {"refused": true, "would_remove",
    "stored", "allowed", "max_removal", "by_audit": {audit: rows},
    "message"} and exits 1.
    """
    backend = session.backend
    try:
        with progress_on_terminal(quiet=as_json), collector_paused():  # a million rows
            catalog = backend.load()
            report = backend.sync(catalog, session.clock.now(), force=force, actor=_actor("sync"))
    except RemovalRefused as exc:
        if not as_json:
            raise
        print_json(exc.to_dict())
        sys.exit(1)
    if as_json:
        print_json(
            {
                "added": report.added,
                "removed": report.removed,
                "kept": report.kept,
                "updated": report.updated,
                "restored_disables": report.restored,
                "remembered_disables": report.remembered,
                "audits": len(catalog.pairs),
            }
        )
    else:
        click.echo(f"{catalog.summary()}; {report}")
        for line in report.put_back:
            click.echo(f"put back the operator's disable of {line}", err=True)


def _actor(command: str) -> str:
    """Who runs this command, for the state store's memory: `entropy sync by USER@HOST`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid, e.g. in a container
        user = str(os.getuid())
    return f"entropy {command} by {user}@{socket.gethostname()}"


@main.command()
@click.option("--host", help="Only this host's rows.")
@click.option("--audit", "audit_name", metavar="AUDIT", help="Only this audit's rows.")
@json_option
@pass_session
@read_only
def status(session: Session, host: str | None, audit_name: str | None, as_json: bool) -> None:
    """Show the audit rows: when each runs next, its status and latest result.

    Below them: hosts flagged for a human (a repair used up its max_attempts)
    and the latest repair runs.

    --json prints a list of objects with exactly the row fields: id, host,
    ip_address, audit_name, next_run, created_at, updated_at, disabled,
    disabled_reason, status, result. (Repairs: `entropy repair list --json`.)
    """
    rows = session.backend.audits(host=host, audit_name=audit_name)
    if as_json:
        print_json([row.public() for row in rows])
        return
    if not rows:
        click.echo(
            "no audit rows match; run `entropy sync` first"
            if not (host or audit_name)
            else "no audit rows match"
        )
        return
    now = session.clock.now()
    table = [("HOST", "AUDIT", "STATUS", "NEXT RUN", "RESULT")]
    for row in rows:
        table.append(
            (
                row.host,
                row.audit_name,
                row.status.value,
                _when(row.next_run, now),
                _result_text(row),
            )
        )
    print_table(table)
    print_repair_summary(session.backend.state.repairs, host)


@main.command()
@click.option(
    "--within",
    default="1d",
    show_default=True,
    metavar="DURATION",
    help="How far ahead to look, e.g. 1h, 1d, 1w.",
)
@click.option("--host", help="Only this host.")
@click.option("--audit", "audit_name", metavar="AUDIT", help="Only this audit.")
@json_option
@pass_session
@read_only
def plan(
    session: Session, within: str, host: str | None, audit_name: str | None, as_json: bool
) -> None:
    """List every run due within a window, in time order.

    Overdue rows are shown at their missed time (they run at once, once).
    Pairs not yet synced show when their first run would be. Disabled rows
    never run and are left out.
    """
    try:
        window = parse_duration(within)
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--within") from None
    backend = session.backend
    catalog = backend.load()
    now = session.clock.now()
    runs = _planned_runs(backend, catalog, now, now + timedelta(seconds=window), host, audit_name)
    if as_json:
        print_json([{"time": t, "host": h, "audit_name": a} for t, h, a in runs])
        return
    count = 0
    for when, host_name, audit in runs:
        late = "  (overdue)" if when < now else ""
        click.echo(f"{stamp(when)}  {host_name}  {audit}{late}")
        count += 1
    click.echo(f"{count} runs within {within}", err=True)


def _planned_runs(
    backend: Backend,
    catalog: Catalog,
    now: datetime,
    end: datetime,
    host: str | None,
    audit_name: str | None,
) -> list[tuple[datetime, str, str]]:
    rows = {(r.audit_name, r.host): r for r in backend.audits(host=host, audit_name=audit_name)}
    max_splay = splay_cap(backend.conf)
    streams = []
    for pair in catalog.pairs:
        if (host and pair.host != host) or (audit_name and pair.audit_name != audit_name):
            continue
        row = rows.get(pair.key)
        if (row is not None and row.disabled) or (row is None and pair.schedule.disabled):
            continue
        timing = pair.schedule.timing
        first = row.next_run if row else timing.first_run(now, *pair.key, max_splay)
        streams.append(_slots(first, timing, now, end, pair))
    return list(heapq.merge(*streams))


def _slots(
    first: datetime, timing: Any, now: datetime, end: datetime, pair: Pair
) -> Iterator[tuple[datetime, str, str]]:
    when = first
    if when <= now:
        yield (when, pair.host, pair.audit_name)
        when = timing.next_slot(when, now)
    while when <= end:
        yield (when, pair.host, pair.audit_name)
        when = timing.following(when)


def _toggle_command(disable: bool) -> Any:
    verb = "disable" if disable else "enable"

    @click.argument("audit")
    @click.option("--host", help="Only on this host.")
    @click.option("--group", help="Only on the hosts of this group.")
    @json_option
    @pass_session
    def command(
        session: Session,
        audit: str,
        host: str | None,
        group: str | None,
        as_json: bool,
        reason: str | None = None,
    ) -> None:
        if host and group:
            raise click.UsageError("give --host or --group, not both")
        backend = session.backend
        catalog = backend.load()
        now = session.clock.now()
        # Rows for new pairs, so they can be disabled; removing is for `entropy sync`.
        backend.sync(catalog, now, remove=False, actor=_actor(verb))
        pairs = _select_pairs(catalog, audit, host, group)
        changed = backend.set_disabled(pairs, reason if disable else None, now)
        still = [p for p in pairs if not disable and p.schedule.disabled]
        if as_json:
            print_json(
                {
                    verb + "d": changed,
                    "hosts": sorted(p.host for p in pairs),
                    "still_disabled_by_definitions": sorted(p.host for p in still),
                }
            )
            return
        click.echo(
            f"{verb}d {audit} on {changed} host{'s' if changed != 1 else ''}"
            + (f": {reason}" if disable else "")
        )
        for pair in still:
            click.echo(
                f"{pair.host}: still disabled by the definitions at {pair.schedule.where}", err=True
            )

    return command


def _select_pairs(catalog: Catalog, audit: str, host: str | None, group: str | None) -> list[Pair]:
    pairs = [p for p in catalog.pairs if p.audit_name == audit]
    if not pairs:
        known = sorted({p.audit_name for p in catalog.pairs})
        raise NotFound(f"unknown audit {audit!r}{_did_you_mean(audit, known)}")
    if host:
        if host not in catalog.hosts:
            raise NotFound(f"unknown host {host!r}{_did_you_mean(host, list(catalog.hosts))}")
        pairs = [p for p in pairs if p.host == host]
        if not pairs:
            raise NotFound(f"audit {audit!r} does not run on host {host!r}")
    if group:
        members = {h.name for h in catalog.hosts.values() if h.in_group(group)}
        if not members:
            raise NotFound(f"no host is in group {group!r}")
        pairs = [p for p in pairs if p.host in members]
        if not pairs:
            raise NotFound(f"audit {audit!r} does not run on any host of group {group!r}")
    return pairs


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


main.command(
    "disable",
    help="Stop running AUDIT (everywhere, or on one --host or --group), with a reason.\n\n"
    "The flag is kept in the state store and survives re-syncs; if a sync removes the "
    "pair, the flag is kept for disable_retention and comes back with it. Rows for pairs "
    "not yet synced are added first; nothing is removed.\n\n"
    '--json prints {"disabled": rows changed, "hosts": [the hosts selected], '
    '"still_disabled_by_definitions": []}.',
)(
    click.option("--reason", required=True, help="Why; shown by `entropy status`.")(
        _toggle_command(disable=True)
    )
)
main.command(
    "enable",
    help="Run AUDIT again where `entropy disable` stopped it. Audits the definitions "
    "disable (disabled: true) stay disabled.\n\n"
    '--json prints {"enabled": rows changed, "hosts": [the hosts selected], '
    '"still_disabled_by_definitions": [hosts whose definitions disable it]}.',
)(_toggle_command(disable=False))


# -- definitions in a database: host, schedule, script ----------------------------


def _editable(session: Session, command: str) -> EditableDefinitions:
    return session.backend.require_editable(command)


def _pairs(values: tuple[str, ...], option_name: str) -> dict[str, Any]:
    """`k=v` options as a mapping; each value read as YAML (12 -> int, [a, b] -> list)."""
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option_name)
        try:  # bounded like a file's YAML: aliases, nesting, 5000-digit numbers
            result[key] = yamlread.loads(value) if value else ""
        except (yaml.YAMLError, ValueError):
            result[key] = value
    return result


def _parsed(parse: Any, command: str, name: str, entry: dict[str, Any], *extra: Any) -> Any:
    """Check an entry from the command line with the parser the YAML goes through."""
    return parse_entry(parse, f"entropy {command}", name, entry, *extra)


def _report(as_json: bool, report: dict[str, Any], text: str) -> None:
    """What a changing command did: `report` with --json, else `text`."""
    if as_json:
        print_json(report)
    else:
        click.echo(text)


def _change(new: bool) -> str:
    return "added" if new else "replaced"


@main.group()
def host() -> None:
    """Add or remove hosts (sqlalchemy backend; the dir and file backends use YAML)."""


@host.command("add")
@click.argument("name")
@click.option("--ip", "ip_address", required=True, help="The host's IP address.")
@click.option("--type", "host_type", required=True, help="Its main group: compute, control, ...")
@click.option("--group", "groups", multiple=True, help="Another group it is in (repeatable).")
@click.option(
    "--var",
    "host_vars",
    multiple=True,
    metavar="KEY=VALUE",
    help="A variable scripts can use as {vars.KEY} (repeatable).",
)
@click.option(
    "--ssh",
    "ssh",
    multiple=True,
    metavar="KEY=VALUE",
    help="How kind: ssh reaches it: address, port, user, jump (repeatable).",
)
@json_option
@pass_session
def host_add(
    session: Session,
    name: str,
    ip_address: str,
    host_type: str,
    groups: tuple[str, ...],
    host_vars: tuple[str, ...],
    ssh: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add host NAME, or replace the host of that name.

    --json prints {"change": "added" or "replaced", "host": NAME}.

    \b
    Example:
      entropy --backend sqlite:///fleet.db host add compute-01.example.com \\
          --ip 10.0.0.11 --type compute --group hypervisor --var rack=r1 \\
          --ssh user=admin --ssh jump=ops@bastion.example.com
    """
    backend = _editable(session, "host add")
    entry = {
        "ip_address": ip_address,
        "host_type": host_type,
        "groups": list(groups),
        "vars": _pairs(host_vars, "--var"),
    }
    if ssh:
        entry["ssh"] = _pairs(ssh, "--ssh")
    (parsed,) = _parsed(parse_hosts, "host add", name, entry).values()
    change = _change(backend.put_host(parsed))
    _report(as_json, {"change": change, "host": name}, f"{change} host {name}")


@host.command("remove")
@click.argument("name")
@json_option
@pass_session
def host_remove(session: Session, name: str, as_json: bool) -> None:
    """Remove host NAME (refused while a schedule names it as its target).

    --json prints {"change": "removed", "host": NAME}. Its audit rows go at
    the next sync, within max_removal.
    """
    _editable(session, "host remove").remove_host(name)
    _report(as_json, {"change": "removed", "host": name}, f"removed host {name}")


@main.group()
def schedule() -> None:
    """Add or remove schedules (sqlalchemy backend; the dir and file backends use YAML)."""


@schedule.command("add")
@click.argument("target")
@click.argument("audit_name", metavar="AUDIT")
@click.option("--every", metavar="DURATION", help="Fixed-rate interval, e.g. 30mins, 1day.")
@click.option("--cron", metavar="EXPR", help='Five-field cron, e.g. "*/5 * * * *".')
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter scripts can use as {params.KEY} (repeatable).",
)
@click.option("--timeout", metavar="DURATION", help="How long a run may take.")
@click.option("--disabled-reason", metavar="TEXT", help="Add it disabled, saying why.")
@json_option
@pass_session
def schedule_add(
    session: Session,
    target: str,
    audit_name: str,
    every: str | None,
    cron: str | None,
    params: tuple[str, ...],
    timeout: str | None,
    disabled_reason: str | None,
    as_json: bool,
) -> None:
    """Run AUDIT on TARGET (a group or a host) every DURATION or on a cron schedule.

    --json prints {"change": "added" or "replaced", "target": TARGET,
    "audit_name": AUDIT, "timing": e.g. "every 30m"}.

    \b
    Example:
      entropy --backend sqlite:///fleet.db schedule add compute \\
          check_nova_config_exists --every 1day
    """
    backend = _editable(session, "schedule add")
    if (every is None) == (cron is None):
        raise click.UsageError("give exactly one of --every or --cron")
    entry: dict[str, Any] = {"run_every": every} if every else {"cron": cron}
    entry["params"] = _pairs(params, "--param")
    if timeout:
        entry["timeout"] = timeout
    if disabled_reason:
        entry.update(disabled=True, disabled_reason=disabled_reason)
    tz = session.option("cron_timezone")
    (parsed,) = _parsed(
        parse_schedules, "schedule add", target, {"audits": {audit_name: entry}}, tz
    )
    change, timing = _change(backend.put_schedule(parsed)), parsed.timing.describe()
    _report(
        as_json,
        {"change": change, "target": target, "audit_name": audit_name, "timing": timing},
        f"{change} {audit_name} on {target}: {timing}",
    )


@schedule.command("remove")
@click.argument("target")
@click.argument("audit_name", metavar="AUDIT")
@json_option
@pass_session
def schedule_remove(session: Session, target: str, audit_name: str, as_json: bool) -> None:
    """Stop running AUDIT on TARGET.

    --json prints {"change": "removed", "target": TARGET, "audit_name":
    AUDIT}. Its audit rows go at the next sync, within max_removal.
    """
    _editable(session, "schedule remove").remove_schedule(target, audit_name)
    _report(
        as_json,
        {"change": "removed", "target": target, "audit_name": audit_name},
        f"removed {audit_name} on {target}",
    )


@main.group()
def script() -> None:
    """Add, import or remove scripts (sqlalchemy backend; the dir and file backends use YAML)."""


@script.command("add")
@click.argument("name")
@click.option("--kind", required=True, help="command, http, tcp or python.")
@click.option(
    "--set",
    "keys",
    multiple=True,
    metavar="KEY=VALUE",
    help="One of the kind's keys, the value read as YAML (repeatable).",
)
@click.option("--timeout", metavar="DURATION", help="How long a run may take.")
@json_option
@pass_session
def script_add(
    session: Session,
    name: str,
    kind: str,
    keys: tuple[str, ...],
    timeout: str | None,
    as_json: bool,
) -> None:
    """Add script NAME, or replace the script of that name.

    --json prints {"change": "added" or "replaced", "script": NAME, "kind": KIND}.

    \b
    Examples:
      entropy --backend sqlite:///fleet.db script add check_nova_config_exists \\
          --kind command --set "command=[test, -f, /etc/nova/nova.conf]" --timeout 10s
      entropy --backend sqlite:///fleet.db script add vmbooter --kind tcp --set port=22
    """
    backend = _editable(session, "script add")
    entry = {"kind": kind, **_pairs(keys, "--set")}
    if timeout:
        entry["timeout"] = timeout
    (parsed,) = _parsed(parse_scripts, "script add", name, entry).values()
    change = _change(backend.put_script(parsed))
    _report(
        as_json,
        {"change": change, "script": name, "kind": kind},
        f"{change} script {name} ({kind})",
    )


@script.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_session
def script_import(session: Session, path: str, as_json: bool) -> None:
    """Add (or replace) every script of a scripts.yaml file.

    --json prints {"change": "imported", "path": PATH, "added": [names],
    "replaced": [names]}.
    """
    backend = _editable(session, "script import")
    problems = Problems()
    found = parse_scripts(problems.read(Path(path)), path, problems)
    problems.raise_if_any()
    done: dict[str, list[str]] = {"added": [], "replaced": []}
    for name, parsed in found.items():
        done[_change(backend.put_script(parsed))].append(name)
    _report(
        as_json,
        {"change": "imported", "path": path, **done},
        f"imported {len(found)} scripts from {path}",
    )


@script.command("remove")
@click.argument("name")
@json_option
@pass_session
def script_remove(session: Session, name: str, as_json: bool) -> None:
    """Remove script NAME (refused while a schedule or a repair uses it).

    --json prints {"change": "removed", "script": NAME}.
    """
    _editable(session, "script remove").remove_script(name)
    _report(as_json, {"change": "removed", "script": name}, f"removed script {name}")


@main.group()
def db() -> None:
    """The state store's schema: see its revision, upgrade it."""


def _state_store(session: Session) -> StateStore:
    # An upgrade may rewrite big tables: no statement timeout for it.
    return session.backend.open_state(check_schema=False, long_statements=not session.read_only)


@db.command("current")
@json_option
@pass_session
@read_only
def db_current(session: Session, as_json: bool) -> None:
    """Print the schema revision of the state store and the one this Entropy needs.

    Exit status 0 when the store is up to date, 1 when it is behind or has
    no Entropy tables (run `entropy db upgrade`). --json prints {"url",
    "current" (null when empty), "head", "up_to_date"}.
    """
    store = _state_store(session)
    try:
        at, needed = store.schema_revision(), store.schema_head()
    finally:
        store.close()
    url = safe_url(session.backend.state_url())  # not store.url: one not made yet reads empty
    if as_json:
        print_json({"url": url, "current": at, "head": needed, "up_to_date": at == needed})
    else:
        state = "up to date" if at == needed else "out of date: run `entropy db upgrade`"
        click.echo(f"{url}: revision {at or '(empty)'}, needs {needed}; {state}")
    if at != needed:
        sys.exit(1)


@db.command("upgrade")
@json_option
@pass_session
def db_upgrade(session: Session, as_json: bool) -> None:
    """Create or upgrade the state store's tables to this version of Entropy.

    Needed once for a PostgreSQL or MySQL/MariaDB state store, and after an
    upgrade of Entropy; SQLite state files are upgraded on their own.
    --json prints {"url", "before" (null when it was empty), "after",
    "upgraded": whether anything changed}.
    """
    store = _state_store(session)
    try:
        if not store.can(Capability.SCHEMA_MIGRATIONS):
            url = store.describe()
            _report(as_json, {"url": url, "before": None, "after": None, "upgraded": False},
                    f"{url} keeps no schema: nothing to upgrade")  # fmt: skip
            return
        before, after = store.upgrade_schema()
    finally:
        store.close()
    url = safe_url(store.url)
    if before == after:
        text = f"{url}: already at revision {after}"
    else:
        text = f"{url}: upgraded from {before or '(empty)'} to {after}"
    _report(as_json, {"url": url, "before": before, "after": after, "upgraded": before != after},
            text)  # fmt: skip


@main.group()
def engine() -> None:
    """Run the engine: the scheduler yields due audits, a worker pool runs them."""


@engine.command("run")
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Audits run at the same time (default: max_workers in the config).",
)
@click.option(
    "--for",
    "run_for",
    metavar="DURATION",
    help="Stop by itself after this long, e.g. 30s or 1h (default: until Ctrl-C).",
)
@json_option
@pass_session
def engine_run(
    session: Session, max_workers: int | None, run_for: str | None, as_json: bool
) -> None:
    """Run audits when they are due and print one line per result, until stopped.

    Every result is stored (the row's latest result and the history). The
    definitions are reloaded every refresh_interval and when the YAML files
    change; invalid changes are logged and the previous schedule keeps
    running. SIGTERM, Ctrl-C or `entropy engine stop` stops gracefully: no
    new claims, running audits get shutdown_grace seconds, then unfinished
    ones go back to new.

    Several engines may share a PostgreSQL or MariaDB/MySQL state store: each
    registers (`entropy engines`), claims due audits under a lease its
    heartbeat renews, and takes over the audits of an engine that died. A
    SQLite state store serves one engine at a time.
    """
    logging.getLogger("entropy").setLevel(min(logging.INFO, logging.root.level))
    until = None
    if run_for:
        try:
            until = session.clock.now() + timedelta(seconds=parse_duration(run_for))
        except DurationError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None
    backend = session.backend
    lease, beat, skew = lease_settings(session.conf)
    settings = EngineSettings(
        engine_id=engine_id(session.conf),
        max_workers=max_workers or session.option("max_workers"),
        default_timeout=session.option("default_timeout"),
        shutdown_grace=session.option("shutdown_grace"),
        result_retention=session.option("result_retention"),
        lease=lease,
        heartbeat_interval=beat,
        max_clock_skew=skew,
        hostname=socket.gethostname(),
        pid=os.getpid(),
    )
    scheduler = Scheduler(backend, session.clock, session.option("refresh_interval"),
                          actor=f"engine {settings.engine_id}",
                          full_resync_interval=session.option("full_resync_interval"),
                          first_load_progress=not as_json,
                          around_first_load=collector_paused)  # fmt: skip
    printer = _print_result_json if as_json else _print_result_line
    events = session.events()
    repairer = Repairer(
        backend, session.clock, settings.engine_id, settings.default_timeout, events,
        on_repair=print_repair_json if as_json else print_repair_line,
        workers=session.option("repair_workers"),
    )  # fmt: skip
    runner = Engine(
        backend, scheduler, session.clock, settings, on_result=printer, repairer=repairer,
        events=events, on_notice=lambda line: click.echo(line, err=True),
    )  # fmt: skip
    _stop_on_signals(runner)
    publishing = f"; events to {events.describe()}" if events else ""
    click.echo(
        f"engine {settings.engine_id} on {backend.describe()}, "
        f"{settings.max_workers} workers{publishing}; Ctrl-C to stop",
        err=True,
    )
    runner.run(until=until)
    click.echo(f"engine stopped; {runner.recorded} results recorded", err=True)
    status = 0
    if runner.dropped:  # the store did not take them (each one is in the log)
        click.echo(f"entropy: error: {runner.dropped} results could not be recorded: "
                   f"{runner.drop_reason}", err=True)  # fmt: skip
        status = 1
    if runner.stuck:
        # futurist joins its workers at exit, and these never return: leave without them.
        click.echo(f"{runner.stuck} audits are still stuck in their workers; exiting anyway",
                   err=True)  # fmt: skip
        _leave_now(session, status)
    if status:
        sys.exit(status)


def _stop_on_signals(runner: Engine) -> None:
    """SIGINT/SIGTERM: during start-up, leave at once; then stop gracefully.

    Once running, the first signal stops the engine gracefully (running
    audits get shutdown_grace), the second ends the grace period now, a
    third leaves at once: what is not recorded runs again after its lease.
    """
    received = []

    def on_signal(signum: int, _frame: Any) -> None:
        if not runner.started:  # e.g. connecting to a database that does not answer
            raise Interrupted(signum, " during start-up; the engine did not start")
        received.append(signum)
        if len(received) <= 2:
            runner.stop()
            return
        name = signal.Signals(signum).name
        click.echo(f"entropy: {name} a third time: leaving now; unrecorded audits run again "
                   "after their lease", err=True)  # fmt: skip
        kill_all_runs()
        _leave_now(None, 128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)


def _leave_now(session: Session | None, status: int) -> None:
    """Exit without joining threads that may never return (stuck audits)."""
    if session is not None:
        session.close()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # from a signal handler, mid-write perhaps
            stream.flush()
    os._exit(status)


def _registry(session: Session) -> tuple[EngineRegistry, float]:
    """The state store's engines registry, and after how long a silent engine is dead."""
    lease, _, skew = lease_settings(session.conf)
    return session.backend.state.engine_registry(), lease + skew


@engine.command("stop")
@click.option(
    "--engine-id", "target", metavar="ID", help="The engine to stop (see `entropy engines`)."
)
@click.option("--all", "every", is_flag=True, help="Every live engine on this state store.")
@click.option(
    "--wait",
    "wait_for",
    metavar="DURATION",
    help="Wait up to this long until they have stopped, e.g. 30s (exit 1 if some have not).",
)
@json_option
@pass_session
def engine_stop(
    session: Session, target: str | None, every: bool, wait_for: str | None, as_json: bool
) -> None:
    """Ask engines to stop gracefully, from any machine that reaches the state store.

    Each engine reads the request at its next heartbeat (heartbeat_interval)
    and stops as on SIGTERM: no new claims, running audits get
    shutdown_grace seconds, unfinished ones go back to new.

    --json prints {"asked": [engine ids], "still_running": [engine ids], or
    null without --wait}.
    """
    if bool(target) == every:
        raise click.UsageError("give --engine-id ID or --all")
    deadline = None
    if wait_for:
        try:
            deadline = time.monotonic() + parse_duration(wait_for)
        except DurationError as exc:
            raise click.BadParameter(str(exc), param_hint="--wait") from None
    registry, dead_after = _registry(session)
    asked = registry.request_stop(target, session.clock.now(), dead_after)
    pending = set(asked)
    while pending and deadline is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        now = session.clock.now()
        states = {e.engine_id: e.state(now, dead_after) for e in registry.list()}
        pending = {e for e in pending if states.get(e) in ("running", "stopping")}
    if as_json:
        print_json({"asked": asked, "still_running": sorted(pending) if deadline else None})
    else:
        if not asked:
            click.echo("no live engine to stop", err=True)
        for engine_name in asked:
            if deadline is None:
                click.echo(f"asked {engine_name} to stop")
            else:
                click.echo(
                    f"{engine_name}: {'still running' if engine_name in pending else 'stopped'}"
                )
    if deadline is not None and pending:
        sys.exit(1)


@main.command("engines")
@json_option
@pass_session
@read_only
def engines_list(session: Session, as_json: bool) -> None:
    """List the engines registered in the state store: running, stopping, stopped or dead.

    An engine is dead when its heartbeat is older than claim_lease +
    max_clock_skew (its claims have expired and other engines take them).
    """
    registry, dead_after = _registry(session)
    now = session.clock.now()
    found = registry.list()
    if as_json:
        print_json([e.to_dict(now, dead_after) for e in found])
        return
    if not found:
        click.echo("no engine has run on this state store", err=True)
        return
    table = [("ENGINE", "STATE", "HOST", "PID", "VERSION", "STARTED", "HEARTBEAT")]
    for e in found:
        age = format_duration(max((now - e.heartbeat_at).total_seconds(), 0.0))
        table.append((e.engine_id, e.state(now, dead_after), e.hostname, str(e.pid), e.version,
                      stamp(e.started_at), f"{age} ago"))  # fmt: skip
    print_table(table)


@main.group()
def audit() -> None:
    """Run audits by hand, outside the schedule."""


@audit.command("run")
@click.argument("audit_name", metavar="AUDIT")
@click.option("--host", help="Only on this host.")
@click.option("--group", help="Only on the hosts of this group.")
@json_option
@pass_session
def audit_run(
    session: Session, audit_name: str, host: str | None, group: str | None, as_json: bool
) -> None:
    """Run AUDIT now on its hosts (or one --host or --group) and print the results.

    The results are stored in the history and as each row's latest result;
    the schedule (next_run) is not touched. Exit status 0 when every result
    is ok, 1 otherwise. --json prints one object per line and result: host,
    audit_name, outcome, summary, output, metrics, started_at, finished_at,
    slot, engine_id.
    """
    if host and group:
        raise click.UsageError("give --host or --group, not both")
    backend = session.backend
    catalog = backend.load()
    pairs = _select_pairs(catalog, audit_name, host, group)
    rows = {(r.audit_name, r.host): r.id for r in backend.audits(audit_name=audit_name)}
    timeout = session.option("default_timeout")
    engine_name = f"{engine_id(session.conf)} (by hand)"

    def run_pair(pair: Pair) -> Result:
        result = run_job(Job.for_pair(catalog, pair, timeout), session.clock)
        result.audit_name, result.host, result.engine_id = pair.audit_name, pair.host, engine_name
        result.slot = result.started_at
        return result

    workers = min(len(pairs), session.option("max_workers"))
    with futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(run_pair, pairs):
            backend.state.record_adhoc(rows.get((result.audit_name, result.host)), result)
            (_print_result_json if as_json else _print_result_line)(result)
            if result.outcome is not Outcome.OK:
                session.failed = True
    if session.failed:
        sys.exit(1)


@main.command()
@click.option(
    "--kind",
    type=click.Choice(["audit", "repair"]),
    default="audit",
    show_default=True,
    help="Audit results, or repair runs (with their verify result and trigger).",
)
@click.option("--host", help="Only this host.")
@click.option("--audit", "audit_name", metavar="AUDIT", help="Only this audit.")
@click.option("--repair", "repair_name", metavar="REPAIR", help="Only this repair (--kind repair).")
@click.option("--outcome", type=click.Choice([o.value for o in Outcome]), help="Only this outcome.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many, newest first.",
)
@json_option
@pass_session
@read_only
def results(
    session: Session,
    kind: str,
    host: str | None,
    repair_name: str | None,
    audit_name: str | None,
    outcome: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show the result history, newest first.

    --json prints a list of objects with host, audit_name, outcome, summary,
    output, metrics, slot (the scheduled time it ran for), started_at,
    finished_at and engine_id. With --kind repair: repair_name, host,
    audit_name (the audit that triggered it), script, attempt, outcome,
    summary, output, started_at, finished_at, engine_id, verify (fixed,
    not_fixed or null), verify_outcome, verify_summary, trigger_result.
    """
    if kind == "repair":
        runs = session.backend.state.repairs.runs(host, repair_name, outcome, limit, audit_name)
        print_repair_history(runs, as_json)
        return
    if repair_name is not None:
        raise click.UsageError("--repair needs --kind repair")
    found = session.backend.state.results(host, audit_name, outcome, limit)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    for r in reversed(found):
        _print_result_line(r)
    if not found:
        click.echo("no results match", err=True)


main.add_command(import_command)
main.add_command(export_command)
main.add_command(repair)
main.add_command(events)
main.add_command(ssh_commands)
accept_global_options(main)  # last: every command, wherever it was defined

_COLOURS = {
    Outcome.OK: "green",
    Outcome.WARNING: "yellow",
    Outcome.CRITICAL: "red",
    Outcome.UNKNOWN: "magenta",
    Outcome.ERROR: "red",
    Outcome.TIMEOUT: "red",
}


def _print_result_line(result: Result) -> None:
    outcome = click.style(
        f"{result.outcome.value.upper():8}",
        fg=_COLOURS[result.outcome],
        bold=result.outcome is not Outcome.OK,
    )
    when = stamp(result.finished_at) if result.finished_at else "-"
    click.echo(
        f"{when}  {result.host:<20} {result.audit_name:<24} {outcome} {result.summary}  "
        f"({result.duration:.2f}s)"
    )


def _print_result_json(result: Result) -> None:
    click.echo(to_json(result.to_dict(), indent=None))


def _when(t: datetime, now: datetime) -> str:
    seconds = (t - now).total_seconds()
    relative = f"in {format_duration(seconds)}" if seconds >= 1 else "due"
    return f"{stamp(t)} ({relative})"


def _result_text(row: AuditRow) -> str:
    if row.disabled:
        return f"disabled: {row.disabled_reason or 'no reason given'}"
    if not row.result:
        return "-"
    return f"{row.result.get('outcome', '?')}: {row.result.get('summary', '')}"
