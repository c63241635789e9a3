"""`entropy db current` and `db upgrade`: the state store's schema."""

from __future__ import annotations

import sys

import click

from ..service import schema
from ..service.runtime import Runtime
from .common import group, json_option, pass_runtime
from .output import print_json, report
from .readonly import read_only


@group()
def db() -> None:
    """The state store's schema: see its revision, upgrade it."""


@db.command("current")
@json_option
@pass_runtime
@read_only
def db_current(rt: Runtime, as_json: bool) -> None:
    """Print the schema revision of the state store and the one this Entropy needs.

    Exit status 0 when the store is up to date, 1 when it is behind or has
    no Entropy tables (run `entropy db upgrade`). --json prints {"url",
    "current" (null when empty), "head", "up_to_date"}.
    """
    found = schema.current(rt)
    if as_json:
        print_json(found)
    else:
        state = "up to date" if found["up_to_date"] else "out of date: run `entropy db upgrade`"
        click.echo(f"{found['url']}: revision {found['current'] or '(empty)'}, "
                   f"needs {found['head']}; {state}")  # fmt: skip
    if not found["up_to_date"]:
        sys.exit(1)


@db.command("upgrade")
@json_option
@pass_runtime
def db_upgrade(rt: Runtime, as_json: bool) -> None:
    """Create or upgrade the state store's tables to this version of Entropy.

    Needed once for a PostgreSQL or MySQL/MariaDB state store, and after an
    upgrade of Entropy; SQLite state files are upgraded on their own.
    --json prints {"url", "before" (null when it was empty), "after",
    "upgraded": whether anything changed}.
    """
    done = schema.upgrade(rt)
    if not done.migrations:
        text = f"{done.url} keeps no schema: nothing to upgrade"
    elif done.before == done.after:
        text = f"{done.url}: already at revision {done.after}"
    else:
        text = f"{done.url}: upgraded from {done.before or '(empty)'} to {done.after}"
    report(as_json, done.to_dict(), text)


COMMANDS = [db]
