"""Alembic environment: run on the connection Entropy hands over, against its tables."""

from __future__ import annotations

from alembic import context

from entropy.backends.sqlalchemy.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
