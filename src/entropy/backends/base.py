"""The contract every backend keeps: definitions in, state kept."""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Hashable, Iterable
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from oslo_config import cfg

from ..config import option, splay_cap, state_dir
from ..errors import BackendError
from ..gcpause import gc_paused
from ..model import AuditRow, Catalog, Pair, SyncReport
from ..removal import RemovalPolicy, RemovalRefused
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
            self._state = SqlStateStore(self.state_url())
        return self._state

    def sync(
        self,
        catalog: Catalog,
        now: datetime,
        *,
        force: bool = False,
        remove: bool = True,
        previous: Catalog | None = None,
        actor: str = "",
    ) -> SyncReport:
        """Make the state rows match the catalog, within max_removal unless forced.

        remove=False only adds and updates rows. A refusal (RemovalRefused)
        names where the rows came from when `previous`, the catalog they were
        synced from, is given.
        """
        policy = RemovalPolicy(
            max_removal=float(option(self.conf, "max_removal")),
            force=force,
            remove=remove,
            disable_retention=float(option(self.conf, "disable_retention")),
            actor=actor,
        )
        try:
            return self.state.sync(
                catalog.pairs,
                now,
                splay_cap(self.conf),
                float(option(self.conf, "max_clock_skew")),
                policy,
            )
        except RemovalRefused as exc:
            exc.current, exc.previous = catalog, previous
            raise

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
    resolved = definitions.expanduser().resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = resolved.stem or "root"
    return f"sqlite:///{state_dir(conf) / f'{backend}-{stem}-{digest}.sqlite'}"
