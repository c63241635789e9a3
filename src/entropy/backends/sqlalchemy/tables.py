"""The SQL schema, one definition for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, microseconds everywhere.

    Stored naive (as UTC) so every database compares them the same way;
    MySQL/MariaDB need DATETIME(6) or they drop the microseconds.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Entropy stores UTC-aware times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
NAME = 255

metadata = MetaData()
_PROCESSING = "status = 'processing'"

audits = Table(
    "audits",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("host", String(NAME), nullable=False),
    Column("ip_address", String(64), nullable=False),
    Column("audit_name", String(NAME), nullable=False),
    Column("next_run", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("disabled", Boolean(), nullable=False, default=False),
    Column("disabled_reason", Text()),
    Column("disabled_by", String(16)),
    Column("status", String(16), nullable=False, default="new"),
    Column("result", JSON()),
    Column("claimed_by", String(NAME)),
    Column("lease_until", UTCDateTime()),
    Column("attempts", Integer(), nullable=False, default=0),
    Column("monitor", JSON()),  # MonitorState.to_dict(); NULL without monitoring (0010)
    # The latest result's outcome and end (microseconds since the epoch), copied out of
    # `result` when it is written: what a /metrics scrape reads for every row, with no
    # JSON to open and no time to parse (0011).
    Column("outcome", String(16)),
    Column("finished_us", BigInteger()),
    UniqueConstraint("audit_name", "host", name="uq_audits_audit_host"),
    Index("ix_audits_next_run", "next_run"),
    Index("ix_audits_host", "host"),
    # Heartbeats renew one engine's leases and survivors look for expired ones:
    # without these, InnoDB would lock every row those UPDATEs scan. On SQLite
    # they cover only the rows in `processing` (migration 0005): each claim and
    # record then adds or removes one entry, instead of moving every row's.
    Index("ix_audits_claimed_by", "claimed_by", sqlite_where=text(_PROCESSING)),
    Index("ix_audits_lease_until", "lease_until", sqlite_where=text(_PROCESSING)),
)

results = Table(
    "results",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("host", String(NAME), nullable=False),
    Column("audit_name", String(NAME), nullable=False),
    Column("slot", UTCDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("summary", Text()),
    Column("output", Text()),
    Column("metrics", JSON()),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("engine_id", String(NAME)),
    Index("ix_results_host_audit", "host", "audit_name", "finished_at"),
    Index("ix_results_finished_at", "finished_at"),
)

engines = Table(
    "engines",
    metadata,
    Column("engine_id", String(NAME), primary_key=True),
    Column("hostname", String(NAME), nullable=False),
    Column("pid", Integer(), nullable=False),
    Column("version", String(64), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Column("stopped_at", UTCDateTime()),  # set by a clean stop; NULL while running (or dead)
    Column("stop_requested", Boolean(), nullable=False, default=False),
)

# -- definitions, for the sqlalchemy backend (the dir and file backends keep them in YAML) --

hosts = Table(
    "hosts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("ip_address", String(64), nullable=False),
    Column("host_type", String(NAME), nullable=False),
    Column("groups", JSON(), nullable=False),
    Column("vars", JSON(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("ssh", JSON()),  # hosts.yaml's `ssh:` mapping, NULL when the host has none
    Column("zone", String(64), nullable=False, server_default="default"),  # 0009
    Column("parents", JSON()),  # hosts.yaml's `parents:`, NULL when none (0010)
)

scripts = Table(
    "scripts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("params", JSON(), nullable=False),  # the kind's keys, as in scripts.yaml
    Column("timeout", Integer()),  # seconds
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("target", String(NAME), nullable=False),
    Column("audit_name", String(NAME), nullable=False),
    Column("run_every", Integer()),  # seconds; or cron
    Column("cron", String(NAME)),
    Column("disabled", Boolean(), nullable=False),
    Column("disabled_reason", Text()),
    Column("timeout", Integer()),
    Column("params", JSON(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("monitoring", JSON()),  # the entry's monitoring keys (dump.monitoring_keys) (0010)
    UniqueConstraint("target", "audit_name", name="uq_schedules_target_audit"),
)

# downtimes.yaml's entries, for definitions kept in the database (0010).
downtime_definitions = Table(
    "downtime_definitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("entry", JSON(), nullable=False),  # as downtimes.yaml writes it (dump.downtime_entry)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# A repair rule as its YAML entry (`when`, `run`, `cooldown`, ...), read back
# through the same parser as repairs.yaml.
repairs = Table(
    "repairs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("rule", JSON(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# -- repair state and history, kept by every backend beside the audit rows --

# One row per (repair, host) that has ever fired: its guardrails' memory.
repair_state = Table(
    "repair_state",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("repair_name", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("attempts", Integer(), nullable=False, default=0),  # runs since it last worked
    Column("last_started_at", UTCDateTime()),
    Column("running_by", String(NAME)),  # the engine running it now
    Column("running_until", UTCDateTime()),  # that engine's lease on it
    Column("flagged", Boolean(), nullable=False, default=False),
    Column("flagged_reason", Text()),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("repair_name", "host", name="uq_repair_state_repair_host"),
)

repair_runs = Table(
    "repair_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("repair_name", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("audit_name", String(NAME), nullable=False),  # the audit that triggered it
    Column("script", String(NAME), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("summary", Text()),
    Column("output", Text()),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("engine_id", String(NAME)),
    Column("verify", String(16)),  # fixed | not_fixed; NULL without verify
    Column("verify_outcome", String(16)),
    Column("verify_summary", Text()),
    Column("trigger_result", JSON()),  # the audit result that fired it
    Index("ix_repair_runs_host", "host", "finished_at"),
    Index("ix_repair_runs_finished_at", "finished_at"),
)

# An operator's disable of a pair a sync removed, kept for disable_retention
# so it is put back if the pair returns (a truncated file, then restored).
removed_disables = Table(
    "removed_disables",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("audit_name", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("disabled_reason", Text()),
    Column("removed_at", UTCDateTime(), nullable=False),
    Column("removed_by", String(NAME)),  # who synced it away: an engine id, `entropy sync` ...
    UniqueConstraint("audit_name", "host", name="uq_removed_disables_audit_host"),
    Index("ix_removed_disables_removed_at", "removed_at"),
)

# -- monitoring state (0010): ad hoc downtimes and acknowledgements --

downtimes = Table(
    "downtimes",
    metadata,
    Column("name", String(NAME), primary_key=True),  # its id
    Column("downtime", JSON(), nullable=False),  # Downtime.to_dict()
    Column("ends_at", UTCDateTime()),  # for expire_downtimes
    Index("ix_downtimes_ends_at", "ends_at"),
)

acks = Table(
    "acks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("audit_name", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("ack", JSON(), nullable=False),  # Ack.to_dict()
    Column("expires_at", UTCDateTime()),
    UniqueConstraint("audit_name", "host", name="uq_acks_audit_host"),
    Index("ix_acks_expires_at", "expires_at"),
)
