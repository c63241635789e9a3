"""What every command module shares: the runtime decorator, --json, command classes."""

from __future__ import annotations

from typing import Any

import click

from ..errors import DurationError
from ..service.errors import BadRequest
from ..service.runtime import Runtime
from ..timing import parse_duration

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

pass_runtime = click.make_pass_decorator(Runtime)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


class Command(click.Command):
    """A command whose service calls may refuse the request: a usage error, as click's own."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BadRequest as exc:
            if exc.param:
                raise click.BadParameter(str(exc), ctx=ctx, param_hint=exc.param) from None
            raise click.UsageError(str(exc), ctx=ctx) from None


class Group(click.Group):
    """A command group whose commands and sub-groups are of these classes."""

    command_class = Command
    group_class = type


def command(*args: Any, **kwargs: Any) -> Any:
    """click.command, making a Command."""
    return click.command(*args, cls=Command, **kwargs)


def group(*args: Any, **kwargs: Any) -> Any:
    """click.group, making a Group."""
    return click.group(*args, cls=Group, **kwargs)


def seconds(value: str, param_hint: str) -> float:
    """A duration option (30s, 1h, 1d) in seconds; a bad one is a usage error naming it."""
    try:
        return float(parse_duration(value))
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None


def exclusive_host_group(host: str | None, group: str | None) -> None:
    if host and group:
        raise click.UsageError("give --host or --group, not both")
