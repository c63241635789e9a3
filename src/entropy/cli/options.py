"""Global options after the command too: `entropy status --backend dir:fleet`.

click reads a group's options only before its subcommand's name. Every
command (and sub-group) therefore also takes --config-file, --config-dir,
--backend, -v and --log-format; they fill in the Runtime that `entropy` made just before
(click runs the group's callback before it parses the subcommand's
arguments), which opens nothing until the command asks for it. Given
twice, the later --backend wins; config files and -v add up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import click

from ..service import logs

# Commands whose backends are their arguments: --backend would mean nothing there.
NO_BACKEND = frozenset({"import", "export"})


def log_level(verbose: int) -> int:
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def accept_global_options(group: click.Group) -> None:
    """Add the global options to every command under `group`, sub-groups included."""
    for name, command in group.commands.items():
        command.params.extend(_options(with_backend=name not in NO_BACKEND))
        if isinstance(command, click.Group):
            accept_global_options(command)


def _options(with_backend: bool) -> list[click.Option]:
    options = [
        click.Option(["--config-file"], multiple=True, metavar="FILE", expose_value=False,
                     callback=_add("config_files"),
                     help="Global option, also accepted before the command: entropy.conf to "
                     "read (repeatable)."),
        click.Option(["--config-dir"], multiple=True, metavar="DIR", expose_value=False,
                     callback=_add("config_dirs"),
                     help="Global option: a directory of *.conf files (repeatable)."),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_verbose,
                     help="Global option: log more (-v: info, -vv: debug)."),
        click.Option(["--log-format"], type=click.Choice(logs.FORMATS), metavar="FMT",
                     expose_value=False, callback=_log_format,
                     help="Global option: log as text, or json (one JSON object a line)."),
    ]  # fmt: skip
    if with_backend:
        options.insert(0, click.Option(
            ["--backend"], metavar="URL", expose_value=False, callback=_backend,
            help="Global option, also accepted before the command: the backend to use "
            "(dir:PATH, file:PATH.yaml or a database URL).",
        ))  # fmt: skip
    return options


def _add(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> None:
        if value:
            setattr(ctx.obj, attribute, (*getattr(ctx.obj, attribute), *value))

    return callback


def _backend(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj.backend_url = value


def _verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        before = ctx.find_root().params.get("verbose") or 0
        logs.set_level(log_level(before + value))


def _log_format(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        logs.use_format(value)
