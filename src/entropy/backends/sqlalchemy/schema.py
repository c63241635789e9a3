"""The schema's version: Alembic migrations shipped in the package.

SQLite state files (the embedded default) are upgraded on open, so Entropy
runs with no setup. A PostgreSQL or MySQL database is shared and belongs to
its operator: it is upgraded only by `entropy db upgrade`, and an engine
refuses to use one whose schema is out of date.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    """The revision this version of Entropy needs."""
    return ScriptDirectory.from_config(_config()).get_current_head() or ""


def current(conn: Connection) -> str | None:
    """The revision the database is at; None for an empty database."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection) -> None:
    command.upgrade(_config(conn), "head")
