"""The state store's schema: its revision, and upgrading it (`entropy db`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends import Capability
from ..backends.base import StateStore, safe_url
from .runtime import Runtime


def _store(rt: Runtime) -> StateStore:
    # An upgrade may rewrite big tables: no statement timeout for it.
    return rt.backend.open_state(check_schema=False, long_statements=not rt.read_only)


def current(rt: Runtime) -> dict[str, Any]:
    """{"url", "current" (None when empty), "head", "up_to_date"}."""
    store = _store(rt)
    try:
        at, needed = store.schema_revision(), store.schema_head()
    finally:
        store.close()
    url = safe_url(rt.backend.state_url())  # not store.url: one not made yet reads empty
    return {"url": url, "current": at, "head": needed, "up_to_date": at == needed}


@dataclass(frozen=True, slots=True)
class Upgrade:
    url: str
    before: str | None  # None: the store was empty
    after: str | None
    migrations: bool = True  # False: the store keeps no schema (nothing to upgrade)

    @property
    def upgraded(self) -> bool:
        return self.migrations and self.before != self.after

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "before": self.before, "after": self.after,
                "upgraded": self.upgraded}  # fmt: skip


def upgrade(rt: Runtime) -> Upgrade:
    """Create or upgrade the state store's tables to this version of Entropy."""
    store = _store(rt)
    try:
        if not store.can(Capability.SCHEMA_MIGRATIONS):
            return Upgrade(store.describe(), None, None, migrations=False)
        before, after = store.upgrade_schema()
    finally:
        store.close()
    return Upgrade(safe_url(store.url), before, after)
