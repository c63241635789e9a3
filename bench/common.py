"""What every scenario needs: an isolated config, a backend, fresh processes, stats, output."""

from __future__ import annotations

import contextlib
import cProfile
import ctypes
import gc
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import resource
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from oslo_config import cfg
from sqlalchemy import create_engine, text

from entropy.backends import Backend, fetch, open_state_store
from entropy.backends.base import safe_url
from entropy.backends.sqlalchemy.state import SqlStateStore
from entropy.config import list_opts

from .fleet import Fleet

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


def make_conf(backend: str, state_url: str, **overrides: object) -> cfg.ConfigOpts:
    """Entropy's options with their defaults, nothing read from files or OS_* variables.

    The same registration as entropy.config.load_conf, minus the search of
    ~/.entropy and /etc/entropy, so a developer's config never skews a run.
    `[backend] state_connection` is set to state_url; overrides are [DEFAULT]
    options (e.g. max_splay=900).
    """
    conf = cfg.ConfigOpts()
    for group, opts in list_opts():
        conf.register_opts(opts, group=group)
    conf(
        args=[],
        project="entropy",
        prog="entropy-bench",
        default_config_files=[],
        default_config_dirs=[],
        use_env=False,
    )
    conf.set_override("state_connection", state_url, group=backend)
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


def open_backend(fleet: Fleet, state_url: str, **overrides: object) -> Backend:
    """The backend that reads this fleet, found by entry point as `entropy --backend` does."""
    return fetch(make_conf(fleet.backend, state_url, **overrides), fleet.url)


def hosts_for(pairs: int, audits: int) -> int:
    """Hosts in a fleet of `pairs` with `audits` per host; a size that doesn't divide exits."""
    if pairs < audits or pairs % audits:
        raise SystemExit(f"--pairs must be a multiple of --audits ({audits})")
    return pairs // audits


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# The PostgreSQL server the engine scenarios use with --store postgresql: a
# database where the user may create schemas (the tests' server by default).
POSTGRESQL_ADMIN = os.environ.get(
    "ENTROPY_BENCH_POSTGRES",
    os.environ.get("ENTROPY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)


class Unreachable(Exception):
    """A database server the scenario needs cannot be reached; the message says which and why."""


@contextlib.contextmanager
def postgresql_state(admin_url: str = POSTGRESQL_ADMIN) -> Iterator[str]:
    """A URL to a fresh PostgreSQL schema holding Entropy's tables; the schema is dropped after.

    As tests/conftest.py does: CREATE SCHEMA, a URL whose connections use it
    (`options=-csearch_path=...`), then `entropy db upgrade`'s upgrade_schema().
    Raises Unreachable when the server cannot be reached.
    """
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # any failure to reach or use the server
        admin.dispose()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unreachable(f"PostgreSQL at {safe_url(admin_url)} is unreachable: {reason}") from exc
    sep = "&" if "?" in admin_url else "?"
    url = f"{admin_url}{sep}options=-csearch_path%3D{schema}"
    try:
        store = SqlStateStore(url, check_schema=False)
        store.upgrade_schema()
        store.close()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# The MongoDB server `--store mongodb` uses; unset: an NX-27017 server (a MongoDB
# wire-protocol server over SQLite, the tests' stand-in) started for the run.
MONGODB_URL = os.environ.get("ENTROPY_BENCH_MONGODB", "")


@contextlib.contextmanager
def mongodb_state(server_url: str = MONGODB_URL) -> Iterator[str]:
    """A URL to a fresh MongoDB database with Entropy's indexes; dropped (or its server
    stopped) after. Without a server URL, NX-27017 is started on a free 127.0.0.1 port with
    a temporary data directory. Raises Unreachable when neither works."""
    with contextlib.ExitStack() as stack:
        if not server_url:
            server_url = stack.enter_context(_nx_27017())
        database = f"bench_{uuid.uuid4().hex[:12]}"
        url = f"{server_url.rstrip('/')}/{database}"
        try:
            store = open_state_store(url, check_schema=False)
            store.upgrade_schema()
            store.close()
        except Exception as exc:
            raise Unreachable(f"MongoDB at {safe_url(server_url)} is unreachable: {exc}") from exc
        try:
            yield url
        finally:
            import pymongo

            client = pymongo.MongoClient(server_url, serverSelectionTimeoutMS=2000)
            with contextlib.suppress(pymongo.errors.PyMongoError):
                client.drop_database(database)
            client.close()


@contextlib.contextmanager
def _nx_27017() -> Iterator[str]:
    import socket
    import tempfile

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="entropy-bench-nx-") as data:
        command = [sys.executable, "-c", "from nx_27017.nx_27017 import main; main()",
                   "--port", str(port), "--data-dir", data, "--log-file", f"{data}/log",
                   "--pid-file", f"{data}/pid"]  # fmt: skip
        try:
            server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise Unreachable(f"cannot start NX-27017: {exc}") from exc
        url = f"mongodb://127.0.0.1:{port}"
        try:
            _wait_for_mongodb(server, url)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def _wait_for_mongodb(server: subprocess.Popen, url: str) -> None:
    try:
        import pymongo
    except ModuleNotFoundError as exc:
        raise Unreachable("pymongo is not installed: pip install 'entropy[mongodb]'") from exc
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            raise Unreachable(f"NX-27017 exited with status {server.returncode}")
        try:
            client = pymongo.MongoClient(url, serverSelectionTimeoutMS=500)
            client.admin.command("ping")
            client.close()
            return
        except pymongo.errors.PyMongoError as exc:
            if time.monotonic() > deadline:
                raise Unreachable(f"NX-27017 at {url} did not answer: {exc}") from exc
            time.sleep(0.1)


def server_version(url: str) -> str:
    """The database server's version string (e.g. `PostgreSQL 15.20 ...`), or why not."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT version()")).scalar_one()).split(" on ")[0]
    except Exception as exc:  # informational only
        return f"unknown ({type(exc).__name__})"
    finally:
        engine.dispose()


def in_fresh_process(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) in a new interpreter (spawn), so its peak RSS and caches are its own.

    fn must be importable (a module-level function) and its arguments and
    result picklable.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def rss_mib() -> float:
    """This process's resident set size now, in MiB (from /proc/self/statm; else the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def release_free_memory() -> None:
    """Collect cycles and hand free heap pages back to the OS (glibc malloc_trim), if possible.

    RSS after this is what is really held, not what the allocator kept for later.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process `pid` used so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds() -> dict[threading.Thread, float]:
    """CPU seconds (user + system) used so far by each live thread of this process (Linux).

    Read from /proc/self/task/TID/stat, so it costs nothing while the
    threads run, unlike a profiler. {} where /proc is not available.
    """
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat", encoding="ascii") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except (OSError, TypeError):
            continue
        cpu[thread] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return cpu


class Profiler:
    """cProfile around a block when a dump path is given; a no-op otherwise."""

    def __init__(self, dump_to: str | None) -> None:
        self.dump_to = dump_to
        self._profile = cProfile.Profile() if dump_to else None

    def __enter__(self) -> Profiler:
        if self._profile:
            self._profile.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._profile and self.dump_to:
            self._profile.disable()
            self._profile.dump_stats(self.dump_to)


class ThreadProfiles:
    """cProfile in every thread started inside the block, one profile per thread.

    cProfile.enable() only hooks the thread that calls it; threading.setprofile
    makes each new thread start its own profile before its first Python call.
    Read the profiles with stats() once those threads have finished.
    """

    def __init__(self, cpu: bool = False) -> None:
        self.profiles: list[tuple[threading.Thread, cProfile.Profile]] = []
        self._lock = threading.Lock()
        # cpu: time each thread's own CPU (time.thread_time), so waits (locks, queues,
        # SQLite's busy handler sleeping) cost nothing; slower to run than the wall clock.
        self._timer = time.thread_time if cpu else None

    def _start(self, *_event: object) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile(self._timer) if self._timer else cProfile.Profile()
        with self._lock:
            self.profiles.append((threading.current_thread(), profile))
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget what was profiled so far (e.g. start-up), in every thread, and go on."""
        with self._lock:
            for _thread, profile in self.profiles:
                profile.clear()

    def stats(self, group: Callable[[threading.Thread], str]) -> dict[str, pstats.Stats]:
        """The profiles merged by group(thread), e.g. all pool workers into one."""
        merged: dict[str, pstats.Stats] = {}
        for thread, profile in self.profiles:
            name = group(thread)
            if name in merged:
                merged[name].add(profile)
            else:
                merged[name] = pstats.Stats(profile)
        return merged


class GcTimer:
    """Seconds spent in Python's cyclic garbage collector, and how many full collections.

    Registered in gc.callbacks while active; a profile charges GC pauses to
    whatever function happened to allocate, so this is the honest number.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full_collections = 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full_collections += info["generation"] == 2

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def profile_top(path: str | Path | pstats.Stats, limit: int = 15, sort: str = "cumulative") -> str:
    """The top `limit` functions of a cProfile dump (or Stats), as pstats prints them."""
    out = io.StringIO()
    if isinstance(path, pstats.Stats):
        stats = pstats.Stats(stream=out)
        stats.add(path)  # a copy: strip_dirs() below must not rename the caller's entries
    else:
        stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    text = out.getvalue()
    # Keep the table, not pstats' preamble about the dump file.
    start = text.find("   ncalls")
    return text[start:].rstrip() if start >= 0 else text.rstrip()


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and range of one measurement over the runs."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.min, "max": self.max}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of values, nearest rank; nan when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def verdict(met: bool | None) -> str:
    """A target's verdict cell: PASS, MISS, or - (no verdict at this size or setting)."""
    return "-" if met is None else "PASS" if met else "MISS"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def environment() -> dict[str, Any]:
    """What a number depends on besides the code: machine, interpreter, libraries, commit."""
    import sqlalchemy
    import yaml

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sqlalchemy": sqlalchemy.__version__,
        "pyyaml": yaml.__version__,
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
        "sqlite": sqlite3.sqlite_version,
        "git": _git_revision(),
    }


def context_line(env: dict[str, Any]) -> str:
    """environment() as one line under a scenario's title."""
    return (
        f"python {env['python']}, SQLAlchemy {env['sqlalchemy']}, PyYAML {env['pyyaml']} "
        f"(libyaml {'yes' if env['libyaml'] else 'NO'}), SQLite {env['sqlite']}, "
        f"{env['cpus']} CPUs, commit {env['git']}"
    )


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{rev}+dirty-src" if dirty else rev


def write_json(path: str | Path, data: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
