"""Definitions from one YAML file: hosts:, scripts:, schedules: and repairs: sections."""

from __future__ import annotations

from pathlib import Path

from ..config import option
from ..definitions import (
    Problems,
    build_catalog,
    parse_hosts,
    parse_repairs,
    parse_schedules,
    parse_scripts,
)
from ..dump import write_file
from ..errors import BackendError
from ..model import Catalog
from .base import DefinitionsSource, default_state_url

SECTIONS = frozenset({"hosts", "scripts", "schedules", "repairs"})


class FileDefinitions(DefinitionsSource):
    name = "file"

    @property
    def path(self) -> Path:
        return Path(self.location or str(option(self.conf, "path", "file"))).expanduser()

    def state_url(self) -> str:
        configured = option(self.conf, "state_connection", "file")
        return str(configured) if configured else default_state_url(self.conf, "file", self.path)

    def require_present(self) -> None:
        if not self.path.is_file():
            raise BackendError(
                f"definitions file {self.path} not found; pass --backend file:PATH.yaml "
                f"or set [file] path in entropy.conf"
            )

    def hint(self) -> str:
        return f"{self.path} (sections hosts:, scripts:, schedules:, repairs:)"

    def place(self) -> str:
        return f"{self.name}:{self.path.resolve()}"

    def describe(self) -> str:
        return f"{self.name}:{self.path}"

    def watched_paths(self) -> list[Path]:
        return [self.path]

    def load(self) -> Catalog:
        path = self.path
        if not path.is_file():
            raise BackendError(
                f"definitions file {path} not found; pass --backend file:PATH.yaml "
                f"or set [file] path in entropy.conf"
            )
        problems = Problems()
        where = str(path)
        doc = problems.read(path)
        if doc is not None and not isinstance(doc, dict):
            problems.add(
                where, (1, 1), "the file must be a mapping with hosts:, scripts:, schedules:"
            )
            doc = None
        doc = doc or {}
        for key in doc:
            if key not in SECTIONS:
                problems.add(
                    where,
                    doc.at(key),
                    f"unknown section {key!r} (allowed: {', '.join(sorted(SECTIONS))})",
                )
        timezone = str(option(self.conf, "cron_timezone"))
        hosts = parse_hosts(doc.get("hosts"), where, problems)
        scripts = parse_scripts(doc.get("scripts"), where, problems)
        schedules = parse_schedules(doc.get("schedules"), where, problems, timezone)
        repairs = parse_repairs(doc.get("repairs"), where, problems)
        return build_catalog(hosts, scripts, schedules, [where], problems, repairs)

    def write_definitions(self, catalog: Catalog) -> None:
        """Replace the file's definitions with the catalog's (written atomically)."""
        write_file(catalog, self.path, overwrite=True)


FileBackend = FileDefinitions  # its name before sources and stores were split (tests, plugins)
