"""Text for terminals: times and aligned tables, the same in every command."""

from __future__ import annotations

from datetime import UTC, datetime

import click


def stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())
