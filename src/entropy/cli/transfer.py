"""`entropy import` and `entropy export`: moving a fleet between backends."""

from __future__ import annotations

import logging

import click

from ..gctuning import collector_paused
from ..model import Catalog
from ..progress import progress_on_terminal
from ..service import transfer
from ..service.runtime import Runtime
from .common import command, pass_runtime
from .output import plural, print_json, say


@command("import")
@click.argument("src_url", metavar="SRC_URL")
@click.argument("dst_url", metavar="DST_URL")
@click.option(
    "--with-state",
    is_flag=True,
    help="Also replace DST's audit rows (next_run, disabled flags, latest result, monitoring "
    "state), result history, ad hoc downtimes, acks, repair states (attempts, flagged hosts) "
    "and repair history with SRC's.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --with-state: replace DST's rows even when more than max_removal of them "
    "have no row at SRC and would go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (see below).")
@pass_runtime
def import_command(
    rt: Runtime, src_url: str, dst_url: str, with_state: bool, force: bool, as_json: bool
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
    refused before anything is written, unless --force. A repair running at
    SRC arrives not running at DST, its attempt counted.

    --json prints {"source", "destination", "hosts", "scripts", "schedules",
    "audits", "state"}: counts of what was copied; state is null without
    --with-state, else {"rows", "results", "downtimes", "acks",
    "repair_states", "repair_runs", "removed"} (downtimes and acks: the ad
    hoc ones; repair_states: one per (repair, host) with attempts or a flag;
    removed: DST's rows that SRC had no row for).

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
        _import_inventory(rt, src_url, dst_url, as_json)
        return
    with progress_on_terminal(quiet=as_json), collector_paused():  # a large fleet
        done = transfer.import_fleet(rt, src_url, dst_url, with_state, force)
    state = done.state
    if as_json:
        report = done.counts()
        report["state"] = None if state is None else {
            "rows": state.rows, "results": state.results, "downtimes": state.downtimes,
            "acks": state.acks, "repair_states": state.repair_states,
            "repair_runs": state.repair_runs, "removed": state.removed}  # fmt: skip
        print_json(report)
        return
    text = ""
    if state is not None:
        text = f"; state: {plural(state.rows, 'row')}, {plural(state.results, 'result')}"
        if state.downtimes or state.acks:
            text += f", {plural(state.downtimes, 'downtime')}, {plural(state.acks, 'ack')}"
        if state.repair_states or state.repair_runs:
            text += (f", {plural(state.repair_states, 'repair state')}, "
                     f"{plural(state.repair_runs, 'repair run')}")  # fmt: skip
        if state.removed:
            text += f" ({state.removed} rows of DST without a row at SRC removed)"
    click.echo(f"copied {_summary(done.catalog)} from {done.source} to {done.destination}{text}")


@command("export")
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
@pass_runtime
def export_command(rt: Runtime, src_url: str, to_url: str, force: bool, as_json: bool) -> None:
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
    done = transfer.export_fleet(rt, src_url, to_url, force)
    if as_json:
        report = done.counts()
        report["files"] = [str(path) for path in done.files]
        print_json(report)
        return
    click.echo(
        f"exported {_summary(done.catalog)} from {done.source} to {to_url} "
        f"({plural(len(done.files), 'file')})"
    )


def _import_inventory(rt: Runtime, src_url: str, dst_url: str, as_json: bool) -> None:
    warn = lambda text: say(f"entropy: warning: {text}", logging.WARNING, text)  # noqa: E731
    done = transfer.import_inventory(rt, src_url, dst_url, on_warning=warn)
    if as_json:
        report = done.counts()
        report["replaced_hosts"] = done.replaced_hosts
        print_json(report)
        return
    click.echo(
        f"imported {plural(len(done.catalog.hosts), 'host')} from {src_url} into "
        f"{done.destination} (replacing {done.replaced_hosts}); it now holds "
        f"{_summary(done.catalog)}"
    )


def _summary(catalog: Catalog) -> str:
    return (
        f"{plural(len(catalog.hosts), 'host')}, {plural(len(catalog.scripts), 'script')}, "
        f"{plural(len(catalog.schedules), 'schedule')} ({plural(len(catalog.pairs), 'audit')})"
    )


COMMANDS = [import_command, export_command]
