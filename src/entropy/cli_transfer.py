"""`entropy import` and `entropy export`: moving a fleet between backends.

Kept out of cli.py so the main module stays about running audits; cli.py
registers these commands. Like the rest of the CLI, nothing imports this.
The group's object (the Session) gives the config; every error here is an
EntropyError, which the group turns into a message and an exit status.
"""

from __future__ import annotations

from typing import Any

import click

from . import ansible
from .backends import Backend, fetch, parse_backend_url
from .backends.base import safe_url
from .definitions import Problems
from .dump import write_dir, write_file
from .errors import BackendError
from .gctuning import collector_paused
from .jsonout import print_json
from .model import Catalog
from .progress import progress_on_terminal
from .transfer import (
    catalog_differences,
    check_state_copy,
    copy_state,
    replace_hosts,
    same_definitions,
    same_state,
)


@click.command("import")
@click.argument("src_url", metavar="SRC_URL")
@click.argument("dst_url", metavar="DST_URL")
@click.option(
    "--with-state",
    is_flag=True,
    help="Also replace DST's audit rows (next_run, disabled flags, latest result) "
    "and result history with SRC's.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --with-state: replace DST's rows even when more than max_removal of them "
    "have no row at SRC and would go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (see below).")
@click.pass_obj
def import_command(
    session: Any, src_url: str, dst_url: str, with_state: bool, force: bool, as_json: bool
) -> None:
    """Copy a fleet's definitions from SRC_URL to DST_URL, replacing DST's.

    Either URL may be any backend: dir:PATH, file:PATH.yaml, or a database
    (sqlite:///PATH, postgresql+psycopg://..., mysql+pymysql://...). SRC is
    validated first: with a problem in its definitions nothing at DST
    changes. After writing, DST is loaded back and must give the same fleet.

    SRC_URL may also be ansible:INVENTORY, an Ansible inventory (YAML, INI,
    or the JSON of `ansible-inventory --list`; ansible:- reads stdin). It
    gives hosts only: they replace DST's hosts, and DST keeps its scripts,
    schedules and repairs (a new DST gets the hosts alone). ansible_host
    becomes the address (a DNS name is resolved now, and kept for SSH),
    ansible_user/ansible_port/ProxyJump in ansible_ssh_common_args the
    host's ssh:, groups (nested children too) its groups, the first one its
    host_type (or the var entropy_host_type), the other vars its vars.

    Without --with-state DST keeps its own audit rows; run `entropy sync`
    on it to match them to the new definitions. Stop the engines that use
    DST before --with-state: their rows are replaced. When that would drop
    more than max_removal of DST's rows (those SRC has no row for), it is
    refused before anything is written, unless --force.

    --json prints {"source", "destination", "hosts", "scripts", "schedules",
    "audits", "state"}: counts of what was copied; state is null without
    --with-state, else {"rows", "results", "removed"} (removed: DST's rows
    that SRC had no row for).

    \b
    Examples:
      entropy import dir:/etc/entropy/fleet sqlite:////var/lib/entropy/fleet.db
      entropy import dir:fleet file:fleet.yaml --with-state
      entropy import postgresql+psycopg://entropy@db/entropy dir:/tmp/fleet
      entropy import ansible:/etc/ansible/hosts.yaml dir:/etc/entropy/fleet
      ansible-inventory -i inventory/ --list | entropy import ansible:- sqlite:///fleet.db
    """
    if src_url.startswith("ansible:"):
        if with_state:
            raise click.UsageError("an Ansible inventory has no state: leave out --with-state")
        _import_inventory(session, src_url, dst_url, as_json)
        return
    src, dst = _backends(session, src_url, dst_url)
    try:
        if same_definitions(src, dst):
            raise click.UsageError(f"SRC_URL and DST_URL are the same place: {src_url}")
        if with_state and same_state(src, dst):
            raise BackendError(
                f"SRC and DST share the state store {safe_url(src.state_url())}: "
                f"there is no state to copy; leave out --with-state"
            )
        if with_state:  # open both stores now: a store that is behind fails before any write
            _ = (src.state, dst.state)
        with progress_on_terminal(quiet=as_json), collector_paused():  # a large fleet
            catalog = src.load()  # a problem in SRC's definitions changes nothing at DST
            removed = check_state_copy(src, dst, force) if with_state else 0
            dst.write_definitions(catalog)
            _check_written(catalog, dst, dst_url)
            rows, history = copy_state(src, dst) if with_state else (None, None)
    finally:
        src.close()
        dst.close()
    if as_json:
        report = _counts(catalog, src_url, dst_url)
        report["state"] = (
            None if rows is None else {"rows": rows, "results": history, "removed": removed}
        )
        print_json(report)
        return
    state = ""
    if rows is not None:
        state = f"; state: {_plural(rows, 'row')}, {_plural(history, 'result')}"
        state += f" ({removed} rows of DST without a row at SRC removed)" if removed else ""
    click.echo(f"copied {_summary(catalog)} from {safe_url(src_url)} to {safe_url(dst_url)}{state}")


@click.command("export")
@click.argument("src_url", metavar="SRC_URL")
@click.option(
    "--to",
    "to_url",
    required=True,
    metavar="dir:PATH|file:PATH.yaml",
    help="Where to write: a directory (hosts.yaml, scripts.yaml, audits/<target>.yaml) "
    "or one file with hosts:, scripts: and schedules: sections.",
)
@click.option("--force", is_flag=True, help="Replace definitions already at the destination.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (see below).")
@click.pass_obj
def export_command(session: Any, src_url: str, to_url: str, force: bool, as_json: bool) -> None:
    """Write SRC_URL's definitions as YAML in the seed format.

    SRC is validated first; the files written load back to the same fleet
    (checked before this returns). Schedules are written one file per target,
    durations in their shortest spelling (1d, 30m), and only settings that
    differ from the defaults. Comments and script descriptions are not kept.
    Each file is replaced atomically. Without --force, a destination that
    already holds definitions is refused.

    --json prints {"source", "destination", "hosts", "scripts", "schedules",
    "audits", "files": [the paths written]}.

    \b
    Examples:
      entropy export postgresql+psycopg://entropy@db/entropy --to dir:/tmp/fleet
      entropy export dir:/etc/entropy/fleet --to file:fleet.yaml
      entropy export sqlite:////var/lib/entropy/fleet.db --to dir:fleet --force
    """
    kind, location = parse_backend_url(to_url)
    if kind not in ("dir", "file") or not location:
        raise click.BadParameter(
            f"{to_url!r}: export writes YAML, give dir:PATH or file:PATH.yaml "
            f"(to copy into a database use `entropy import`)",
            param_hint="--to",
        )
    src = fetch(session.conf, src_url)
    try:
        catalog = src.load()
    finally:
        src.close()
    if kind == "dir":
        files = write_dir(catalog, location, overwrite=force)
    else:
        files = [write_file(catalog, location, overwrite=force)]
    dst = fetch(session.conf, f"{kind}:{location}")
    try:
        _check_written(catalog, dst, to_url)
    finally:
        dst.close()
    if as_json:
        report = _counts(catalog, src_url, to_url)
        report["files"] = [str(path) for path in files]
        print_json(report)
        return
    click.echo(
        f"exported {_summary(catalog)} from {safe_url(src_url)} to {to_url} "
        f"({_plural(len(files), 'file')})"
    )


def _import_inventory(session: Any, src_url: str, dst_url: str, as_json: bool) -> None:
    spec = src_url.removeprefix("ansible:")
    if not spec:
        raise click.BadParameter("give ansible:PATH, or ansible:- for stdin", param_hint="SRC_URL")
    problems = Problems()
    hosts, warnings = ansible.read(spec, problems)
    problems.raise_if_any()
    if not hosts:
        raise BackendError(f"{spec}: the inventory has no hosts; nothing was changed")
    for warning in warnings:
        click.echo(f"entropy: warning: {warning}", err=True)
    dst = fetch(session.conf, dst_url)
    try:
        before, catalog = replace_hosts(dst, hosts)
        _check_written(catalog, dst, dst_url)
    finally:
        dst.close()
    if as_json:
        report = _counts(catalog, src_url, dst_url)
        report["replaced_hosts"] = len(before.hosts)
        print_json(report)
        return
    click.echo(
        f"imported {_plural(len(hosts), 'host')} from {src_url} into {safe_url(dst_url)} "
        f"(replacing {len(before.hosts)}); it now holds {_summary(catalog)}"
    )


def _backends(session: Any, src_url: str, dst_url: str) -> tuple[Backend, Backend]:
    src = fetch(session.conf, src_url)
    try:
        return src, fetch(session.conf, dst_url)
    except BaseException:
        src.close()
        raise


def _check_written(catalog: Catalog, dst: Backend, dst_url: str) -> None:
    """Load what was written: it must give the fleet that was copied."""
    differences = catalog_differences(catalog, dst.load())
    if differences:
        shown = "; ".join(differences[:5])
        more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
        raise BackendError(
            f"the definitions written to {safe_url(dst_url)} load back differently: {shown}{more}"
        )


def _summary(catalog: Catalog) -> str:
    return (
        f"{_plural(len(catalog.hosts), 'host')}, {_plural(len(catalog.scripts), 'script')}, "
        f"{_plural(len(catalog.schedules), 'schedule')} ({_plural(len(catalog.pairs), 'audit')})"
    )


def _counts(catalog: Catalog, src_url: str, dst_url: str) -> dict[str, Any]:
    return {
        "source": safe_url(src_url),
        "destination": safe_url(dst_url),
        "hosts": len(catalog.hosts),
        "scripts": len(catalog.scripts),
        "schedules": len(catalog.schedules),
        "audits": len(catalog.pairs),
    }


def _plural(count: int | None, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
