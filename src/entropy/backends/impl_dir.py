"""Definitions from a directory: hosts.yaml, scripts.yaml, audits/*.yaml, repairs.yaml and
downtimes.yaml (the last two optional)."""

from __future__ import annotations

import functools
import os
from functools import partial
from pathlib import Path

from ..config import option
from ..definitions import (
    Problems,
    build_catalog,
    parse_downtimes,
    parse_hosts,
    parse_repairs,
    parse_schedules,
    parse_scripts,
)
from ..dump import write_dir
from ..errors import BackendError, Location
from ..model import Catalog, Schedule
from ..parsecache import ParseCache
from .base import DefinitionsSource
from .fleet_state import fleet_state_file


def _schedules_of(path: Path, problems: Problems, timezone: str) -> list[Schedule]:
    return parse_schedules(problems.read(path), str(path), problems, timezone)


class DirDefinitions(DefinitionsSource):
    name = "dir"

    @property
    def path(self) -> Path:
        return Path(self.location or str(option(self.conf, "path", "dir"))).expanduser()

    def state_url(self) -> str:
        """[dir] state_connection, else the fleet's own SQLite file (see fleet_state)."""
        configured = option(self.conf, "state_connection", "dir")
        if configured:
            return str(configured)
        if self._fleet_state is None:
            self._fleet_state = fleet_state_file(self.conf, self.path, create=not self.read_only)
        return f"sqlite:///{self._fleet_state}"

    _fleet_state: Path | None = None

    def require_present(self) -> None:
        if not self.path.is_dir():
            why = "not found"
            if self.path.exists():  # a mistyped file:, or a file where the directory was
                why = "is a file, not a directory"
            elif self.path.is_symlink():
                why = "is a dangling or looping symbolic link"
            raise BackendError(
                f"definitions directory {self.path} {why}; pass --backend dir:PATH "
                f"or set [dir] path in entropy.conf"
            )

    def hint(self) -> str:
        root = self.path
        return (
            f"{root}/hosts.yaml, {root}/scripts.yaml, {root}/audits/*.yaml, "
            f"{root}/repairs.yaml and {root}/downtimes.yaml"
        )

    def schedule_files(self) -> list[Path]:
        audits = self.path / "audits"
        return sorted([*audits.glob("*.yaml"), *audits.glob("*.yml")])

    def place(self) -> str:
        return f"{self.name}:{self.path.resolve()}"

    def describe(self) -> str:
        return f"{self.name}:{self.path}"

    def watched_paths(self) -> list[Path]:
        root = self.path
        return [
            root / "hosts.yaml",
            root / "scripts.yaml",
            root / "repairs.yaml",
            root / "downtimes.yaml",
            root / "audits",
            *self.schedule_files(),
        ]

    def load(self) -> Catalog:
        """Every definition, validated as a whole; files unchanged since the last load are
        not parsed again (see entropy.parsecache)."""
        root = self.path
        self.require_present()
        cache = self._cache
        cache.start()
        problems = Problems()
        hosts_path, scripts_path = root / "hosts.yaml", root / "scripts.yaml"
        # Streamed: a host's values are dropped once it is checked (583,000 hosts, 50 MB).
        hosts = cache.get(
            hosts_path, problems,
            lambda: parse_hosts(problems.stream(hosts_path), str(hosts_path), problems), dict.copy,
        )  # fmt: skip
        scripts = cache.get(
            scripts_path, problems,
            lambda: parse_scripts(problems.read(scripts_path), str(scripts_path), problems),
            dict.copy,
        )  # fmt: skip
        timezone = str(option(self.conf, "cron_timezone"))
        files = self.schedule_files()
        if not files:
            problems.report(Location(str(root / "audits")), "no schedule files (*.yaml) here")
        schedules: list[Schedule] = []
        for path in files:
            found = cache.get(
                path, problems,
                partial(_schedules_of, path, problems, timezone), list.copy,
            )  # fmt: skip
            schedules += found
        repairs_path = root / "repairs.yaml"  # optional: a fleet may only audit
        repairs = (
            cache.get(
                repairs_path,
                problems,
                lambda: parse_repairs(problems.read(repairs_path), str(repairs_path), problems),
                dict.copy,
            )
            if os.path.lexists(repairs_path)  # a broken link is a problem, not "no repairs"
            else {}
        )
        downtimes_path = root / "downtimes.yaml"  # optional: planned maintenance windows
        downtimes = (
            cache.get(
                downtimes_path, problems,
                lambda: parse_downtimes(
                    problems.read(downtimes_path), str(downtimes_path), problems, timezone
                ),
                dict.copy,
            )
            if downtimes_path.exists()
            else {}
        )  # fmt: skip
        cache.forget_others(
            {str(p) for p in (hosts_path, scripts_path, repairs_path, downtimes_path, *files)}
        )
        return build_catalog(hosts, scripts, schedules, [str(p) for p in files], problems, repairs,
                             downtimes)  # fmt: skip

    @functools.cached_property
    def _cache(self) -> ParseCache:
        return ParseCache()

    def write_definitions(self, catalog: Catalog) -> None:
        """Replace the directory's definitions with the catalog's (seed format, atomic per file)."""
        write_dir(catalog, self.path, overwrite=True)


DirBackend = DirDefinitions  # its name before sources and stores were split (tests, plugins)
