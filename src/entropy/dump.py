"""Catalog -> YAML in the seed format: the way back from `definitions.py`.

`entropy export` and `entropy import` write definitions with this, so a
fleet can move from a database back to files (or between files). Only keys
that differ from their defaults are written, durations in the shortest exact
spelling (`1d`, `30m`, `1h30m`), so the output reads like a hand-written
seed and loads back to an equivalent Catalog.

What the Catalog does not hold cannot be written back: YAML comments, a
script's `description`, and which file a schedule came from (schedules are
written one file per target). A cron schedule's timezone is not part of the
seed format either; it comes from `cron_timezone` in entropy.conf when the
files are loaded.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .errors import EntropyError
from .model import (
    DEFAULT_ZONE,
    Catalog,
    Downtime,
    Host,
    MonitorSettings,
    Outcome,
    RepairRule,
    Schedule,
    Script,
)
from .timing import Cron, Every, format_duration

# Keys a script entry has besides its kind's own (definitions._SCRIPT_COMMON).
_SCRIPT_RESERVED = frozenset({"kind", "timeout", "description"})
_SCHEDULE_SUFFIXES = (".yaml", ".yml")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")

_SCALARS = (str, int, float, bool, type(None))


# The C dumper where libyaml is there: a base chosen at run time, which mypy can't follow.
class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Block style, except a list of plain values on one line: `groups: [hypervisor]`."""


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.SequenceNode:
    flow = bool(items) and all(isinstance(item, _SCALARS) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


class DumpError(EntropyError):
    """Definitions could not be written where they were asked to go."""


def hosts_doc(catalog: Catalog) -> dict[str, Any]:
    """hosts.yaml: `name: {ip_address, host_type, groups?, vars?, ssh?, zone?}`."""
    return {name: host_entry(host) for name, host in catalog.hosts.items()}


def host_entry(host: Host) -> dict[str, Any]:
    """One host, with only the keys that are not defaults."""
    entry: dict[str, Any] = {"ip_address": host.ip_address, "host_type": host.host_type}
    if host.groups:
        entry["groups"] = list(host.groups)
    if host.vars:
        entry["vars"] = _plain(host.vars)
    if host.parents:
        entry["parents"] = list(host.parents)
    if host.ssh is not None:
        entry["ssh"] = host.ssh.to_dict()
    if host.zone != DEFAULT_ZONE:
        entry["zone"] = host.zone
    return entry


def scripts_doc(catalog: Catalog) -> dict[str, Any]:
    """scripts.yaml: `name: {kind, <the kind's keys>, timeout?}`."""
    return {name: script_entry(script) for name, script in catalog.scripts.items()}


def script_entry(script: Script) -> dict[str, Any]:
    """One script: its kind, the kind's keys, and a timeout if it has one."""
    clash = sorted(_SCRIPT_RESERVED & script.params.keys())
    if clash:
        raise DumpError(
            f"script {script.name!r}: parameter {clash[0]!r} would be read back as the "
            f"entry's own {clash[0]!r}; rename it"
        )
    entry: dict[str, Any] = {"kind": script.kind, **_plain(script.params)}
    if script.timeout is not None:
        entry["timeout"] = format_duration(script.timeout)
    return entry


def schedule_entry(schedule: Schedule) -> dict[str, Any]:
    """One audit's entry under its target, with only the keys that are not defaults."""
    timing = schedule.timing
    entry: dict[str, Any]
    if schedule.monitoring is not None and schedule.monitoring.passive:
        entry = {}  # its timing is its freshness, written below
    elif isinstance(timing, Every):
        entry = {"run_every": format_duration(timing.seconds)}
    elif isinstance(timing, Cron):
        entry = {"cron": timing.expr}
    else:  # pragma: no cover - Timing is Every | Cron
        raise DumpError(f"audit {schedule.audit_name!r}: cannot write timing {timing!r}")
    if schedule.disabled:
        entry["disabled"] = True
    if schedule.disabled_reason is not None:
        entry["disabled_reason"] = schedule.disabled_reason
    if schedule.timeout is not None:
        entry["timeout"] = format_duration(schedule.timeout)
    if schedule.params:
        entry["params"] = _plain(schedule.params)
    if schedule.monitoring is not None:
        entry.update(monitoring_keys(schedule.monitoring))
    return entry


def monitoring_keys(settings: MonitorSettings) -> dict[str, Any]:
    """A schedule entry's monitoring keys that are not defaults."""
    entry: dict[str, Any] = {}
    if settings.passive:
        entry["passive"] = True
    if settings.freshness is not None:
        entry["freshness"] = format_duration(settings.freshness)
    if settings.max_attempts != 1:
        entry["max_attempts"] = settings.max_attempts
    if settings.retry_every is not None:
        entry["retry_every"] = format_duration(settings.retry_every)
    flapping = settings.flapping
    if flapping is not None:
        default = (flapping.low, flapping.high) == (25.0, 30.0)
        entry["flapping"] = (
            True if default else {"low": _number(flapping.low), "high": _number(flapping.high)}
        )
    if settings.depends_on is not None:
        entry["depends_on"] = {
            "audit": settings.depends_on.audit,
            "host": settings.depends_on.host,
        }
    return entry


def targets_doc(schedules: Iterable[Schedule]) -> dict[str, Any]:
    """`target: {audits: {name: {...}}}` for these schedules, targets in first-seen order.

    Two entries for one (target, audit) can only be in a valid catalog when
    the target is a group and their settings agree (else expansion refuses
    them), so keeping the first loses nothing.
    """
    doc: dict[str, Any] = {}
    for schedule in schedules:
        audits = doc.setdefault(schedule.target, {"audits": {}})["audits"]
        audits.setdefault(schedule.audit_name, schedule_entry(schedule))
    return doc


def schedule_docs(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """The schedule files for `audits/`: file name (no directory) -> its document.

    One file per target, named after it (`compute.yaml`,
    `nova-api.mydomain.com.yaml`); characters a file name should not hold
    become `_`, and names that would collide (also on a case-insensitive
    file system) get `-2`, `-3`, ... With no schedules at all there is one
    empty document, since the dir backend refuses an empty `audits/`.
    """
    docs: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for target, section in targets_doc(catalog.schedules).items():
        stem = _UNSAFE_FILENAME.sub("_", target)
        if stem.startswith("."):
            stem = "_" + stem[1:]
        name, n = f"{stem}.yaml", 1
        while name.lower() in taken:
            n += 1
            name = f"{stem}-{n}.yaml"
        taken.add(name.lower())
        docs[name] = {target: section}
    if not docs:
        docs["schedules.yaml"] = {}
    return docs


def repair_entry(rule: RepairRule) -> dict[str, Any]:
    """One repair rule, with only the keys that are not defaults."""
    when: dict[str, Any] = {"audit": rule.audit}
    if rule.outcomes != {Outcome.CRITICAL}:
        when["outcome"] = sorted(o.value for o in rule.outcomes)
    if rule.consecutive != 1:
        when["consecutive"] = rule.consecutive
    entry: dict[str, Any] = {"when": when, "run": rule.run}
    if rule.cooldown:
        entry["cooldown"] = format_duration(rule.cooldown)
    if rule.max_concurrent is not None:
        entry["max_concurrent"] = rule.max_concurrent
    if rule.max_attempts is not None:
        entry["max_attempts"] = rule.max_attempts
    if rule.verify:
        entry["verify"] = True
    return entry


def repairs_doc(catalog: Catalog) -> dict[str, Any]:
    """repairs.yaml: `name: {when: {...}, run, cooldown?, ...}`."""
    return {name: repair_entry(rule) for name, rule in catalog.repairs.items()}


def downtime_entry(downtime: Downtime) -> dict[str, Any]:
    """One downtime of the definitions, times in UTC."""
    entry: dict[str, Any] = {}
    for key in ("hosts", "groups", "audits"):
        if getattr(downtime, key):
            entry[key] = list(getattr(downtime, key))
    if downtime.cron is not None:
        entry["cron"] = downtime.cron.expr
        entry["duration"] = format_duration(downtime.duration or 0)
    elif downtime.start is not None and downtime.end is not None:
        entry["start"] = downtime.start.isoformat()
        entry["end"] = downtime.end.isoformat()
    entry["reason"] = downtime.reason
    if downtime.skip_checks:
        entry["skip_checks"] = True
    return entry


def downtimes_doc(catalog: Catalog) -> dict[str, Any]:
    """downtimes.yaml: `name: {hosts?, groups?, audits?, start+end | cron+duration, reason}`."""
    return {name: downtime_entry(d) for name, d in catalog.downtimes.items()}


def file_doc(catalog: Catalog) -> dict[str, Any]:
    """The file backend's one document: hosts:, scripts:, schedules: (and repairs:) sections."""
    doc = {
        "hosts": hosts_doc(catalog),
        "scripts": scripts_doc(catalog),
        "schedules": targets_doc(catalog.schedules),
    }
    if catalog.repairs:
        doc["repairs"] = repairs_doc(catalog)
    if catalog.downtimes:
        doc["downtimes"] = downtimes_doc(catalog)
    return doc


def to_yaml(doc: Any) -> str:
    return yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=True,
        width=4096,  # keep long commands and URLs on one line
    )


def write_dir(
    catalog: Catalog, path: str | os.PathLike[str], overwrite: bool = False
) -> list[Path]:
    """Write the catalog as a definitions directory; return the files written.

    Without `overwrite`, a directory that already holds hosts.yaml,
    scripts.yaml or schedule files is refused (DumpError naming it). With it,
    those are replaced and schedule files the catalog no longer has are
    removed. Every file is rendered first, then moved into place with
    os.replace, so a reader never sees half a file and a failure while
    rendering changes nothing.
    """
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise DumpError(f"{root} exists and is not a directory")
    audits = root / "audits"
    if audits.exists() and not audits.is_dir():
        raise DumpError(f"{audits} exists and is not a directory")
    old_schedules = _schedule_files(audits)
    if not overwrite:
        own = (
            root / "hosts.yaml", root / "scripts.yaml", root / "repairs.yaml",
            root / "downtimes.yaml",
        )  # fmt: skip
        present = [p for p in own if p.exists()]
        present += old_schedules
        if present:
            shown = ", ".join(str(p) for p in present[:3])
            more = f" and {len(present) - 3} more" if len(present) > 3 else ""
            raise DumpError(
                f"{root} already holds definitions ({shown}{more}); "
                f"refusing to overwrite them (--force replaces them)"
            )
    files = {
        root / "hosts.yaml": to_yaml(hosts_doc(catalog)),
        root / "scripts.yaml": to_yaml(scripts_doc(catalog)),
    }
    if catalog.repairs:
        files[root / "repairs.yaml"] = to_yaml(repairs_doc(catalog))
    if catalog.downtimes:
        files[root / "downtimes.yaml"] = to_yaml(downtimes_doc(catalog))
    files.update({audits / name: to_yaml(doc) for name, doc in schedule_docs(catalog).items()})
    audits.mkdir(parents=True, exist_ok=True)
    _replace_all(files)
    for stale in [*old_schedules, root / "repairs.yaml", root / "downtimes.yaml"]:
        if stale not in files:
            stale.unlink(missing_ok=True)
    return list(files)


def write_file(catalog: Catalog, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write the catalog as one definitions file (hosts:, scripts:, schedules:).

    Without `overwrite`, an existing non-empty file is refused (DumpError
    naming it). The file is replaced atomically.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise DumpError(
            f"{target} is a directory; the file backend needs a file such as fleet.yaml"
        )
    if not overwrite and target.exists() and target.stat().st_size > 0:
        raise DumpError(f"{target} already exists; refusing to overwrite it (--force replaces it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    _replace_all({target: to_yaml(file_doc(catalog))})
    return target


def _schedule_files(audits: Path) -> list[Path]:
    if not audits.is_dir():
        return []
    return sorted(p for p in audits.iterdir() if p.suffix in _SCHEDULE_SUFFIXES and p.is_file())


def _replace_all(files: dict[Path, str]) -> None:
    """Write each text to a temp file beside its target, then move them all into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in files.items():
            temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            # os.open with 0o666 honours the umask (mkstemp would give 0600).
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            staged.append((temp, target))
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            if target.exists():
                os.chmod(temp, target.stat().st_mode & 0o7777)  # keep the operator's mode
        for temp, target in staged:
            os.replace(temp, target)
    except OSError as exc:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise DumpError(f"cannot write {exc.filename or exc}: {exc.strerror}") from None


def _plain(value: Any) -> Any:
    """Plain dicts and lists all the way down: the safe dumper refuses subclasses.

    Loaded YAML mappings are MarkedMaps (a dict subclass carrying line marks).
    """
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _number(value: float) -> float | int:
    """20.0 as 20: the way an operator writes a percentage."""
    return int(value) if float(value).is_integer() else value
