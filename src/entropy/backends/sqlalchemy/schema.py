"""The schema's version: Alembic migrations shipped in the package.

SQLite state files (the embedded default) are upgraded on open, so Entropy
runs with no setup. A PostgreSQL or MySQL database is shared and belongs to
its operator: it is upgraded only by `entropy db upgrade`, and an engine
refuses to use one whose schema is out of date.

Alembic itself is imported only to upgrade. Every command that opens a store
asks which revision it needs and which the database is at; through Alembic
that import (its script and DDL modules, Mako, Pygments) cost ~0.4 s of CPU in
each `entropy` process, a third of a short command. The head is read from the
migration files' own `revision` / `down_revision` lines and the current
revision from Alembic's version table, as Alembic reads them
(tests/backends/test_migrations.py checks both against Alembic).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, column, inspect, select, table

from ...errors import BackendError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic's default version table, which migrations/env.py keeps.
VERSION_TABLE = table("alembic_version", column("version_num"))


def _config(conn: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _revises(path: Path) -> tuple[str, tuple[str, ...]]:
    """A migration file's `revision` and the revisions its `down_revision` names."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                found[target.id] = ast.literal_eval(node.value)
    revision, down = found.get("revision"), found.get("down_revision")
    if not isinstance(revision, str):
        raise BackendError(f"migration {path.name} has no literal `revision = '...'`")
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)  # a merge of branches
    raise BackendError(f"migration {path.name}: down_revision {down!r} is not revision names")


# The migrations ship inside the package, so their head cannot change while a process
# runs: read once, it spares every later store open the scan of the versions directory.
@functools.cache
def head() -> str:
    """The revision this version of Entropy needs: the one no other migration revises."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        if path.name.startswith(("__init__", ".#")):  # Alembic skips these too
            continue
        revision, downs = _revises(path)
        revisions.add(revision)
        revised.update(downs)
    heads = revisions - revised
    if len(heads) > 1:
        raise BackendError(f"the shipped migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop() if heads else ""


def current(conn: Connection) -> str | None:
    """The revision the database is at; None for an empty database."""
    if not inspect(conn).has_table(VERSION_TABLE.name):
        return None
    at = conn.execute(select(VERSION_TABLE.c.version_num)).scalars().all()
    if len(at) > 1:
        raise BackendError(
            f"the database's {VERSION_TABLE.name} table names {len(at)} revisions: {at}"
        )
    return at[0] if at else None


def upgrade(conn: Connection) -> None:
    from alembic import command

    command.upgrade(_config(conn), "head")
