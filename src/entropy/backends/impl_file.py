"""Definitions from one YAML file: hosts:, scripts:, schedules:, repairs: and downtimes:."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..config import option
from ..definitions import (
    MarkedMap,
    Problems,
    build_catalog,
    parse_downtimes,
    parse_hosts,
    parse_repairs,
    parse_schedules,
    parse_scripts,
)
from ..dump import write_file
from ..errors import BackendError
from ..model import Catalog
from ..parsecache import ParseCache
from ..regularfile import not_regular_reason
from ..yamlread import new_map
from .base import DefinitionsSource, default_state_url

SECTIONS = frozenset({"hosts", "scripts", "schedules", "repairs", "downtimes"})
OPTIONAL = frozenset({"repairs", "downtimes"})  # a fleet may only audit


class FileDefinitions(DefinitionsSource):
    name = "file"

    @property
    def path(self) -> Path:
        return Path(self.location or str(option(self.conf, "path", "file"))).expanduser()

    def state_url(self) -> str:
        configured = option(self.conf, "state_connection", "file")
        return str(configured) if configured else default_state_url(self.conf, "file", self.path)

    def require_present(self) -> None:
        why = not_regular_reason(self.path)  # a FIFO or a device would block the read
        if why is not None:
            raise BackendError(
                f"definitions file {self.path} {why}; pass --backend file:PATH.yaml "
                f"or set [file] path in entropy.conf"
            )

    def hint(self) -> str:
        return f"{self.path} (sections hosts:, scripts:, schedules:, repairs:, downtimes:)"

    def place(self) -> str:
        return f"{self.name}:{self.path.resolve()}"

    def describe(self) -> str:
        return f"{self.name}:{self.path}"

    def watched_paths(self) -> list[Path]:
        return [self.path]

    def load(self) -> Catalog:
        """Every definition, validated as a whole; the file is parsed again only if it changed
        (see entropy.parsecache)."""
        path = self.path
        self.require_present()
        problems = Problems()
        self._cache.start()
        hosts, scripts, schedules, repairs, downtimes = self._cache.get(
            path, problems, lambda: self._parse(path, problems), _copy_parts
        )
        return build_catalog(hosts, scripts, schedules, [str(path)], problems, repairs, downtimes)

    @functools.cached_property
    def _cache(self) -> ParseCache:
        return ParseCache()

    def _parse(self, path: Path, problems: Problems) -> tuple[Any, Any, Any, Any, Any]:
        where = str(path)
        doc = problems.read(path)
        if doc is None and where not in problems.unreadable:
            problems.add(
                where,
                (1, 1),
                "the definitions file is empty; it needs hosts:, scripts: and schedules: "
                "sections (an empty file would remove every host and audit)",
            )
        if doc is not None and not isinstance(doc, dict):
            problems.add(
                where, (1, 1), "the file must be a mapping with hosts:, scripts:, schedules:"
            )
            doc = None
        doc = doc if doc is not None else new_map((1, 1))
        for key in doc:
            if key not in SECTIONS:
                problems.add(
                    where,
                    doc.at(key),
                    f"unknown section {key!r} (allowed: {', '.join(sorted(SECTIONS))})",
                )
        timezone = str(option(self.conf, "cron_timezone"))
        sections = {key: _section(doc, key, where, problems) for key in SECTIONS}
        hosts = parse_hosts(sections["hosts"], where, problems)
        scripts = parse_scripts(sections["scripts"], where, problems)
        schedules = parse_schedules(sections["schedules"], where, problems, timezone)
        repairs = parse_repairs(sections["repairs"], where, problems)
        downtimes = parse_downtimes(sections["downtimes"], where, problems, timezone)
        return hosts, scripts, schedules, repairs, downtimes

    def write_definitions(self, catalog: Catalog) -> None:
        """Replace the file's definitions with the catalog's (written atomically)."""
        write_file(catalog, self.path, overwrite=True)


FileBackend = FileDefinitions  # its name before sources and stores were split (tests, plugins)


def _copy_parts(parts: tuple[Any, Any, Any, Any, Any]) -> tuple[Any, Any, Any, Any, Any]:
    hosts, scripts, schedules, repairs, downtimes = parts
    return dict(hosts), dict(scripts), list(schedules), dict(repairs), dict(downtimes)


def _section(doc: MarkedMap, key: str, where: str, problems: Problems) -> MarkedMap:
    """A section's mapping; a missing or empty one is a problem (repairs: and downtimes: are
    optional).

    A section cut off or emptied by mistake would otherwise remove every
    host, script or audit it held; `hosts: {}` says there are none.
    """
    if key not in doc:
        if key not in OPTIONAL and where not in problems.unreadable and doc:
            problems.add(where, (1, 1), f"no {key}: section; write `{key}: {{}}` if there are none")
        return new_map((1, 1))
    value = doc[key]
    if value is None:
        problems.add(
            where,
            doc.at(key),
            f"{key}: is empty; write `{key}: {{}}` if it is meant to define none",
        )
        return new_map(doc.at(key))
    return value
