"""Synthetic fleets for benchmarks, in the dir or the file backend's format.

Every host belongs to one group (`fleet` by default) and every audit is
scheduled on that group, so `hosts` x `audits` gives exactly that many
(audit, host) pairs. The YAML is written as text, not through yaml.dump, so
a 10^6-host fleet takes seconds to write rather than minutes.

    from bench.fleet import write_dir_fleet
    fleet = write_dir_fleet(tmp / "fleet", hosts=10_000, audits=10)
    fleet.url     # "dir:/tmp/.../fleet", for entropy.backends.fetch() or --backend
    fleet.pairs   # 100_000

Names are stable, so a later benchmark can name a host or an audit without
reading the files back: host_name(i) for i in 1..hosts, audit_name(j) for j
in 1..audits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Host types in the proportions hosts cycle through: mostly computes.
DEFAULT_HOST_TYPES: tuple[str, ...] = ("compute",) * 7 + ("hypervisor",) * 2 + ("control",)
DOMAIN = "bench.example"
GROUP = "fleet"
NOOP_FUNCTION = "bench.noop:noop"
_CHUNK = 5_000  # hosts per write() call


@dataclass(frozen=True, slots=True)
class Fleet:
    """What was written: where, in which format, and how many pairs it gives."""

    backend: str  # "dir" or "file", the entry point that reads it
    location: Path  # the directory (dir) or the YAML file (file)
    hosts: int
    audits: int
    intervals: tuple[str, ...]

    @property
    def pairs(self) -> int:
        return self.hosts * self.audits

    @property
    def url(self) -> str:
        """The --backend URL for this fleet, e.g. `dir:/tmp/x/fleet`."""
        return f"{self.backend}:{self.location}"


def host_name(i: int, host_types: Sequence[str] = DEFAULT_HOST_TYPES) -> str:
    """The name of host number i (from 1): `compute-00001.bench.example`."""
    return f"{host_type(i, host_types)}-{i:05d}.{DOMAIN}"


def host_type(i: int, host_types: Sequence[str] = DEFAULT_HOST_TYPES) -> str:
    return host_types[(i - 1) % len(host_types)]


def host_ip(i: int) -> str:
    """A distinct 10.x.y.z address per host, up to 2^24 hosts."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def audit_name(j: int) -> str:
    """The name of audit number j (from 1): `bench_audit_001`."""
    return f"bench_audit_{j:03d}"


def interval_of(j: int, intervals: Sequence[str]) -> str:
    """The timing of audit j: the intervals are dealt out to audits in turn."""
    return intervals[(j - 1) % len(intervals)]


def write_dir_fleet(
    path: Path | str,
    hosts: int,
    audits: int,
    *,
    intervals: Sequence[str] = ("30mins",),
    schedule_files: int = 1,
    host_types: Sequence[str] = DEFAULT_HOST_TYPES,
    function: str = NOOP_FUNCTION,
) -> Fleet:
    """Write hosts.yaml, scripts.yaml and audits/*.yaml under path for the dir backend.

    intervals: `run_every` values (e.g. "30mins") dealt out to the audits in
    turn; a value with spaces is a cron expression ("*/5 * * * *").
    schedule_files: how many audits/*.yaml files the audits are spread over.
    function: what each no-op python audit calls.
    """
    _check(hosts, audits, intervals, schedule_files)
    root = Path(path)
    (root / "audits").mkdir(parents=True, exist_ok=True)
    with open(root / "hosts.yaml", "w", encoding="utf-8") as out:
        out.write(f"# {hosts} hosts written by bench.fleet; every one is in group {GROUP}\n")
        for chunk in _host_chunks(hosts, host_types, indent=""):
            out.write(chunk)
    with open(root / "scripts.yaml", "w", encoding="utf-8") as out:
        out.write(_scripts_text(audits, function, indent=""))
    for number, names in enumerate(_split(audits, schedule_files), start=1):
        with open(root / "audits" / f"bench_{number:03d}.yaml", "w", encoding="utf-8") as out:
            out.write(_schedules_text(names, intervals, indent=""))
    return Fleet("dir", root, hosts, audits, tuple(intervals))


def write_file_fleet(
    path: Path | str,
    hosts: int,
    audits: int,
    *,
    intervals: Sequence[str] = ("30mins",),
    host_types: Sequence[str] = DEFAULT_HOST_TYPES,
    function: str = NOOP_FUNCTION,
) -> Fleet:
    """Write one YAML file (hosts:, scripts:, schedules:) at path for the file backend.

    path is the file itself (e.g. tmp / "fleet.yaml"); the same fleet as
    write_dir_fleet, in one document.
    """
    _check(hosts, audits, intervals, 1)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as out:
        out.write(f"# {hosts} hosts x {audits} audits written by bench.fleet\nhosts:\n")
        for chunk in _host_chunks(hosts, host_types, indent="  "):
            out.write(chunk)
        out.write("scripts:\n")
        out.write(_scripts_text(audits, function, indent="  "))
        out.write("schedules:\n")
        out.write(_schedules_text(range(1, audits + 1), intervals, indent="  "))
    return Fleet("file", target, hosts, audits, tuple(intervals))


def write_fleet(
    backend: str, root: Path | str, hosts: int, audits: int, **options: object
) -> Fleet:
    """write_dir_fleet(root / "fleet") or write_file_fleet(root / "fleet.yaml"), by name."""
    root = Path(root)
    if backend == "dir":
        return write_dir_fleet(root / "fleet", hosts, audits, **options)  # type: ignore[arg-type]
    if backend == "file":
        return write_file_fleet(root / "fleet.yaml", hosts, audits, **options)  # type: ignore[arg-type]
    raise ValueError(f"no fleet writer for backend {backend!r} (dir, file)")


def _check(hosts: int, audits: int, intervals: Sequence[str], schedule_files: int) -> None:
    if hosts < 1 or audits < 1:
        raise ValueError(f"need at least one host and one audit, got {hosts} x {audits}")
    if hosts >= 1 << 24:
        raise ValueError(f"at most {(1 << 24) - 1} hosts (one 10.x.y.z address each)")
    if not intervals or isinstance(intervals, str):
        raise ValueError(f"intervals must be a non-empty list of strings, got {intervals!r}")
    if not 1 <= schedule_files <= audits:
        raise ValueError(f"schedule_files must be 1..{audits}, got {schedule_files}")


def _host_chunks(count: int, host_types: Sequence[str], indent: str) -> Iterator[str]:
    i2 = indent + "  "
    for start in range(1, count + 1, _CHUNK):
        yield "".join(
            f"{indent}{host_name(i, host_types)}:\n"
            f"{i2}ip_address: {host_ip(i)}\n"
            f"{i2}host_type: {host_type(i, host_types)}\n"
            f"{i2}groups: [{GROUP}]\n"
            f"{i2}vars: {{rack: r{(i - 1) // 40 + 1:04d}}}\n"
            for i in range(start, min(start + _CHUNK, count + 1))
        )


def _scripts_text(audits: int, function: str, indent: str) -> str:
    i2 = indent + "  "
    return "".join(
        f"{indent}{audit_name(j)}:\n"
        f"{i2}kind: python\n"
        f'{i2}function: "{function}"\n'
        f"{i2}timeout: 10s\n"
        for j in range(1, audits + 1)
    )


def _schedules_text(numbers: Sequence[int] | range, intervals: Sequence[str], indent: str) -> str:
    lines = [f"{indent}{GROUP}:\n", f"{indent}  audits:\n"]
    for j in numbers:
        timing = interval_of(j, intervals)
        key = "cron" if " " in timing.strip() else "run_every"
        lines.append(f"{indent}    {audit_name(j)}:\n")
        lines.append(f'{indent}      {key}: "{timing}"\n')
    return "".join(lines)


def _split(audits: int, files: int) -> list[range]:
    """Audit numbers 1..audits in `files` contiguous, nearly equal runs."""
    size, extra = divmod(audits, files)
    runs, start = [], 1
    for k in range(files):
        end = start + size + (1 if k < extra else 0)
        runs.append(range(start, end))
        start = end
    return runs
