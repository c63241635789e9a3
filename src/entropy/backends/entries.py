"""Definitions kept in a database, read through the same parsers as the YAML files.

A database backend stores each host, script, schedule and repair as an
entry of the seed format (or columns that give one back), numbered in the
order they were added. `catalog_from_entries` turns them into a Catalog
exactly as the dir backend would, so an entry is validated like a YAML one;
a problem is reported at `WHERE#collection:number`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..definitions import (
    Problems,
    build_catalog,
    marked,
    parse_downtimes,
    parse_hosts,
    parse_repairs,
    parse_schedules,
    parse_scripts,
)
from ..errors import ConfigError, ValidationError
from ..model import Catalog

Entry = tuple[str, dict[str, Any], int]  # (name, the entry as in YAML, its number)
ScheduleEntry = tuple[str, str, dict[str, Any], int]  # (target, audit, entry, number)


def catalog_from_entries(
    where: str,
    timezone: str,
    hosts: Iterable[Entry],
    scripts: Iterable[Entry],
    schedules: Iterable[ScheduleEntry],
    repairs: Iterable[Entry],
    downtimes: Iterable[Entry] = (),
) -> Catalog:
    """Parse and validate stored entries; raise ValidationError naming `where#...:number`."""
    problems = Problems()
    by_target: dict[str, list[tuple[str, dict, tuple[int, int]]]] = {}
    for target, audit_name, entry, number in schedules:
        by_target.setdefault(target, []).append((audit_name, entry, (number, 1)))
    schedule_doc = marked(
        (target, {"audits": marked(entries)}, entries[0][2])
        for target, entries in by_target.items()
    )
    return build_catalog(
        parse_hosts(_doc(hosts), f"{where}#hosts", problems),
        parse_scripts(_doc(scripts), f"{where}#scripts", problems),
        parse_schedules(schedule_doc, f"{where}#schedules", problems, timezone),
        [f"{where}#schedules"],
        problems,
        parse_repairs(_doc(repairs), f"{where}#repairs", problems),
        parse_downtimes(_doc(downtimes), f"{where}#downtimes", problems, timezone),
    )


def _doc(entries: Iterable[Entry]) -> Any:
    return marked((name, entry, (number, 1)) for name, entry, number in entries)


def problems_of(load: Callable[[], object]) -> list[ConfigError]:
    """The problems `load()` finds in stored definitions; [] when they are valid."""
    try:
        load()
    except ValidationError as exc:
        return exc.problems
    return []


def refuse_new_problems(before: list[ConfigError], after: list[ConfigError]) -> None:
    """Refuse a change that leaves valid definitions invalid, or adds problems to invalid ones.

    Definitions written before a check existed (a host named `db_1`, say)
    may be invalid now; the changes that fix them one at a time must go
    through, so only a change that adds problems is refused.
    """
    if after and (not before or len(after) > len(before)):
        known = {str(p) for p in before}
        raise ValidationError([p for p in after if str(p) not in known] or after)
