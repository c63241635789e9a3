"""YAML definitions -> Catalog, with every problem reported as path:line:col.

The dir and file backends share this: they differ only in where the hosts,
scripts and schedule documents come from. Parsing collects every problem it
can find before failing, so one `entropy validate` shows them all.
"""

from __future__ import annotations

import datetime as dt
import sys
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from . import yamlread
from .errors import ConfigError, DurationError, Location, ValidationError
from .model import (
    DEFAULT_ZONE,
    REPAIRABLE_OUTCOMES,
    Catalog,
    Dependency,
    Downtime,
    Flapping,
    Host,
    HostSsh,
    MonitorSettings,
    Outcome,
    RepairRule,
    Schedule,
    Script,
    parse_jump,
)
from .pairs import PairBlocks
from .placeholders import as_text, env_name
from .scriptcheck import check_pairs, check_script
from .timing import (
    MAX_DURATION,
    MAX_INTERVAL,
    MAX_TIMEOUT,
    Every,
    Timing,
    parse_cron,
    parse_duration,
)
from .values import (
    data_problem,
    host_name_problem,
    ip_address_problem,
    name_problem,
    zone_problem,
)
from .yamlread import MarkedMap, Streamed, new_map

# Keys each script kind needs, and the ones it may also have. The runners
# (next layer up) read these; here they are only checked.
SCRIPT_KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "command": (frozenset({"command"}), frozenset({"shell", "env", "cwd", "output_limit"})),
    "http": (
        frozenset({"url"}),
        frozenset(
            {
                "method",
                "expect_status",
                "body_regex",
                "headers",
                "body",
                "verify_tls",
                "warning_ms",
                "critical_ms",
            }
        ),
    ),
    "tcp": (frozenset({"port"}), frozenset({"host", "warning_ms", "critical_ms"})),
    "python": (frozenset({"function"}), frozenset()),
    # ssh needs command or upload (scriptcheck checks which); args go with upload.
    "ssh": (frozenset(), frozenset({"command", "shell", "env", "output_limit", "upload", "args"})),
}
_SCRIPT_COMMON = frozenset({"kind", "timeout", "description"})
_HOST_KEYS = frozenset({"ip_address", "host_type", "groups", "vars", "parents", "ssh", "zone"})
_HOST_SSH_KEYS = frozenset({"address", "port", "user", "jump"})
_SCHEDULE_KEYS = frozenset(
    {"run_every", "cron", "disabled", "disabled_reason", "timeout", "params"}
) | frozenset({"max_attempts", "retry_every", "flapping", "depends_on", "passive", "freshness"})
_DEPENDS_KEYS = frozenset({"audit", "host"})
_DOWNTIME_KEYS = frozenset(
    {"hosts", "groups", "audits", "start", "end", "cron", "duration", "reason", "skip_checks"}
    | {"description"}
)
_REPAIR_KEYS = frozenset(
    {"when", "run", "cooldown", "max_concurrent", "max_attempts", "verify", "description"}
)
_WHEN_KEYS = frozenset({"audit", "outcome", "consecutive"})
_GLOB_CHARS = frozenset("*?[")


COUNT_MAX = 1_000_000  # max_concurrent, max_attempts, consecutive
REASON_LIMIT = 1024  # characters of a disabled_reason


def marked(items: Iterable[tuple[Any, Any, tuple[int, int]]]) -> MarkedMap:
    """(key, plain value, place) triples, as a document the parse_* functions take.

    For definitions that come from a database: each entry, and every key
    inside it, is reported at its own place (say, its row id).
    """
    doc = new_map((1, 1))
    for key, value, place in items:
        doc[key] = _marked_map(value, place) if isinstance(value, dict) else value
        doc.key_marks[key] = place
    return doc


def _marked_map(value: dict, place: tuple[int, int]) -> MarkedMap:
    result = new_map(place)
    for k, v in value.items():
        result[k] = _marked_map(v, place) if isinstance(v, dict) else v
    return result


read_yaml = yamlread.read_yaml


class Problems:
    """Collects ConfigErrors so one run reports every problem it can find."""

    def __init__(self) -> None:
        self.items: list[ConfigError] = []
        self.unreadable: list[str] = []  # files whose YAML could not be parsed at all

    def add(self, path: str, at: tuple[int, int], message: str) -> None:
        self.items.append(ConfigError(Location(path, *at), message))

    def report(self, where: Location, message: str) -> None:
        self.items.append(ConfigError(where, message))

    def read(self, path: Path) -> Any:
        """The parsed YAML document at path, or None after recording why it can't be read."""
        try:
            return read_yaml(path)
        except ConfigError as exc:
            self.items.append(exc)
            self.unreadable.append(str(path))
            return None

    def stream(self, path: Path) -> Any:
        """Like read(), but a file holding a mapping comes as a Streamed (see entries())."""
        try:
            return yamlread.stream(path)
        except ConfigError as exc:
            self.items.append(exc)
            self.unreadable.append(str(path))
            return None

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationError(self.items)


def parse_entry(parse: Any, source: str, name: str, entry: dict[str, Any], *extra: Any) -> Any:
    """Check one entry given outside a file (say, on the command line) with its YAML parser."""
    problems = Problems()
    found = parse(marked([(name, entry, (0, 0))]), source, problems, *extra)
    problems.raise_if_any()
    return found


def _mapping(value: Any, what: str, path: str, at: tuple[int, int], problems: Problems) -> bool:
    """True if value is a mapping; records a problem (and returns False) if not."""
    if isinstance(value, dict):
        return True
    problems.add(path, at, f"{what} must be a mapping, got {_kind(value)}")
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        str: "text",
        int: "a number",
        float: "a number",
        bool: "true/false",
        list: "a list",
    }.get(type(value), type(value).__name__)


def _unknown_keys(
    entry: MarkedMap, allowed: frozenset[str], what: str, path: str, problems: Problems
) -> None:
    for key in entry:
        if key not in allowed:
            choices = ", ".join(sorted(allowed))
            problems.add(path, entry.at(key), f"unknown key {key!r} in {what} (allowed: {choices})")


EMPTY = {
    "hosts": "every host, and every audit on it",
    "scripts": "every script, and every audit that runs one",
    "a schedule file": "every audit it schedules",
    "repairs": "every repair rule",
}


def entries(
    doc: Any, what: str, path: str, problems: Problems
) -> Iterator[tuple[Any, Any, tuple[int, int]]]:
    """(key, value, place) of each entry of a top-level mapping, a Streamed one included.

    An empty document is a problem, not "no entries": a file truncated to
    nothing would otherwise remove everything it defined. `{}` says "none".
    """
    if doc is None:
        if path not in problems.unreadable:
            problems.unreadable.append(path)  # cross-checks would only echo it
            problems.add(
                path,
                (1, 1),
                f"the {what} file is empty; write {{}} in it if it is meant to define nothing "
                f"(an empty file would remove {EMPTY[what]})"
                if what != "a schedule file"
                else f"empty schedule file; write {{}} in it if it is meant to schedule nothing "
                f"(an empty file would remove {EMPTY[what]})",
            )
        return
    if isinstance(doc, Streamed):
        try:
            yield from doc
        except ConfigError as exc:
            problems.items.append(exc)
            problems.unreadable.append(path)
        return
    if not _mapping(doc, what, path, (1, 1), problems):
        return
    for key, value in doc.items():
        yield key, value, doc.at(key)


def parse_hosts(doc: Any, path: str, problems: Problems) -> dict[str, Host]:
    """hosts.yaml: `name: {ip_address, host_type, groups?, vars?, parents?, ssh?, zone?}`."""
    hosts: dict[str, Host] = {}
    for name, entry, at in entries(doc, "hosts", path, problems):
        problem = host_name_problem(name)
        if problem:
            problems.add(path, at, problem)
            continue
        host = _parse_host(name, entry, at, path, problems)
        if host is not None:
            hosts[name] = host
    return hosts


def _parse_host(
    name: str, entry: Any, at: tuple[int, int], path: str, problems: Problems
) -> Host | None:
    what = f"host {name!r}"
    if not _mapping(entry, what, path, at, problems):
        return None
    _unknown_keys(entry, _HOST_KEYS, what, path, problems)
    ip = entry.get("ip_address")
    problem = ip_address_problem(ip)
    if problem:
        problems.add(path, entry.at("ip_address", at), f"{what}: ip_address {problem}")
        return None
    host_type = entry.get("host_type")
    if not isinstance(host_type, str) or not host_type:
        problems.add(path, entry.at("host_type", at), f"{what}: host_type is required text")
        return None
    groups = entry.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        problems.add(path, entry.at("groups"), f"{what}: groups must be a list of names")
        return None
    problem = next(filter(None, (name_problem("group", g) for g in (host_type, *groups))), None)
    if problem:
        key = "host_type" if name_problem("group", host_type) else "groups"
        problems.add(path, entry.at(key, at), f"{what}: {problem}")
        return None
    host_vars = _plain_mapping(entry, "vars", what, path, at, problems)
    if host_vars is None:
        return None
    parents = _names(entry, "parents", what, path, problems)
    if parents is None:
        return None
    ssh = _host_ssh(entry, f"{what}: ssh", path, at, problems)
    if ssh is False:
        return None
    zone = entry.get("zone", DEFAULT_ZONE)
    problem = None if zone == DEFAULT_ZONE else zone_problem(zone)
    if problem:
        problems.add(path, entry.at("zone", at), f"{what}: {problem}")
        return None
    # Interned: 583,000 hosts share a handful of group and var names (bench validate).
    return Host(
        name,
        ip,
        sys.intern(host_type),
        tuple(sys.intern(g) for g in groups),
        {sys.intern(k): v for k, v in host_vars.items()},
        Location(path, *at),
        parents,
        ssh,
        sys.intern(zone),
    )


def _host_ssh(
    entry: MarkedMap, what: str, path: str, at: tuple[int, int], problems: Problems
) -> HostSsh | Literal[False] | None:
    """A host's `ssh: {address, port, user, jump}`; None if absent, False (recorded) if bad."""
    if entry.get("ssh") is None:
        return None
    ssh = entry["ssh"]
    if not _mapping(ssh, what, path, entry.at("ssh", at), problems):
        return False
    _unknown_keys(ssh, _HOST_SSH_KEYS, what, path, problems)
    port = ssh.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 < port < 65536):  # fmt: skip
        problems.add(path, ssh.at("port"), f"{what}: port must be a number from 1 to 65535")
        return False
    for key in ("address", "user"):
        value = ssh.get(key)
        if value is not None and (
            not isinstance(value, str) or not value or value.startswith("-")
            or any(c.isspace() or not c.isprintable() for c in value)
        ):  # fmt: skip
            problems.add(path, ssh.at(key), f"{what}: {key} must be one word, got {value!r}")
            return False
    jump = ssh.get("jump")
    if jump is not None:
        try:
            parse_jump(jump if isinstance(jump, str) else "")
        except ValueError as exc:
            problems.add(path, ssh.at("jump"), f"{what}: jump: {exc}")
            return False
    return HostSsh(ssh.get("address"), port, ssh.get("user"), jump)


def _as_name(key: Any) -> Any:
    """A YAML key used as a name: `123:` reads as the name '123', as before."""
    return str(key) if isinstance(key, int) and not isinstance(key, bool) else key


def _plain_mapping(
    entry: MarkedMap, key: str, what: str, path: str, at: tuple[int, int], problems: Problems
) -> dict[str, Any] | None:
    """A host's vars or a schedule's params: plain data, each key its own ENTROPY_* variable."""
    value = entry.get(key) or {}
    if not _mapping(value, f"{what}: {key}", path, entry.at(key, at), problems):
        return None
    problem = data_problem(value) or _env_size(value) or _env_clash(value, key)
    if problem:
        problems.add(path, entry.at(key, at), f"{what}: {key}: {problem}")
        return None
    return value


# Each var or param is an environment variable of every command run: the kernel
# refuses an exec whose environment and arguments pass ARG_MAX (2 MiB on a usual
# Linux stack) with E2BIG, so every run would fail. Far below, with room for both.
ENV_KEYS_LIMIT = 1_000
ENV_BYTES_LIMIT = 256 * 1024


def _env_size(values: dict[str, Any]) -> str | None:
    """Too many keys, or too much text, for one mapping's environment variables."""
    if len(values) > ENV_KEYS_LIMIT:
        return (
            f"has {len(values):,} keys; at most {ENV_KEYS_LIMIT:,} (each is an environment "
            f"variable of every run)"
        )
    size = 0
    for key, value in values.items():
        size += len(key) + len(value if isinstance(value, str) else as_text(value)) + 16
    if size > ENV_BYTES_LIMIT:
        return (
            f"holds about {size // 1024:,} KiB of text; at most {ENV_BYTES_LIMIT // 1024:,} KiB "
            f"(each key is an environment variable of every run)"
        )
    return None


def _env_clash(values: dict[str, Any], name: str) -> str | None:
    """Two keys a command would find under one ENTROPY_* variable (`a-b` and `a_b`)."""
    if len(values) < 2:
        return None
    seen: dict[str, str] = {}
    for key in values:
        variable = env_name(name, key)
        if variable in seen:
            return f"{seen[variable]!r} and {key!r} would both be ${variable}; rename one"
        seen[variable] = key
    return None


def parse_scripts(doc: Any, path: str, problems: Problems) -> dict[str, Script]:
    """scripts.yaml: `name: {kind, <that kind's keys>, timeout?}`."""
    scripts: dict[str, Script] = {}
    for name, entry, at in entries(doc, "scripts", path, problems):
        name = _as_name(name)
        problem = name_problem("script name", name)
        if problem:
            problems.add(path, at, problem)
            continue
        if not _mapping(entry, f"script {name!r}", path, at, problems):
            continue
        kind = entry.get("kind")
        if not isinstance(kind, str) or kind not in SCRIPT_KINDS:
            kinds = ", ".join(sorted(SCRIPT_KINDS))
            problems.add(
                path,
                entry.at("kind") if "kind" in entry else at,
                f"script {name!r}: kind must be one of {kinds}, got {kind!r}",
            )
            continue
        required, optional = SCRIPT_KINDS[kind]
        _unknown_keys(
            entry, required | optional | _SCRIPT_COMMON, f"script {name!r}", path, problems
        )
        missing = sorted(required - entry.keys())
        if missing:
            problems.add(path, at, f"script {name!r} of kind {kind} needs {', '.join(missing)}")
            continue
        check_script(
            name, kind, entry, lambda where, message: problems.add(path, where, message), path
        )
        timeout = _optional_duration(
            entry, "timeout", f"script {name!r}", path, problems, MAX_TIMEOUT
        )
        params = {k: v for k, v in entry.items() if k not in _SCRIPT_COMMON}
        scripts[name] = Script(name, kind, params, timeout, Location(path, *at))
    return scripts


def _optional_duration(
    entry: MarkedMap, key: str, what: str, path: str, problems: Problems, maximum: int
) -> int | None:
    if entry.get(key) is None:
        return None
    try:
        return parse_duration(entry[key], maximum)
    except DurationError as exc:
        problems.add(path, entry.at(key), f"{what}: {key}: {exc}")
        return None


def parse_schedules(doc: Any, path: str, problems: Problems, cron_timezone: str) -> list[Schedule]:
    """A schedule document in the design notes' format: `target: {audits: {name: {...}}}`."""
    schedules: list[Schedule] = []
    for target, section, at in entries(doc, "a schedule file", path, problems):
        target = _as_name(target)
        problem = name_problem("target", target)
        if problem:
            problems.add(path, at, problem)
            continue
        if not _mapping(section, f"target {target!r}", path, at, problems):
            continue
        _unknown_keys(section, frozenset({"audits"}), f"target {target!r}", path, problems)
        audits = section.get("audits")
        if not _mapping(audits, f"{target!r} audits", path, section.at("audits", at), problems):
            continue
        for key, entry in audits.items():
            audit_name = _as_name(key)
            problem = name_problem("audit name", audit_name)
            if problem:
                problems.add(path, audits.at(key), problem)
                continue
            schedule = _parse_schedule_entry(
                target, audit_name, entry, path, audits.at(key), problems, cron_timezone
            )
            if schedule:
                schedules.append(schedule)
    return schedules


def _parse_schedule_entry(
    target: str,
    audit_name: str,
    entry: Any,
    path: str,
    at: tuple[int, int],
    problems: Problems,
    cron_timezone: str,
) -> Schedule | None:
    what = f"audit {audit_name!r} on {target!r}"
    if not _mapping(entry, what, path, at, problems):
        return None
    _unknown_keys(entry, _SCHEDULE_KEYS, what, path, problems)
    valid, monitoring = _parse_monitoring(entry, what, path, at, problems)
    if not valid:
        return None
    passive = monitoring is not None and monitoring.passive
    timing: Timing | None = None
    if not passive and ("run_every" in entry) == ("cron" in entry):
        problems.add(path, at, f"{what} needs exactly one of run_every or cron")
        return None
    try:
        if "run_every" in entry:
            timing = Every(parse_duration(entry["run_every"], MAX_INTERVAL))
        elif "cron" in entry:
            timing = parse_cron(entry["cron"], cron_timezone)
    except DurationError as exc:
        key = "run_every" if "run_every" in entry else "cron"
        problems.add(path, entry.at(key), f"{what}: {key}: {exc}")
        return None
    disabled = entry.get("disabled", False)
    if not isinstance(disabled, bool):
        problems.add(path, entry.at("disabled"), f"{what}: disabled must be true or false")
        return None
    reason = entry.get("disabled_reason")
    problem = None if reason is None else data_problem(reason)
    if reason is not None and not problem and len(str(reason)) > REASON_LIMIT:
        problem = f"is longer than {REASON_LIMIT} characters (each of its audits keeps a copy)"
    if problem:
        problems.add(path, entry.at("disabled_reason"), f"{what}: disabled_reason {problem}")
        return None
    params = _plain_mapping(entry, "params", what, path, at, problems)
    if params is None:
        return None
    timeout = _optional_duration(entry, "timeout", what, path, problems, MAX_TIMEOUT)
    if passive and monitoring is not None and monitoring.freshness:
        timing = Every(monitoring.freshness)  # how often its freshness is checked
    # run_every or cron was required above, and a passive audit's freshness was checked.
    assert timing is not None
    return Schedule(
        target,
        audit_name,
        timing,
        disabled,
        None if reason is None else str(reason),
        timeout,
        dict(params),
        Location(path, *at),
        monitoring,
    )


def parse_repairs(doc: Any, path: str, problems: Problems) -> dict[str, RepairRule]:
    """repairs.yaml: `name: {when: {audit, outcome?, consecutive?}, run, cooldown?, ...}`."""
    repairs: dict[str, RepairRule] = {}
    for name, entry, at in entries(doc, "repairs", path, problems):
        name = _as_name(name)
        problem = name_problem("repair name", name)
        if problem:
            problems.add(path, at, problem)
            continue
        what = f"repair {name!r}"
        if not _mapping(entry, what, path, at, problems):
            continue
        _unknown_keys(entry, _REPAIR_KEYS, what, path, problems)
        when = entry.get("when")
        if not _mapping(when, f"{what}: when", path, entry.at("when", at), problems):
            continue
        _unknown_keys(when, _WHEN_KEYS, f"{what}: when", path, problems)
        audit = when.get("audit")
        if not isinstance(audit, str) or not audit:
            problems.add(path, when.at("audit", at), f"{what}: when.audit is required text")
            continue
        outcomes = _outcomes(when, f"{what}: when.outcome", path, problems)
        run = entry.get("run")
        if not isinstance(run, str) or not run:
            problems.add(path, entry.at("run", at), f"{what}: run must name a script")
            continue
        consecutive = _count(when, "consecutive", 1, what, path, problems, "when.")
        max_concurrent = _count(entry, "max_concurrent", None, what, path, problems)
        max_attempts = _count(entry, "max_attempts", None, what, path, problems)
        cooldown = _optional_duration(entry, "cooldown", what, path, problems, MAX_INTERVAL)
        verify = entry.get("verify", False)
        if not isinstance(verify, bool):
            problems.add(path, entry.at("verify"), f"{what}: verify must be true or false")
            continue
        if outcomes is None or consecutive is None:
            continue
        repairs[str(name)] = RepairRule(
            str(name), audit, outcomes, run, consecutive, cooldown or 0,
            max_concurrent, max_attempts, verify, Location(path, *at),
        )  # fmt: skip
    return repairs


def _outcomes(
    when: MarkedMap, what: str, path: str, problems: Problems
) -> frozenset[Outcome] | None:
    """`outcome: critical` or `outcome: [warning, critical]`; critical when absent."""
    value = when.get("outcome", [Outcome.CRITICAL.value])
    names = value if isinstance(value, list) else [value]
    allowed = {o.value for o in REPAIRABLE_OUTCOMES}
    bad = [n for n in names if not isinstance(n, str) or n not in allowed]
    if bad or not names:
        problems.add(
            path,
            when.at("outcome"),
            f"{what} must be one or more of {', '.join(sorted(allowed))}, got {value!r}",
        )
        return None
    return frozenset(Outcome(n) for n in names)


def _count(
    entry: MarkedMap,
    key: str,
    default: int | None,
    what: str,
    path: str,
    problems: Problems,
    prefix: str = "",
) -> int | None:
    value = entry.get(key, default)
    if value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= COUNT_MAX
    ):
        return value
    message = f"{what}: {prefix}{key} must be a whole number from 1 to {COUNT_MAX}, got {value!r}"
    problems.add(path, entry.at(key), message)
    return None


def build_catalog(
    hosts: dict[str, Host],
    scripts: dict[str, Script],
    schedules: list[Schedule],
    sources: list[str],
    problems: Problems,
    repairs: dict[str, RepairRule] | None = None,
    downtimes: dict[str, Downtime] | None = None,
) -> Catalog:
    """Check the parts against each other and expand them into pairs.

    Raises ValidationError with every problem found, parsing ones included.
    """
    catalog = Catalog(
        hosts, scripts, schedules, sources, repairs=repairs or {}, downtimes=downtimes or {}
    )
    # With a file unreadable, cross-checks would only echo it ("unknown target" everywhere).
    if not problems.unreadable:
        catalog.pairs = expand(catalog, problems)
        _check_repairs(catalog, problems)
        _check_monitoring(catalog, problems)
        check_pairs(catalog, problems.report)
    problems.raise_if_any()
    return catalog


def _check_repairs(catalog: Catalog, problems: Problems) -> None:
    """A rule must run a known script and watch at least one known audit."""
    audits = _audit_names(catalog)
    for rule in catalog.repairs.values():
        if rule.run not in catalog.scripts:
            problems.report(rule.where, f"repair {rule.name!r}: run: no script {rule.run!r}")
        if not any(rule.matches(name) for name in audits):
            kind = "pattern" if _GLOB_CHARS & set(rule.audit) else "audit"
            problems.report(
                rule.where,
                f"repair {rule.name!r}: when.audit: {kind} {rule.audit!r} matches no script",
            )


def expand(catalog: Catalog, problems: Problems) -> PairBlocks:
    """Schedules x hosts -> the desired (audit, host) pairs, as blocks (see entropy.pairs).

    A host's own entry beats a group's (as in Nagios); two groups that give
    one pair different settings is an error naming both places. An audit
    scheduled once, on a group, with no host entry of its own (the common
    case) costs no work per pair: its block is the group's array of hosts.
    """
    host_list = list(catalog.hosts.values())
    members: dict[str, array] = {}
    for k, host in enumerate(host_list):
        members.setdefault(host.host_type, array("I")).append(k)
        for group in host.groups:
            if group != host.host_type:
                found = members.setdefault(group, array("I"))
                if not found or found[-1] != k:  # a group listed twice by one host
                    found.append(k)

    chosen: dict[tuple[str, str], Schedule] = {}
    group_schedules: list[Schedule] = []
    for schedule in catalog.schedules:
        problem = _target_problem(schedule, catalog, members)
        if problem:
            problems.report(schedule.where, problem)
        elif schedule.target in members:
            group_schedules.append(schedule)
        else:
            key = (schedule.audit_name, schedule.target)
            if key in chosen:
                problems.report(
                    schedule.where,
                    f"audit {schedule.audit_name!r} is given twice "
                    f"for host {schedule.target!r}; first at {chosen[key].where}",
                )
            else:
                chosen[key] = schedule

    position = {host.name: k for k, host in enumerate(host_list)} if chosen else {}
    blocks: list[tuple[Schedule, array]] = [
        (schedule, array("I", (position[host_name],)))
        for (_, host_name), schedule in chosen.items()
    ]
    own: dict[str, set[int]] = defaultdict(set)  # audit -> hosts with an entry of their own
    for audit_name, host_name in chosen:
        own[audit_name].add(position[host_name])
    per_audit: dict[str, int] = defaultdict(int)
    for schedule in group_schedules:
        per_audit[schedule.audit_name] += 1
    taken: dict[str, dict[int, Schedule]] = defaultdict(dict)  # the first schedule wins
    clashes: dict[tuple[int, int], tuple[Schedule, Schedule, list[str]]] = {}
    for schedule in group_schedules:
        audit_name, positions = schedule.audit_name, members[schedule.target]
        if per_audit[audit_name] == 1 and audit_name not in own:
            blocks.append((schedule, positions))  # shared with the group: never changed
            continue
        mine, firsts, kept = own.get(audit_name, ()), taken[audit_name], array("I")
        for k in positions:
            if k in mine:
                continue
            seen = firsts.setdefault(k, schedule)
            if seen is schedule:
                kept.append(k)
            elif seen.settings() != schedule.settings():
                clash = clashes.setdefault((id(seen), id(schedule)), (seen, schedule, []))
                clash[2].append(host_list[k].name)
        if kept:
            blocks.append((schedule, kept))
    for first, second, clashed in clashes.values():
        hosts_text = repr(clashed[0]) + (
            f" and {len(clashed) - 1} more" if len(clashed) > 1 else ""
        )
        problems.report(
            second.where,
            f"audit {second.audit_name!r} reaches host {hosts_text} through groups "
            f"{first.target!r} ({first.where}) and {second.target!r} with different "
            f"settings; give the host its own entry or make them agree",
        )
    return PairBlocks(host_list, blocks)


def _target_problem(schedule: Schedule, catalog: Catalog, members: dict[str, array]) -> str | None:
    passive = schedule.monitoring is not None and schedule.monitoring.passive
    if schedule.audit_name not in catalog.scripts and not passive:
        return f"audit {schedule.audit_name!r} has no script in scripts.yaml"
    is_host, is_group = schedule.target in catalog.hosts, schedule.target in members
    if is_host and is_group:
        return f"target {schedule.target!r} is both a host and a group; rename one"
    if not (is_host or is_group):
        return f"unknown target {schedule.target!r}: not a host in hosts.yaml nor any host's group"
    return None


# -- monitoring: schedule keys, host parents, downtimes (see monitoring.py) -----------


def _names(
    entry: MarkedMap, key: str, what: str, path: str, problems: Problems
) -> tuple[str, ...] | None:
    """`key: name` or `key: [name, ...]` as a tuple (empty when absent); None if malformed."""
    value = entry.get(key)
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        problems.add(path, entry.at(key), f"{what}: {key} must be a name or a list of names")
        return None
    return tuple(names)


def _parse_monitoring(
    entry: MarkedMap, what: str, path: str, at: tuple[int, int], problems: Problems
) -> tuple[bool, MonitorSettings | None]:
    """A schedule entry's monitoring keys: (valid, settings); settings None when none is set."""
    before = len(problems.items)
    max_attempts = _count(entry, "max_attempts", 1, what, path, problems) or 1
    retry_every = _optional_duration(entry, "retry_every", what, path, problems, MAX_INTERVAL)
    freshness = _optional_duration(entry, "freshness", what, path, problems, MAX_INTERVAL)
    passive = entry.get("passive", False)
    if not isinstance(passive, bool):
        problems.add(path, entry.at("passive"), f"{what}: passive must be true or false")
        return False, None  # the checks below depend on it
    if retry_every is not None and max_attempts == 1 and not passive:
        problems.add(
            path,
            entry.at("retry_every"),
            f"{what}: retry_every needs max_attempts above 1 (retries run only while "
            f"a problem is soft)",
        )
    if passive:
        for key in ("run_every", "cron", "retry_every"):
            if key in entry:
                problems.add(
                    path,
                    entry.at(key),
                    f"{what}: a passive audit is not run by Entropy, so it takes no {key}; "
                    f"freshness says how soon a result must arrive",
                )
        if entry.get("freshness") is None:  # absent, or `freshness:` with no value
            problems.add(
                path,
                at,
                f"{what}: a passive audit needs freshness: how long without a result "
                f"before it turns unknown (say, freshness: 1d)",
            )
    elif "freshness" in entry:
        problems.add(
            path, entry.at("freshness"), f"{what}: freshness is only for passive: true audits"
        )
    flapping = _parse_flapping(entry, what, path, problems)
    depends_on = _parse_depends_on(entry, what, path, problems)
    if len(problems.items) > before:
        return False, None
    settings = MonitorSettings(max_attempts, retry_every, flapping, depends_on, passive, freshness)
    return True, None if settings == MonitorSettings() else settings


def _parse_flapping(entry: MarkedMap, what: str, path: str, problems: Problems) -> Flapping | None:
    """`flapping: true` (25 % / 30 %) or `flapping: {low: 20, high: 40}`."""
    value = entry.get("flapping", False)
    if value is False:
        return None
    if value is True:
        return Flapping()
    where = entry.at("flapping")
    if not isinstance(value, MarkedMap):  # every mapping read is one (marked())
        problems.add(path, where, f"{what}: flapping must be true, false or {{low: N, high: N}}")
        return None
    _unknown_keys(value, frozenset({"low", "high"}), f"{what}: flapping", path, problems)
    low, high = value.get("low", Flapping().low), value.get("high", Flapping().high)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not 0 <= low < high <= 100:
        problems.add(
            path,
            where,
            f"{what}: flapping thresholds must be percentages with 0 <= low < high <= 100, "
            f"got low {low!r}, high {high!r}",
        )
        return None
    return Flapping(float(low), float(high))


def _parse_depends_on(
    entry: MarkedMap, what: str, path: str, problems: Problems
) -> Dependency | None:
    """`depends_on: {audit: NAME, host: parent | same}` (host defaults to same)."""
    value = entry.get("depends_on")
    if value is None:
        return None
    where = entry.at("depends_on")
    if not _mapping(value, f"{what}: depends_on", path, where, problems):
        return None
    _unknown_keys(value, _DEPENDS_KEYS, f"{what}: depends_on", path, problems)
    audit, host = value.get("audit"), value.get("host", "same")
    if not isinstance(audit, str) or not audit:
        problems.add(path, value.at("audit", where), f"{what}: depends_on.audit is required text")
        return None
    if host not in ("parent", "same"):
        problems.add(
            path,
            value.at("host", where),
            f"{what}: depends_on.host must be parent (the host's parents) or same "
            f"(this host), got {host!r}",
        )
        return None
    return Dependency(audit, host)


def parse_downtimes(
    doc: Any, path: str, problems: Problems, cron_timezone: str
) -> dict[str, Downtime]:
    """downtimes.yaml: `name: {hosts?, groups?, audits?, start+end | start+duration |
    cron+duration, reason, skip_checks?}`; times without a zone are in cron_timezone."""
    downtimes: dict[str, Downtime] = {}
    if doc is None:
        return downtimes
    if not _mapping(doc, "downtimes", path, (1, 1), problems):
        return downtimes
    for name, entry in doc.items():
        at = doc.at(name)
        what = f"downtime {name!r}"
        if not _mapping(entry, what, path, at, problems):
            continue
        before = len(problems.items)
        _unknown_keys(entry, _DOWNTIME_KEYS, what, path, problems)
        hosts = _names(entry, "hosts", what, path, problems)
        groups = _names(entry, "groups", what, path, problems)
        audits = _names(entry, "audits", what, path, problems)
        if hosts == groups == audits == ():
            problems.add(path, at, f"{what} needs hosts, groups or audits to say what it covers")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            problems.add(path, entry.at("reason", at), f"{what}: reason is required text")
        skip = entry.get("skip_checks", False)
        if not isinstance(skip, bool):
            problems.add(
                path, entry.at("skip_checks"), f"{what}: skip_checks must be true or false"
            )
        window = _downtime_window(entry, what, path, at, problems, cron_timezone)
        if len(problems.items) > before or window is None:
            continue
        start, end, cron, duration = window
        downtimes[str(name)] = Downtime(
            str(name), str(reason), hosts or (), groups or (), audits or (), start, end, cron,
            duration, bool(skip), where=Location(path, *at),
        )  # fmt: skip
    return downtimes


def _downtime_window(
    entry: MarkedMap, what: str, path: str, at: tuple[int, int], problems: Problems, tz: str
) -> tuple[dt.datetime | None, dt.datetime | None, Any, int | None] | None:
    """(start, end, cron, duration): start with end or duration, or cron with duration."""
    if ("start" in entry) == ("cron" in entry):
        problems.add(path, at, f"{what} needs exactly one of start (with end or duration) or cron")
        return None
    duration = _optional_duration(entry, "duration", what, path, problems, MAX_DURATION)
    if "cron" in entry:
        if "end" in entry or duration is None:
            problems.add(
                path,
                entry.at("end", at),
                f"{what}: a cron downtime needs duration (how long each window lasts), not end",
            )
            return None
        try:
            return None, None, parse_cron(entry["cron"], tz), duration
        except DurationError as exc:
            problems.add(path, entry.at("cron"), f"{what}: cron: {exc}")
            return None
    start = _moment(entry, "start", what, path, problems, tz)
    if ("end" in entry) == ("duration" in entry):
        problems.add(path, entry.at("start"), f"{what}: start needs exactly one of end or duration")
        return None
    if start is None:
        return None
    if "end" in entry:
        end = _moment(entry, "end", what, path, problems, tz)
        if end is None:
            return None
        if end <= start:
            problems.add(path, entry.at("end"), f"{what}: end must be after start")
            return None
    else:
        if duration is None:
            return None
        end = start + dt.timedelta(seconds=duration)
    return start, end, None, None


def _moment(
    entry: MarkedMap, key: str, what: str, path: str, problems: Problems, tz: str
) -> dt.datetime | None:
    """A YAML timestamp or ISO 8601 text, as UTC; without a zone it is read in `tz`."""
    value = entry[key]
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            value = None
    if not isinstance(value, dt.datetime):
        problems.add(
            path,
            entry.at(key),
            f"{what}: {key} must be a date and time such as 2026-03-01 22:00 "
            f"or 2026-03-01T22:00:00Z, got {entry[key]!r}",
        )
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(dt.UTC)


def _audit_names(catalog: Catalog) -> set[str]:
    """Every audit a rule or a downtime may name: the scripts and the passive audits."""
    passive = {
        s.audit_name for s in catalog.schedules if s.monitoring is not None and s.monitoring.passive
    }
    return set(catalog.scripts) | passive


def _check_monitoring(catalog: Catalog, problems: Problems) -> None:
    """Cross-checks of parents, depends_on and downtimes (none cost anything when unused)."""
    if any(host.parents for host in catalog.hosts.values()):
        _check_parents(catalog.hosts, problems)
    if any(s.monitoring is not None and s.monitoring.depends_on for s in catalog.schedules):
        _check_dependencies(catalog, problems)
    if catalog.downtimes:
        _check_downtimes(catalog, problems)


def _check_parents(hosts: dict[str, Host], problems: Problems) -> None:
    """Every parent is a host, and following parents never comes back to where it began."""
    for host in hosts.values():
        for parent in host.parents:
            if parent not in hosts:
                problems.report(host.where, f"host {host.name!r}: parent {parent!r} is not a host")
    done: set[str] = set()
    reported: set[frozenset[str]] = set()
    for root in hosts:
        if root in done:
            continue
        path: list[str] = []  # the walk from root: a cycle is a host met again on it
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, i = stack.pop()
            host = hosts[name]
            if i == 0:
                path.append(name)
                on_path.add(name)
            parents = [p for p in host.parents if p in hosts]
            if i < len(parents):
                stack.append((name, i + 1))
                nxt = parents[i]
                if nxt in on_path:
                    cycle = path[path.index(nxt) :]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        _report_cycle(cycle, hosts, problems)
                elif nxt not in done:
                    stack.append((nxt, 0))
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)


def _report_cycle(cycle: list[str], hosts: dict[str, Host], problems: Problems) -> None:
    def place(i: int) -> tuple:
        where = hosts[cycle[i]].where
        return (where.path, where.line, where.col, cycle[i])

    first = min(range(len(cycle)), key=place)
    ordered = cycle[first:] + cycle[:first]
    steps = " -> ".join(f"{name} ({hosts[name].where})" for name in ordered)
    problems.report(
        hosts[ordered[0]].where,
        f"host parents form a cycle: {steps} -> {ordered[0]}; a host cannot be its own ancestor",
    )


def _dependency(schedule: Schedule) -> Dependency | None:
    return schedule.monitoring.depends_on if schedule.monitoring is not None else None


def _check_dependencies(catalog: Catalog, problems: Problems) -> None:
    """depends_on names a known audit that runs where it points, and never loops."""
    audits, pairs = _audit_names(catalog), {pair.key for pair in catalog.pairs}
    missing: dict[int, tuple[Schedule, Dependency, list[str]]] = {}
    same_edges: dict[str, dict[str, tuple[str, Schedule]]] = defaultdict(dict)
    bad: set[int] = set()
    for schedule in catalog.schedules:
        dep = _dependency(schedule)
        if dep is None:
            continue
        what = f"audit {schedule.audit_name!r} on {schedule.target!r}: depends_on"
        if dep.audit not in audits:
            problems.report(schedule.where, f"{what}: no audit {dep.audit!r}")
            bad.add(id(schedule))
        elif dep.host == "same" and dep.audit == schedule.audit_name:
            problems.report(schedule.where, f"{what}: an audit cannot depend on itself")
            bad.add(id(schedule))
    for pair in catalog.pairs:
        schedule = pair.schedule
        dep = _dependency(schedule)
        if dep is None or id(schedule) in bad:
            continue
        host = catalog.hosts[pair.host]
        targets = host.parents if dep.host == "parent" else (host.name,)
        for target in targets:
            if (dep.audit, target) not in pairs and target in catalog.hosts:
                missing.setdefault(id(schedule), (schedule, dep, []))[2].append(target)
        if dep.host == "same":
            same_edges[pair.host][pair.audit_name] = (dep.audit, schedule)
    for schedule, dep, hosts in missing.values():
        shown = repr(hosts[0]) + (f" and {len(hosts) - 1} more" if len(hosts) > 1 else "")
        problems.report(
            schedule.where,
            f"audit {schedule.audit_name!r} on {schedule.target!r}: depends_on audit "
            f"{dep.audit!r}, which does not run on {shown}",
        )
    reported: set[frozenset[int]] = set()  # a loop of entries, once for all its hosts
    for host_name, edges in same_edges.items():
        for start in edges:  # each audit depends on at most one: follow the chain
            chain, audit = [start], edges[start][0]
            while audit in edges and audit not in chain:
                chain.append(audit)
                audit = edges[audit][0]
            if audit not in chain:
                continue
            loop = chain[chain.index(audit) :]
            entries = frozenset(id(edges[a][1]) for a in loop)
            if entries in reported:
                continue
            reported.add(entries)
            steps = " -> ".join(f"{a} ({edges[a][1].where})" for a in loop)
            problems.report(
                edges[loop[0]][1].where,
                f"depends_on forms a loop: {steps} -> {loop[0]} (on host {host_name!r} and "
                f"wherever these entries meet)",
            )


def _check_downtimes(catalog: Catalog, problems: Problems) -> None:
    """Each pattern of a downtime names something that exists: a typo must not make a
    maintenance window silently cover nothing."""
    groups = {g for host in catalog.hosts.values() for g in (host.host_type, *host.groups)}
    known = {"hosts": set(catalog.hosts), "groups": groups, "audits": _audit_names(catalog)}
    for downtime in catalog.downtimes.values():
        for key in ("hosts", "groups", "audits"):
            for pattern in getattr(downtime, key):
                if not any(fnmatchcase(name, pattern) for name in known[key]):
                    kind = "pattern" if _GLOB_CHARS & set(pattern) else "name"
                    problems.report(
                        downtime.where,
                        f"downtime {downtime.name!r}: {key}: {kind} {pattern!r} matches no "
                        f"{key[:-1]}",
                    )
