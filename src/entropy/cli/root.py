"""The `entropy` group: global options, the runtime every command gets, errors to messages."""

from __future__ import annotations

import logging
import signal
from typing import Any

import click

from .. import __version__
from ..errors import EntropyError, ValidationError
from ..service import logs
from ..service.runtime import Runtime
from ..service.signals import Interrupted, raise_on_signals
from . import (
    api,
    audits,
    db,
    definitions,
    engine,
    fleet,
    monitoring,
    repairs,
    results,
    ssh,
    transfer,
    worker,
)
from .common import CONTEXT, Group
from .options import accept_global_options, log_level
from .output import say


class EntropyGroup(Group):
    """Turns Entropy's errors into one clear message and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (Interrupted, KeyboardInterrupt) as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            message = str(exc) if isinstance(exc, Interrupted) else "interrupted by SIGINT"
            say(f"entropy: {message}", logging.WARNING, message)
            ctx.exit(128 + signum)
        except ValidationError as exc:
            for problem in exc.problems:
                say(str(problem), logging.ERROR)
            count = len(exc.problems)
            say(f"{count} problem{'s' if count != 1 else ''}; nothing was changed", logging.ERROR)
            ctx.exit(2)
        except EntropyError as exc:
            say(f"entropy: error: {exc}", logging.ERROR, str(exc))
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
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    metavar="FMT",
    help="Log as text (the default), or json for log shippers: one JSON object a line, "
    "with time, level, logger, message and any extra fields.",
)
@click.version_option(__version__, prog_name="entropy")
@click.pass_context
def main(
    ctx: click.Context,
    config_file: tuple[str, ...],
    config_dir: tuple[str, ...],
    backend_url: str | None,
    verbose: int,
    log_format: str,
) -> None:
    """Audit a fleet of hosts on schedule and repair what the audits find.

    Definitions (hosts, scripts, schedules) and state (one row per audit and
    host) come from a backend chosen by entropy_backend in entropy.conf or by
    --backend. Options can also be set in the environment as
    OS_<GROUP>__<OPTION>, e.g. OS_DIR__PATH=/srv/fleet. --config-file,
    --config-dir, --backend, -v and --log-format work before the command or
    after it (`entropy status --backend URL`).

    \b
    Start with:
      entropy --backend dir:examples/local validate
      entropy --backend dir:examples/local engine run
      entropy --backend dir:examples/local results --limit 20
    """
    logs.configure(log_level(verbose), log_format)
    rt = Runtime(config_file, config_dir, backend_url)
    ctx.obj = rt
    ctx.call_on_close(lambda: _close(rt))
    ctx.call_on_close(raise_on_signals())


def _close(rt: Runtime) -> None:
    notice = rt.close()
    if notice:  # a read-only command found no store: it answered as an empty one
        say(f"entropy: {notice}", logging.WARNING, notice)


for _module in (fleet, audits, results, monitoring, definitions, db, engine, transfer, repairs,
                ssh, worker, api):  # fmt: skip
    for _command in _module.COMMANDS:
        main.add_command(_command)
accept_global_options(main)  # last: every command, wherever it was defined
