"""Fixtures shared by every test: isolated state, a fake clock, real databases.

Tests that need PostgreSQL (127.0.0.1:5432) or MariaDB (127.0.0.1:3306) get a
private schema/database of their own, dropped afterwards. Tests of events use
RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379). Tests of the mongodb
backend get a private database on an NX-27017 server (a MongoDB wire-protocol
server storing into SQLite, PyPI `nx-27017`) that this session starts on a
free 127.0.0.1 port. Where a server is unreachable they skip and say why;
under CI=true they fail instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from entropy.backends import open_state_store
from entropy.backends.impl_memory import forget
from entropy.backends.sqlalchemy.state import SqlStateStore
from entropy.clock import FakeClock

UNDER_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN = os.environ.get(
    "ENTROPY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# ssl_disabled: the test server has TLS off (have_ssl DISABLED), so connections are plain
# either way; without it PyMySQL first builds a TLS context for each one (loading the
# system's CA certificates, ~50 ms of CPU), about half the CPU of the MariaDB tests.
MYSQL_ADMIN = os.environ.get(
    "ENTROPY_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test?ssl_disabled=true"
)
RABBITMQ = os.environ.get("ENTROPY_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
REDIS = os.environ.get("ENTROPY_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Tests marked `disruptive` stop or restart a server other work on this machine
# may be using; they run only when asked (.ci/run asks).
DISRUPTIVE = os.environ.get("ENTROPY_TEST_DISRUPTIVE", "") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # The tests start hundreds of `entropy` processes, and each imports ~130 modules of
    # the editable src/ tree. With PYTHONDONTWRITEBYTECODE=1 in the environment nothing
    # ever writes their bytecode, so every process compiled them all again (~0.25 s of
    # CPU each, on 2 cores). Compiled once here (by the xdist controller, or a plain
    # run), the children read it; a file changed later is recompiled as Python always does.
    if sys.dont_write_bytecode and not hasattr(config, "workerinput"):
        import compileall

        import entropy

        compileall.compile_dir(Path(entropy.__file__).parent, quiet=2)
    # Likewise pytest keeps its assertion-rewritten test modules only where bytecode may
    # be written: each xdist worker rewrote all 115 of them (~5 s of CPU each, 4 workers
    # at once) on every run. Kept from one run to the next (this process only: the
    # entropy children still write nothing).
    sys.dont_write_bytecode = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DISRUPTIVE:
        return
    skip = pytest.mark.skip(
        reason="stops or restarts a shared server; set ENTROPY_TEST_DISRUPTIVE=1 to run it"
    )
    for item in items:
        if item.get_closest_marker("disruptive"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Default SQLite state files land in a temp dir, never in the developer's home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    for name in list(os.environ):
        if name.startswith("OS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))


def _unreachable(server: str, url: str, exc: Exception) -> None:
    reason = f"{server} at {url} is unreachable: {str(exc).strip().splitlines()[0]}"
    if UNDER_CI:
        pytest.fail(f"{reason} (CI=true: database tests must run)")
    pytest.skip(reason)


def _upgraded(url: str) -> str:
    """The database at url with Entropy's schema, as `entropy db upgrade` leaves it."""
    store = SqlStateStore(url, check_schema=False)
    store.upgrade_schema()
    store.close()
    return url


def _broker(server: str, url: str) -> str:
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        _unreachable(server, url, exc)
    return url


@pytest.fixture
def rabbitmq_url() -> str:
    return _broker("RabbitMQ", RABBITMQ)


@pytest.fixture
def redis_url() -> str:
    return _broker("Redis", REDIS)


@pytest.fixture
def postgresql_url(empty_postgresql_url: str) -> str:
    """A fresh PostgreSQL schema with Entropy's tables, dropped afterwards."""
    return _upgraded(empty_postgresql_url)


@pytest.fixture
def mysql_url(empty_mysql_url: str) -> str:
    """A fresh MariaDB/MySQL database with Entropy's tables, dropped afterwards."""
    return _upgraded(empty_mysql_url)


@pytest.fixture
def empty_postgresql_url() -> Iterator[str]:
    """A URL whose connections use a fresh, empty PostgreSQL schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # pre_ping: the drop below still works after a test restarted the server.
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # any failure to reach the server
        admin.dispose()
        _unreachable("PostgreSQL", POSTGRES_ADMIN, exc)
    sep = "&" if "?" in POSTGRES_ADMIN else "?"
    yield f"{POSTGRES_ADMIN}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def empty_mysql_url() -> Iterator[str]:
    """A URL to a fresh, empty MariaDB/MySQL database, dropped afterwards."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(MYSQL_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
    except Exception as exc:
        admin.dispose()
        _unreachable("MariaDB", MYSQL_ADMIN, exc)
    base, _, query = MYSQL_ADMIN.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{database}" + (f"?{query}" if query else "")
    yield url + ("&" if query else "?") + "charset=utf8mb4"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE `{database}`"))
    admin.dispose()


# -- MongoDB: an NX-27017 server for the session, a database per test ----------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mongodb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mongodb://127.0.0.1:PORT`: NX-27017 started for this session, one file per database."""
    if os.environ.get("ENTROPY_TEST_MONGODB"):  # a real MongoDB, if one is at hand
        yield os.environ["ENTROPY_TEST_MONGODB"]
        return
    data = tmp_path_factory.mktemp("nx-27017")
    port = _free_port()
    command = [
        *(sys.executable, "-c", "from nx_27017.nx_27017 import main; main()"),
        *("--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)),
        *("--log-file", str(data / "server.log"), "--pid-file", str(data / "server.pid")),
    ]
    try:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        _unreachable("NX-27017", " ".join(command[:3]), exc)
    url = f"mongodb://127.0.0.1:{port}"
    try:
        _wait_for_mongodb(server, url)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for_mongodb(server: subprocess.Popen, url: str) -> None:
    try:
        import pymongo
    except ModuleNotFoundError as exc:
        _unreachable("MongoDB", url, exc)
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            err = server.stderr.read().decode(errors="replace") if server.stderr else ""
            _unreachable("NX-27017", url, RuntimeError(f"exited {server.returncode}: {err}"))
        try:
            client = pymongo.MongoClient(url, serverSelectionTimeoutMS=500)
            client.admin.command("ping")
            client.close()
            return
        except pymongo.errors.PyMongoError as exc:
            if time.monotonic() > deadline:
                _unreachable("NX-27017", url, exc)
            time.sleep(0.1)


@pytest.fixture
def empty_mongodb_url(mongodb_server: str) -> Iterator[str]:
    """A fresh, empty database on the test MongoDB server, dropped afterwards."""
    import pymongo

    database = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{mongodb_server}/{database}"
    client = pymongo.MongoClient(mongodb_server, serverSelectionTimeoutMS=2000)
    try:
        client.drop_database(database)
    except pymongo.errors.PyMongoError:
        pass  # a test that broke the server: nothing to drop
    finally:
        client.close()


@pytest.fixture
def mongodb_url(empty_mongodb_url: str) -> str:
    """A fresh database with Entropy's indexes, as `entropy db upgrade` leaves it."""
    store = open_state_store(empty_mongodb_url, check_schema=False)
    store.upgrade_schema()
    store.close()
    return empty_mongodb_url


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh named in-process store, forgotten afterwards."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield f"memory:{name}"
    forget(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite state file of this test's own (created and upgraded on open)."""
    return f"sqlite:///{tmp_path / 'state.sqlite'}"
