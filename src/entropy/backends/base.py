"""The contract every backend keeps: definitions in, state kept."""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Hashable, Iterable
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from oslo_config import cfg

from ..config import option, state_dir
from ..errors import BackendError, NoState
from ..gcpause import gc_paused
from ..model import AuditRow, Catalog, Pair, SyncReport
from .sqlalchemy.connecting import timeouts
from .sqlalchemy.state import SqlStateStore, safe_url


class Backend(abc.ABC):
    """A definitions source plus a state store.

    `load()` reads and validates the definitions (raising ValidationError
    with every problem, before anything is stored); the rest reads and
    writes the per-(audit, host) state rows.
    """

    name: ClassVar[str]
    # Whether `entropy host/schedule/script add|remove` can change the definitions.
    editable: ClassVar[bool] = False

    def __init__(self, conf: cfg.ConfigOpts, location: str | None = None) -> None:
        self.conf = conf
        self.location = location
        self._state: SqlStateStore | None = None

    def load(self) -> Catalog:
        """Read and validate every definition; raise ValidationError on any problem."""
        with gc_paused():
            return self._load()

    @abc.abstractmethod
    def _load(self) -> Catalog:
        """What load() does, for each backend to implement."""

    @abc.abstractmethod
    def state_url(self) -> str:
        """The SQLAlchemy URL of this backend's state store."""

    @abc.abstractmethod
    def definitions_hint(self) -> str:
        """Where an operator changes the definitions, for messages."""

    def require_editable(self, command: str) -> Backend:
        """This backend, if `entropy COMMAND` can change its definitions; else a clear error."""
        if not self.editable:
            raise BackendError(
                f"`entropy {command}` changes definitions kept in a database; the {self.name} "
                f"backend's live in YAML: edit {self.definitions_hint()}"
            )
        return self

    def write_definitions(self, catalog: Catalog) -> None:
        """Replace this backend's definitions with the catalog's (import, export)."""
        raise BackendError(f"the {self.name} backend cannot store definitions")

    def watched_paths(self) -> list[Path]:
        """Files whose change should trigger a refresh; none for a database."""
        return []

    def definitions_signature(self) -> Hashable:
        """Changes when any watched file is added, removed or modified."""
        signature = []
        for path in self.watched_paths():
            try:
                stat = path.stat()
            except OSError:
                signature.append((str(path), None))
            else:
                signature.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def describe(self) -> str:
        return f"{self.name}:{self.location} (state: {safe_url(self.state_url())})"

    @property
    def state(self) -> SqlStateStore:
        if self._state is None:
            self._state = self.open_state()
        return self._state

    # -- opening the state store: read-only, time-bounded --------------------------

    # Set by commands that only read: the store is opened read-only and never created.
    read_only: bool = False
    no_state: NoState | None = None  # why a read-only store read as empty: none was there

    def open_state(self, check_schema: bool = True, long_statements: bool = False) -> SqlStateStore:
        """A new connection to the state store, bounded by the [database] timeouts.

        long_statements: no statement_timeout (`entropy db upgrade`).
        """
        bounds = timeouts(self.conf, statement=not long_statements)
        try:
            return SqlStateStore(
                self.state_url(), check_schema, read_only=self.read_only, timeouts=bounds
            )
        except NoState as missing:
            if not self.read_only:
                raise
            # Nothing synced or run yet: answer as an empty store would (in memory), and
            # let the command say so; a command that only reads makes no file.
            self.no_state = missing
            return SqlStateStore("sqlite://", check_schema, timeouts=bounds)

    def require_present(self) -> None:
        """Raise BackendError when the definitions this backend names are not there."""
        return None  # a database is there if it answers

    def sync(self, catalog: Catalog, now: datetime) -> SyncReport:
        return self.state.sync(
            catalog.pairs,
            now,
            float(option(self.conf, "max_splay")),
            float(option(self.conf, "max_clock_skew")),
        )

    def audits(self, host: str | None = None, audit_name: str | None = None) -> list[AuditRow]:
        return self.state.audits(host=host, audit_name=audit_name)

    def set_disabled(self, pairs: Iterable[Pair], reason: str | None, now: datetime) -> int:
        return self.state.set_disabled(pairs, reason, now)

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None


def default_state_url(conf: cfg.ConfigOpts, backend: str, definitions: Path) -> str:
    """A SQLite file per definitions path, so two fleets never share rows by accident."""
    return f"sqlite:///{path_keyed_state(conf, backend, definitions)}"


def path_keyed_state(conf: cfg.ConfigOpts, backend: str, definitions: Path) -> Path:
    """state_dir/<backend>-<name>-<hash of the resolved path>.sqlite."""
    resolved = definitions.expanduser().resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = resolved.stem or "root"
    return state_dir(conf) / f"{backend}-{stem}-{digest}.sqlite"
