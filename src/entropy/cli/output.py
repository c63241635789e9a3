"""How the CLI shows things: times, aligned tables, JSON, result lines and their colours."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

from ..backends.base import RepairRecord
from ..jsonout import to_json
from ..model import AuditRow, Outcome, RepairRun, RepairState, Result
from ..service import logs
from ..timing import format_duration

COLOURS = {
    Outcome.OK: "green",
    Outcome.WARNING: "yellow",
    Outcome.CRITICAL: "red",
    Outcome.UNKNOWN: "magenta",
    Outcome.ERROR: "red",
    Outcome.TIMEOUT: "red",
    Outcome.UNREACHABLE: "blue",
}


def say(text: str, level: int = logging.INFO, message: str | None = None) -> None:
    """A line for the operator on stderr; under --log-format json, a JSON log line instead
    (its message: `message`, else the text), so a log shipper reads every line."""
    if logs.structured():
        logs.notice(text if message is None else message, level)
    else:
        click.echo(text, err=True)


def stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


def print_json(value: Any) -> None:
    click.echo(to_json(value))


def report(as_json: bool, value: dict[str, Any], text: str) -> None:
    """What a changing command did: `value` with --json, else `text`."""
    if as_json:
        print_json(value)
    else:
        click.echo(text)


def plural(count: int | None, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# -- audit results and rows --------------------------------------------------------------


def print_result_line(result: Result) -> None:
    outcome = click.style(
        f"{result.outcome.value.upper():8}",
        fg=COLOURS[result.outcome],
        bold=result.outcome is not Outcome.OK,
    )
    when = stamp(result.finished_at) if result.finished_at else "-"
    click.echo(
        f"{when}  {result.host:<20} {result.audit_name:<24} {outcome} {result.summary}  "
        f"({result.duration:.2f}s)"
    )


def print_result_json(result: Result) -> None:
    click.echo(to_json(result.to_dict(), indent=None))


def when(t: datetime, now: datetime) -> str:
    seconds = (t - now).total_seconds()
    relative = f"in {format_duration(seconds)}" if seconds >= 1 else "due"
    return f"{stamp(t)} ({relative})"


def result_text(row: AuditRow, marks: str | None = None) -> str:
    """The latest result; with monitoring, a soft state's attempt and flapping; then marks
    (in downtime, acknowledged)."""
    if row.disabled:
        return f"disabled: {row.disabled_reason or 'no reason given'}"
    if not row.result:
        return "-" if not marks else f"- [{marks}]"
    outcome = row.result.get("outcome", "?")
    state = row.monitor
    if state is not None and state.state_type.value == "soft":
        outcome += f" (soft, attempt {state.attempt})"
    if state is not None and state.flapping:
        outcome += " (flapping)"
    text = f"{outcome}: {row.result.get('summary', '')}"
    return f"{text} [{marks}]" if marks else text


# -- repairs -----------------------------------------------------------------------------


def print_repair_line(run: RepairRun) -> None:
    result = run.result
    verify = f", {run.verify.value.replace('_', ' ')}" if run.verify else ""
    outcome = click.style(f"{result.outcome.value.upper():8}", bold=True,
                          fg="green" if result.outcome is Outcome.OK else "red")  # fmt: skip
    when = stamp(result.finished_at) if result.finished_at else "-"
    click.echo(
        f"{when}  {result.host:<20} {'repair ' + run.repair_name:<24} {outcome} "
        f"{result.summary} (attempt {run.attempt}{verify}; after {run.audit_name} "
        f"{run.trigger.outcome.value})"
    )


def print_repair_json(run: RepairRun) -> None:
    click.echo(to_json({"kind": "repair", **run.to_dict()}, indent=None))


def print_repair_summary(flagged: list[RepairState], runs: list[RepairRecord]) -> None:
    """Under `entropy status`: flagged hosts, then the latest repair runs."""
    if not (flagged or runs):
        return
    for s in flagged:
        click.echo(
            click.style(f"\nFLAGGED {s.host}: ", fg="red", bold=True)
            + f"{s.flagged_reason} (entropy repair reset {s.host} {s.repair_name})"
        )
    if runs:
        click.echo("\nlatest repairs:")
        print_repair_history(runs, as_json=False)


def print_repair_history(found: list[RepairRecord], as_json: bool) -> None:
    """`entropy results --kind repair`: stored runs, oldest first on a terminal."""
    if as_json:
        print_json([{"kind": "repair", **r.to_dict()} for r in found])
        return
    for r in reversed(found):
        verify = f", {r.verify.replace('_', ' ')}" if r.verify else ""
        click.echo(
            f"{stamp(r.finished_at)}  {r.host:<20} {'repair ' + r.repair_name:<24} "
            f"{r.outcome.upper():8} {r.summary or ''} (attempt {r.attempt}{verify}; "
            f"after {r.audit_name} {(r.trigger_result or {}).get('outcome', '?')})"
        )
    if not found:
        say("no repair runs match")
