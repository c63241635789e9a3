"""Options (oslo.config) and list_opts() for `oslo-config-generator --namespace entropy`."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from oslo_config import cfg

from .errors import EntropyError
from .regularfile import not_regular_reason

DEFAULT_OPTS = [
    cfg.StrOpt(
        "entropy_backend",
        default="dir",
        help="Where definitions and state come from: the name of an entry point in "
        "'entropy.backends' (dir, file, sqlalchemy, mongodb, memory). --backend URL overrides it.",
    ),
    cfg.IntOpt(
        "max_workers", default=8, min=1, max=10_000, help="Audits an engine runs at the same time."
    ),
    cfg.IntOpt(
        "refresh_interval",
        default=300,
        min=1,
        max=31_622_400,
        help="Seconds between two reloads of the definitions by the scheduler. Each reload "
        "is incremental: only the files (or tables) that changed are read again, and only "
        "the audit rows of what changed are synced.",
    ),
    cfg.IntOpt(
        "full_resync_interval",
        default=3600,
        min=1,
        max=31_622_400,
        help="Seconds between two full re-syncs by an engine: every audit row is compared "
        "with the definitions and put right (a row removed or edited by other hands comes "
        "back). The reloads between them (refresh_interval) look only at what changed.",
    ),
    cfg.StrOpt("engine_id", help="This engine's name in the state store. Default: HOSTNAME:PID."),
    cfg.StrOpt(
        "state_dir",
        help="Where SQLite state files go when no state_connection is set. Default: "
        "$XDG_STATE_HOME/entropy, else ~/.local/state/entropy.",
    ),
    cfg.StrOpt(
        "cron_timezone",
        default="UTC",
        help="Timezone in which cron schedules are read (an IANA name).",
    ),
    cfg.IntOpt(
        "default_timeout",
        default=60,
        min=1,
        max=86_400,
        help="Seconds an audit may run when neither its schedule nor its script sets a timeout.",
    ),
    cfg.IntOpt(
        "shutdown_grace",
        default=10,
        min=0,
        max=86_400,
        help="Seconds running audits get to finish when the engine is asked to stop; then "
        "they are killed and their claims go back to new.",
    ),
    cfg.IntOpt(
        "result_retention",
        default=7 * 86400,
        min=60,
        max=316_224_000,
        help="Seconds of result history to keep; older results are pruned.",
    ),
    cfg.FloatOpt(
        "heartbeat_interval",
        default=5.0,
        min=0.1,
        max=3_600,
        help="Seconds between an engine's heartbeats in the state store: each one says it "
        "lives, renews its claims' leases, takes back claims whose lease ran out and reads "
        "stop requests (`entropy engine stop`).",
    ),
    cfg.FloatOpt(
        "claim_lease",
        default=30.0,
        min=0.3,
        max=86_400,
        help="Seconds a claim lasts unless its engine's heartbeat renews it; at least 3 "
        "heartbeats. An engine that dies leaves its audits to the others this long (plus "
        "max_clock_skew) after its last heartbeat.",
    ),
    cfg.FloatOpt(
        "max_clock_skew",
        default=2.0,
        min=0.0,
        max=3_600,
        help="Seconds by which the clocks of engines sharing a state store may differ. A "
        "lease counts as expired only this long after its end by the reader's clock, so a "
        "fast clock never takes the claim of a live engine.",
    ),
    cfg.IntOpt(
        "repair_workers",
        default=4,
        min=1,
        max=10_000,
        help="Repairs an engine runs at the same time (each rule's max_concurrent also holds).",
    ),
    cfg.BoolOpt(
        "engine_gc_tuning",
        default=True,
        help="Let `entropy engine run` run Python's cyclic garbage collector less often in "
        "its own process (thresholds 50000, 20, 20 instead of 700, 10, 10). Each audit "
        "leaves a few dozen short-lived, acyclic objects; at Python's thresholds a "
        "collection runs every ~20 audits (`python -m bench dispatch`: 0.07-0.14 s of "
        "collection per 20,000 audits, about none with this). false keeps Python's "
        "defaults. Only the engine's process is tuned: Entropy used as a library changes "
        "no process-wide setting.",
    ),
    cfg.IntOpt(
        "max_splay",
        min=0,
        max=31_622_400,
        help="Optional cap, in seconds, on the stable delay that spreads the first run of "
        "new (audit, host) pairs. Unset (the default), first runs spread over the whole "
        "interval, so 100,000 daily audits spread over the day, every day; 0 runs them all "
        "at once.",
    ),
    cfg.FloatOpt(
        "max_removal",
        default=0.1,
        min=0.0,
        max=1.0,
        help="Fraction of the stored audit rows one sync may remove without consent. A sync "
        "or an engine refresh that would remove more (a truncated schedule file looks like "
        "that) is refused and changes nothing; `entropy sync --force` accepts it. At least "
        "one row may always go, but never every row; 0: every removal needs --force, "
        "1: no limit.",
    ),
    cfg.IntOpt(
        "disable_retention",
        default=30 * 86400,
        min=0,
        max=316_224_000,
        help="Seconds an operator's disable (`entropy disable`) is remembered after a sync "
        "removed its pair: when the pair comes back within this time it comes back "
        "disabled, with the same reason.",
    ),
]

_STATE_HELP = (
    "URL of the state store (audit rows and history): a SQLAlchemy URL such as "
    "postgresql+psycopg://entropy@db/entropy, mongodb://db/entropy, or memory:NAME (in "
    "this process only). PostgreSQL, MariaDB/MySQL and MongoDB can be shared between "
    "engines. Default: a SQLite file in state_dir."
)
DIR_OPTS = [
    cfg.StrOpt(
        "path",
        default="/etc/entropy/fleet",
        help="Directory with hosts.yaml, scripts.yaml and audits/*.yaml.",
    ),
    cfg.StrOpt("state_connection", secret=True, help=_STATE_HELP),
]
FILE_OPTS = [
    cfg.StrOpt(
        "path",
        default="/etc/entropy/fleet.yaml",
        help="One YAML file with hosts:, scripts: and schedules: sections.",
    ),
    cfg.StrOpt("state_connection", secret=True, help=_STATE_HELP),
]


SQLALCHEMY_OPTS = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL holding definitions and state, e.g. "
        "postgresql+psycopg://entropy@db/entropy or mysql+pymysql://entropy@db/entropy. "
        "Default: state_dir/entropy.sqlite.",
    ),
]


DATABASE_OPTS = [
    cfg.IntOpt(
        "connect_timeout",
        default=10,
        min=2,
        max=3_600,
        help="Seconds to wait for a SQL state store's database to accept a connection and "
        "answer its handshake; then the command fails naming the store. (MongoDB: the "
        "timeouts of its URL.)",
    ),
    cfg.IntOpt(
        "statement_timeout",
        default=60,
        min=0,
        max=604_800,
        help="Seconds one SQL statement may run (PostgreSQL statement_timeout; MySQL/MariaDB: "
        "the client's read and write timeouts). 0: no limit. `entropy db upgrade` runs "
        "without it.",
    ),
    cfg.IntOpt(
        "lock_timeout",
        default=10,
        min=1,
        max=86_400,
        help="Seconds a statement waits for a lock another writer holds (SQLite busy_timeout, "
        "PostgreSQL lock_timeout, MariaDB/MySQL innodb_lock_wait_timeout for rows and "
        "lock_wait_timeout for tables).",
    ),
]


MONGODB_OPTS = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="MongoDB URL holding definitions and state (entropy_backend = mongodb), e.g. "
        "mongodb://entropy:secret@db1,db2/entropy?replicaSet=rs0. MongoDB 5.0 or later.",
    ),
    cfg.StrOpt(
        "database",
        help="The database to use when the connection URL names none. Default: entropy.",
    ),
]


NOTIFICATIONS_OPTS = [
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="Where to publish an event per audit result and repair run (kombu URL; "
        "exchange 'entropy', routing keys audit.<audit>.<outcome> and "
        "repair.<repair>.<outcome>), e.g. amqp://guest:guest@127.0.0.1:5672// or "
        "redis://127.0.0.1:6379/0. Default: no events.",
    ),
    cfg.IntOpt(
        "buffer_size",
        default=10000,
        min=1,
        max=10_000_000,
        help="Events kept while the broker cannot be reached; beyond this the oldest "
        "are dropped (and counted in a warning).",
    ),
]


EXECUTOR_OPTS = [
    cfg.StrOpt(
        "executor",
        default="pool",
        choices=["pool", "broker"],
        help="How an engine runs the audits it claims: pool, on its own worker pool; broker, "
        "as jobs on transport_url that `entropy worker run` processes take from their "
        "host's zone queue (the engine still claims, fences and records; see docs/broker.md).",
    ),
    cfg.IntOpt(
        "max_in_flight",
        default=2000,
        min=1,
        help="With executor = broker: claimed audits an engine has out on the broker at most "
        "(published, result not yet recorded). Audits of a zone with no live worker wait "
        "among them.",
    ),
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="The RabbitMQ broker that carries jobs, results and worker heartbeats (a kombu "
        "amqp:// or amqps:// URL), e.g. amqp://entropy:secret@mq.example.com:5672/entropy. "
        "All a worker needs: it never opens the state store.",
    ),
    cfg.StrOpt(
        "zone",
        default="default",
        help="The zone `entropy worker run` takes jobs for when --zone is not given: the "
        "zone: of the hosts it should audit (hosts without one are in 'default').",
    ),
    cfg.FloatOpt(
        "heartbeat_interval",
        default=5.0,
        min=0.5,
        max=3_600,
        help="Seconds between a worker's heartbeat messages (exchange entropy.workers), "
        "which `entropy workers` lists.",
    ),
    cfg.StrOpt(
        "prefix",
        default="entropy",
        regex=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        help="First word of every exchange and queue name on the broker (entropy.jobs.<zone>, "
        "entropy.results.<engine>, entropy.workers, ...). Fleets that share a RabbitMQ vhost "
        "use different prefixes (a vhost each is better); engines and workers of one fleet "
        "use the same.",
    ),
]


SSH_OPTS = [
    cfg.StrOpt(
        "user",
        help="User to log in as on hosts whose ssh: entry names none. Default: the user "
        "the engine runs as.",
    ),
    cfg.PortOpt("port", default=22, help="SSH port of hosts whose ssh: entry names none."),
    cfg.ListOpt(
        "identity_files",
        default=[],
        help="Private keys to log in with (comma-separated paths; ed25519, ECDSA and RSA). "
        "Default: an SSH agent if SSH_AUTH_SOCK is set, and ~/.ssh/id_ed25519, id_ecdsa, "
        "id_rsa.",
    ),
    cfg.StrOpt(
        "known_hosts",
        default="~/.ssh/known_hosts",
        help="OpenSSH known_hosts file the hosts' keys are checked against. A host whose "
        "key is not there, or differs from the one there, is refused (result unknown).",
    ),
    cfg.BoolOpt(
        "accept_new_host_keys",
        default=False,
        help="Record the key of a host seen for the first time in known_hosts and go on, "
        "as OpenSSH's StrictHostKeyChecking=accept-new. A key that changed is refused "
        "all the same.",
    ),
    cfg.FloatOpt(
        "connect_timeout",
        default=10.0,
        min=0.1,
        max=3_600,
        help="Seconds to open a connection: TCP, key exchange and login (never more than "
        "the audit's own timeout).",
    ),
    cfg.FloatOpt(
        "keepalive_interval",
        default=30.0,
        min=0.0,
        max=86_400,
        help="Seconds between keepalives on an idle connection (0: none); after "
        "keepalive_count_max unanswered ones the connection counts as broken.",
    ),
    cfg.IntOpt(
        "keepalive_count_max", default=3, min=1, help="Unanswered keepalives before giving up."
    ),
    cfg.IntOpt(
        "max_connections",
        default=1000,
        min=1,
        max=1_000_000,
        help="Connections one engine keeps open at most. Past it, the least recently used "
        "idle connection is closed; when none is idle, audits wait (within their timeout).",
    ),
    cfg.IntOpt(
        "max_sessions_per_host",
        default=10,
        min=1,
        max=10_000,
        help="Commands run at once on one host, over its one connection (OpenSSH's "
        "MaxSessions, 10 by default, must allow as many). More wait their turn.",
    ),
    cfg.FloatOpt(
        "idle_timeout",
        default=300.0,
        min=0.0,
        max=86_400,
        help="Seconds a connection stays open with nothing running on it (0: closed after "
        "each use).",
    ),
    cfg.StrOpt(
        "config_file",
        help="An OpenSSH client config to read (e.g. ~/.ssh/config) for what Entropy does "
        "not set itself (IdentityFile, ProxyJump for hosts without jump, ciphers, ...); its "
        "Host patterns match the address connected to. User and port always come from "
        "hosts.yaml or this section. Default: none is read.",
    ),
    cfg.StrOpt(
        "upload_dir",
        default=".cache/entropy/uploads",
        help="Where on each host `upload:` scripts are kept (relative to the login "
        "directory unless absolute), one file per content hash.",
    ),
]


def list_opts() -> list[tuple[str | None, Sequence[cfg.Opt]]]:
    return [
        (None, DEFAULT_OPTS),
        ("dir", DIR_OPTS),
        ("file", FILE_OPTS),
        ("sqlalchemy", SQLALCHEMY_OPTS),
        ("database", DATABASE_OPTS),
        ("mongodb", MONGODB_OPTS),
        ("notifications", NOTIFICATIONS_OPTS),
        ("executor", EXECUTOR_OPTS),
        ("ssh", SSH_OPTS),
    ]


def load_conf(config_files: Sequence[str] = (), config_dirs: Sequence[str] = ()) -> cfg.ConfigOpts:
    """Read entropy.conf the oslo.config way (files, dirs, OS_<GROUP>__<OPT> env)."""
    conf = cfg.ConfigOpts()
    for group, opts in list_opts():
        conf.register_opts(opts, group=group)
    args = [arg for f in config_files for arg in ("--config-file", f)]
    args += [arg for d in config_dirs for arg in ("--config-dir", d)]
    for path in config_files:
        why = not_regular_reason(path)  # a FIFO or /dev/zero would block or read for ever
        if why is not None:
            raise EntropyError(f"config {path}: {why}")
    for path in config_dirs:
        if not os.path.isdir(path):
            why = "is not a directory" if os.path.lexists(path) else "not found"
            raise EntropyError(f"config {path}: {why} (--config-dir takes a directory)")
        for name in sorted(os.listdir(path)):
            why = not_regular_reason(os.path.join(path, name)) if name.endswith(".conf") else None
            if why is not None:
                raise EntropyError(f"config {os.path.join(path, name)}: {why}")
    try:
        conf(args=args, project="entropy", prog="entropy", validate_default_values=True)
    except (cfg.ConfigFilesNotFoundError, cfg.ConfigFileParseError) as exc:
        raise EntropyError(f"config: {exc}") from None
    except UnicodeDecodeError as exc:  # a binary file given by mistake
        given = ", ".join((*config_files, *config_dirs)) or "the default config files"
        raise EntropyError(
            f"config: not UTF-8 text ({exc.reason} at byte {exc.start}) in one of: {given}"
        ) from None
    except OSError as exc:  # one that changed since it was checked
        raise EntropyError(f"config {exc.filename}: cannot read: {exc.strerror}") from None
    return conf


def option(conf: cfg.ConfigOpts, name: str, group: str | None = None) -> object:
    """An option's value; a bad value in a config file becomes a clear error."""
    where = f"[{group or 'DEFAULT'}] {name}"
    try:
        value = getattr(conf[group], name) if group else getattr(conf, name)
    except (cfg.ConfigFileValueError, ValueError) as exc:
        raise EntropyError(f"config {where}: {exc}") from None
    if isinstance(value, float) and not math.isfinite(value):  # oslo's min/max let nan by
        raise EntropyError(f"config {where}: must be a finite number, got {value}")
    return value


def number(conf: cfg.ConfigOpts, name: str, group: str | None = None) -> float:
    """An IntOpt's or FloatOpt's value, as a float (for the type checker: option() can't say)."""
    value = option(conf, name, group)
    if isinstance(value, bool) or not isinstance(value, int | float):
        where = f"[{group or 'DEFAULT'}] {name}"
        raise EntropyError(f"config {where}: {value!r} is not a number")
    return float(value)


def default(name: str, group: str | None = None) -> object:
    """An option's default, as declared above: the one place defaults are written."""
    for where, opts in list_opts():
        if where == group:
            for opt in opts:
                if opt.dest == name:
                    return opt.default
    raise KeyError(f"no option [{group or 'DEFAULT'}] {name}")


def splay_cap(conf: cfg.ConfigOpts) -> float:
    """max_splay in seconds, or infinity when unset (spread over the whole interval)."""
    return math.inf if option(conf, "max_splay") is None else number(conf, "max_splay")


def state_dir(conf: cfg.ConfigOpts) -> Path:
    configured = option(conf, "state_dir")
    if configured:
        return Path(str(configured)).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "entropy"


def lease_settings(conf: cfg.ConfigOpts) -> tuple[float, float, float]:
    """(claim_lease, heartbeat_interval, max_clock_skew), checked against each other."""
    lease = number(conf, "claim_lease")
    beat = number(conf, "heartbeat_interval")
    skew = number(conf, "max_clock_skew")
    if lease < 3 * beat:
        raise EntropyError(
            f"config [DEFAULT] claim_lease = {lease:g} must be at least 3 x heartbeat_interval "
            f"({beat:g}): a lease has to outlast a missed heartbeat or two"
        )
    return lease, beat, skew


def engine_id(conf: cfg.ConfigOpts) -> str:
    return str(option(conf, "engine_id") or f"{socket.gethostname()}:{os.getpid()}")
