"""The monitoring keys in the definitions: schedule entries (max_attempts, retry_every,
flapping, depends_on, passive, freshness), host parents, downtimes; each problem at
path:line:col.

Kept apart from test_definitions.py so that file's other growth merges cleanly. The
dir backend does not read downtimes.yaml yet (issue 15 phase 2 hooks parse_downtimes
into impl_dir and impl_file); `load` below does what that hookup will do.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from entropy.definitions import (
    Problems,
    build_catalog,
    parse_downtimes,
    parse_hosts,
    parse_repairs,
    parse_schedules,
    parse_scripts,
    read_yaml,
)
from entropy.dump import write_dir
from entropy.errors import ConfigError, ValidationError
from entropy.model import Catalog, Dependency, Flapping, MonitorSettings
from entropy.timing import Cron, Every
from entropy.transfer import catalog_differences

HOSTS = """\
sw-1:
  ip_address: 10.0.9.1
  host_type: switch
sw-2:
  ip_address: 10.0.9.2
  host_type: switch
compute-01:
  ip_address: 10.0.0.1
  host_type: compute
  parents: [sw-1]
compute-02:
  ip_address: 10.0.0.2
  host_type: compute
  parents: [sw-1, sw-2]
"""

SCRIPTS = """\
ping:
  kind: tcp
  port: 22
check_a:
  kind: command
  command: [test, -f, /etc/a]
check_b:
  kind: command
  command: [test, -f, /etc/b]
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def write(
    root: Path,
    audits: str,
    hosts: str = HOSTS,
    scripts: str = SCRIPTS,
    downtimes: str | None = None,
    repairs: str | None = None,
) -> Path:
    (root / "audits").mkdir(parents=True, exist_ok=True)
    (root / "hosts.yaml").write_text(hosts)
    (root / "scripts.yaml").write_text(scripts)
    (root / "audits" / "a.yaml").write_text(dedent(audits))
    if downtimes is not None:
        (root / "downtimes.yaml").write_text(dedent(downtimes))
    if repairs is not None:
        (root / "repairs.yaml").write_text(dedent(repairs))
    return root


def load(root: Path, timezone: str = "UTC") -> Catalog:
    """The dir backend's load, plus the optional downtimes.yaml (phase 2's hookup)."""
    problems = Problems()
    hosts = parse_hosts(problems.read(root / "hosts.yaml"), str(root / "hosts.yaml"), problems)
    scripts = parse_scripts(
        problems.read(root / "scripts.yaml"), str(root / "scripts.yaml"), problems
    )
    files = sorted((root / "audits").glob("*.yaml"))
    schedules = [
        schedule
        for path in files
        for schedule in parse_schedules(problems.read(path), str(path), problems, timezone)
    ]
    repairs_path, downtimes_path = root / "repairs.yaml", root / "downtimes.yaml"
    repairs = (
        parse_repairs(problems.read(repairs_path), str(repairs_path), problems)
        if repairs_path.exists()
        else {}
    )
    downtimes = (
        parse_downtimes(problems.read(downtimes_path), str(downtimes_path), problems, timezone)
        if downtimes_path.exists()
        else {}
    )
    sources = [str(path) for path in files]
    return build_catalog(hosts, scripts, schedules, sources, problems, repairs, downtimes)


def problems_of(root: Path) -> list[ConfigError]:
    with pytest.raises(ValidationError) as info:
        load(root)
    return info.value.problems


def only_problem(root: Path) -> ConfigError:
    problems = problems_of(root)
    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    return problems[0]


def line_of(path: Path, needle: str, occurrence: int = 1) -> tuple[int, int]:
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in {path}")


def assert_at(problem: ConfigError, path: Path, needle: str, message: str) -> None:
    line, col = line_of(path, needle)
    assert str(problem) == f"{path}:{line}:{col}: {message}"


# -- schedule entries -----------------------------------------------------------------


def test_monitoring_keys_are_carried_into_the_schedule(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        compute:
          audits:
            check_a:
              run_every: 1h
              max_attempts: 3
              retry_every: 2m
              flapping: {low: 20, high: 40}
              depends_on: {audit: ping, host: parent}
            check_b:
              run_every: 1h
              flapping: true
              depends_on: {audit: ping}
            ping: {run_every: 1m}
        switch:
          audits:
            ping: {run_every: 1m}
        """,
    )
    catalog = load(root)
    schedules = {(s.target, s.audit_name): s for s in catalog.schedules}
    assert schedules["compute", "check_a"].monitoring == MonitorSettings(
        max_attempts=3,
        retry_every=120,
        flapping=Flapping(20.0, 40.0),
        depends_on=Dependency("ping", "parent"),
    )
    assert schedules["compute", "check_b"].monitoring == MonitorSettings(
        flapping=Flapping(), depends_on=Dependency("ping", "same")
    )
    assert schedules["compute", "ping"].monitoring is None  # nothing configured: no cost
    assert catalog.hosts["compute-02"].parents == ("sw-1", "sw-2")


def test_an_entry_that_spells_out_the_defaults_configures_nothing(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        compute:
          audits:
            check_a: {run_every: 1h, max_attempts: 1, flapping: false, passive: false}
        """,
    )
    assert load(root).schedules[0].monitoring is None


def test_a_passive_audit_needs_no_script_and_is_checked_every_freshness(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        compute:
          audits:
            backup_done: {passive: true, freshness: 1d, max_attempts: 2}
        """,
        repairs="""
        rerun_backup:
          when: {audit: backup_done, outcome: [critical, unknown]}
          run: check_a
        """,
    )
    catalog = load(root)
    pair = next(p for p in catalog.pairs if p.key == ("backup_done", "compute-01"))
    assert pair.schedule.timing == Every(86400)
    assert pair.schedule.monitoring == MonitorSettings(
        max_attempts=2, passive=True, freshness=86400
    )
    assert "rerun_backup" in catalog.repairs  # a rule may watch a passive audit


@pytest.mark.parametrize(
    ("entry", "needle", "message"),
    [
        (
            "{run_every: 1h, max_attempts: 0}",
            "check_a",
            "max_attempts must be a whole number from 1 to 1000000, got 0",
        ),
        (
            "{run_every: 1h, max_attempts: two}",
            "check_a",
            "max_attempts must be a whole number from 1 to 1000000, got 'two'",
        ),
        (
            "{run_every: 1h, retry_every: 1m}",
            "check_a",
            "retry_every needs max_attempts above 1 (retries run only while a problem is soft)",
        ),
        (
            "{run_every: 1h, max_attempts: 2, retry_every: 5}",
            "check_a",
            "retry_every: duration 5 has no unit (e.g. 90s, 30mins, 1hour, 1day, 2days, 1h30m)",
        ),
        (
            "{run_every: 1h, flapping: {low: 40, high: 30}}",
            "check_a",
            "flapping thresholds must be percentages with 0 <= low < high <= 100, "
            "got low 40, high 30",
        ),
        (
            "{run_every: 1h, flapping: yes please}",
            "check_a",
            "flapping must be true, false or {low: N, high: N}",
        ),
        (
            "{run_every: 1h, freshness: 1d}",
            "check_a",
            "freshness is only for passive: true audits",
        ),
        (
            "{passive: true}",
            "check_a",
            "a passive audit needs freshness: how long without a result before it turns "
            "unknown (say, freshness: 1d)",
        ),
        (  # `freshness:` with no value is none (it made a schedule with no timing)
            "{passive: true, freshness: null}",
            "check_a",
            "a passive audit needs freshness: how long without a result before it turns "
            "unknown (say, freshness: 1d)",
        ),
        (
            "{passive: true, freshness: 1d, run_every: 1h}",
            "check_a",
            "a passive audit is not run by Entropy, so it takes no run_every; freshness says "
            "how soon a result must arrive",
        ),
        (
            "{passive: 'true', freshness: 1d}",
            "check_a",
            "passive must be true or false",
        ),
        (
            "{run_every: 1h, depends_on: {audit: ping, host: uplink}}",
            "check_a",
            "depends_on.host must be parent (the host's parents) or same (this host), got 'uplink'",
        ),
        (
            "{run_every: 1h, depends_on: {host: parent}}",
            "check_a",
            "depends_on.audit is required text",
        ),
        (
            "{run_every: 1h, depends_on: ping}",
            "check_a",
            "depends_on must be a mapping, got text",
        ),
    ],
)
def test_bad_monitoring_keys_are_one_problem_in_the_entry(
    tmp_path: Path, entry: str, needle: str, message: str
) -> None:
    root = write(tmp_path, f"compute:\n  audits:\n    check_a: {entry}\n")
    problem = only_problem(root)
    path = root / "audits" / "a.yaml"
    # Each problem stands on the entry's line, at the entry or at its key.
    assert problem.where.path == str(path) and problem.where.line == line_of(path, needle)[0]
    assert problem.message == f"audit 'check_a' on 'compute': {message}"


def test_a_key_problem_stands_at_the_key(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        compute:
          audits:
            check_a:
              run_every: 1h
              retry_every: 1m
        """,
    )
    path = root / "audits" / "a.yaml"
    assert_at(
        only_problem(root),
        path,
        "retry_every",
        "audit 'check_a' on 'compute': retry_every needs max_attempts above 1 (retries run "
        "only while a problem is soft)",
    )


def test_two_groups_with_different_monitoring_settings_clash(tmp_path: Path) -> None:
    hosts = HOSTS.replace(
        "  host_type: compute\n  parents: [sw-1]\n",
        "  host_type: compute\n  groups: [web]\n  parents: [sw-1]\n",
    )
    root = write(
        tmp_path,
        """
        compute:
          audits:
            check_a: {run_every: 1h, max_attempts: 3}
        web:
          audits:
            check_a: {run_every: 1h}
        """,
        hosts=hosts,
    )
    problem = only_problem(root)
    assert "reaches host 'compute-01' through groups 'compute'" in problem.message


# -- depends_on across the catalog ----------------------------------------------------


def test_depends_on_an_unknown_audit(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        compute:
          audits:
            check_a: {run_every: 1h, depends_on: {audit: pong}}
        """,
    )
    path = root / "audits" / "a.yaml"
    assert_at(
        only_problem(root),
        path,
        "check_a",
        "audit 'check_a' on 'compute': depends_on: no audit 'pong'",
    )


def test_depends_on_itself(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        "compute:\n  audits:\n    check_a: {run_every: 1h, depends_on: {audit: check_a}}\n",
    )
    assert only_problem(root).message == (
        "audit 'check_a' on 'compute': depends_on: an audit cannot depend on itself"
    )


def test_depends_on_an_audit_that_does_not_run_on_the_parent(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        compute:
          audits:
            check_a: {run_every: 1h, depends_on: {audit: ping, host: parent}}
        sw-1:
          audits:
            ping: {run_every: 1m}
        """,
    )
    path = root / "audits" / "a.yaml"
    assert_at(
        only_problem(root),
        path,
        "check_a",
        "audit 'check_a' on 'compute': depends_on audit 'ping', which does not run on 'sw-2'",
    )


def test_depends_on_loops_on_one_host(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        """
        compute:
          audits:
            check_a: {run_every: 1h, depends_on: {audit: check_b}}
            check_b: {run_every: 1h, depends_on: {audit: check_a}}
        """,
    )
    path = root / "audits" / "a.yaml"
    a, b = line_of(path, "check_a:"), line_of(path, "check_b:")
    assert only_problem(root).message == (  # once, though both hosts have the loop
        f"depends_on forms a loop: check_a ({path}:{a[0]}:{a[1]}) -> "
        f"check_b ({path}:{b[0]}:{b[1]}) -> check_a (on host 'compute-01' and wherever "
        f"these entries meet)"
    )


# -- host parents ---------------------------------------------------------------------

AUDITS = "compute:\n  audits:\n    check_a: {run_every: 1h}\n"


def test_an_unknown_parent_is_a_problem_at_the_host(tmp_path: Path) -> None:
    root = write(tmp_path, AUDITS, hosts=HOSTS.replace("parents: [sw-1]", "parents: [sw-9]"))
    assert_at(
        only_problem(root),
        root / "hosts.yaml",
        "compute-01",
        "host 'compute-01': parent 'sw-9' is not a host",
    )


def test_parents_must_be_names(tmp_path: Path) -> None:
    root = write(tmp_path, AUDITS, hosts=HOSTS.replace("parents: [sw-1]", "parents: {a: 1}"))
    assert_at(
        only_problem(root),
        root / "hosts.yaml",
        "parents: {a",
        "host 'compute-01': parents must be a name or a list of names",
    )


def test_a_cycle_in_parents_names_the_files_and_lines_of_its_hosts(tmp_path: Path) -> None:
    hosts = HOSTS + dedent(
        """
        router:
          ip_address: 10.0.9.9
          host_type: router
          parents: [sw-2]
        """
    )
    hosts = hosts.replace(
        "sw-2:\n  ip_address: 10.0.9.2\n  host_type: switch\n",
        "sw-2:\n  ip_address: 10.0.9.2\n  host_type: switch\n  parents: [sw-1]\n",
    ).replace(
        "sw-1:\n  ip_address: 10.0.9.1\n  host_type: switch\n",
        "sw-1:\n  ip_address: 10.0.9.1\n  host_type: switch\n  parents: [router]\n",
    )
    root = write(tmp_path, AUDITS, hosts=hosts)
    path = root / "hosts.yaml"
    problem = only_problem(root)
    at = {name: f"{path}:{line_of(path, name + ':')[0]}:1" for name in ("sw-1", "sw-2", "router")}
    assert str(problem) == (
        f"{at['sw-1']}: host parents form a cycle: sw-1 ({at['sw-1']}) -> router "
        f"({at['router']}) -> sw-2 ({at['sw-2']}) -> sw-1; a host cannot be its own ancestor"
    )


def test_a_host_that_is_its_own_parent(tmp_path: Path) -> None:
    root = write(tmp_path, AUDITS, hosts=HOSTS.replace("parents: [sw-1]", "parents: compute-01"))
    path = root / "hosts.yaml"
    where = f"{path}:{line_of(path, 'compute-01:')[0]}:1"
    assert only_problem(root).message == (
        f"host parents form a cycle: compute-01 ({where}) -> compute-01; "
        f"a host cannot be its own ancestor"
    )


# -- downtimes ------------------------------------------------------------------------


def test_downtimes_parse(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        AUDITS,
        downtimes="""
        kernel:
          hosts: ["compute-*"]
          audits: [check_a]
          cron: "0 2 * * 6"
          duration: 2h
          reason: kernel upgrades
        dc-move:
          groups: switch
          start: 2026-03-01T22:00:00Z
          end: "2026-03-02 04:00"
          reason: moving racks
          skip_checks: true
        short:
          hosts: sw-1
          start: 2026-03-01 22:00:00
          duration: 90m
          reason: cable
        """,
    )
    catalog = load(root, timezone="Europe/Berlin")
    kernel, move, short = (catalog.downtimes[n] for n in ("kernel", "dc-move", "short"))
    assert kernel.cron == Cron("0 2 * * 6", "Europe/Berlin") and kernel.duration == 7200
    assert (kernel.hosts, kernel.groups, kernel.audits) == (("compute-*",), (), ("check_a",))
    assert move.start == datetime(2026, 3, 1, 22, tzinfo=UTC)
    assert move.end == datetime(2026, 3, 2, 3, tzinfo=UTC)  # 04:00 in Berlin (CET)
    assert move.skip_checks and move.groups == ("switch",)
    assert short.start == datetime(2026, 3, 1, 21, tzinfo=UTC)
    assert short.end == short.start + timedelta(minutes=90)
    assert str(kernel.where) == f"{root / 'downtimes.yaml'}:1:1"


@pytest.mark.parametrize(
    ("entry", "needle", "message"),
    [
        ("{hosts: sw-1, cron: '0 2 * * *', duration: 1h}", "x:", "reason is required text"),
        (
            "{hosts: sw-1, reason: r, cron: '0 2 * * *', end: 2026-03-01}",
            "x:",
            "a cron downtime needs duration (how long each window lasts), not end",
        ),
        (
            "{hosts: sw-1, reason: r, start: 2026-03-01, cron: '0 2 * * *', duration: 1h}",
            "x:",
            "needs exactly one of start (with end or duration) or cron",
        ),
        (
            "{hosts: sw-1, reason: r}",
            "x:",
            "needs exactly one of start (with end or duration) or cron",
        ),
        (
            "{hosts: sw-1, reason: r, start: 2026-03-02, end: 2026-03-01}",
            "x:",
            "end must be after start",
        ),
        (
            "{hosts: sw-1, reason: r, start: tomorrow, duration: 1h}",
            "x:",
            "start must be a date and time such as 2026-03-01 22:00 or 2026-03-01T22:00:00Z, "
            "got 'tomorrow'",
        ),
        (
            "{hosts: sw-1, reason: r, start: 2026-03-01}",
            "x:",
            "start needs exactly one of end or duration",
        ),
        (
            "{reason: r, start: 2026-03-01, duration: 1h}",
            "x:",
            "needs hosts, groups or audits to say what it covers",
        ),
        (
            "{hosts: [sw-1, 3], reason: r, start: 2026-03-01, duration: 1h}",
            "x:",
            "hosts must be a name or a list of names",
        ),
        (
            "{hosts: sw-1, reason: r, start: 2026-03-01, duration: 1h, skip: true}",
            "x:",
            "unknown key 'skip' in downtime 'x' (allowed: audits, cron, description, duration, "
            "end, groups, hosts, reason, skip_checks, start)",
        ),
        (
            "{hosts: sw-1, reason: r, cron: '0 25 * * *', duration: 1h}",
            "x:",
            "cron: invalid cron expression '0 25 * * *'",
        ),
    ],
)
def test_bad_downtimes(tmp_path: Path, entry: str, needle: str, message: str) -> None:
    root = write(tmp_path, AUDITS, downtimes=f"x: {entry}\n")
    problem = only_problem(root)
    assert problem.where.path == str(root / "downtimes.yaml") and problem.where.line == 1
    expected = message if message.startswith("unknown key") else f"downtime 'x': {message}"
    if message.startswith("needs"):
        expected = f"downtime 'x' {message}"
    assert problem.message == expected


@pytest.mark.parametrize(
    ("key", "pattern", "kind", "what"),
    [
        ("hosts", "compue-*", "pattern", "host"),
        ("groups", "swich", "name", "group"),
        ("audits", "check_z", "name", "audit"),
    ],
)
def test_a_downtime_pattern_that_matches_nothing_is_a_problem(
    tmp_path: Path, key: str, pattern: str, kind: str, what: str
) -> None:
    downtimes = f"typo:\n  {key}: [{pattern!r}]\n  start: 2026-03-01\n  duration: 1h\n  reason: r\n"
    root = write(tmp_path, AUDITS, downtimes=downtimes)
    assert_at(
        only_problem(root),
        root / "downtimes.yaml",
        "typo",
        f"downtime 'typo': {key}: {kind} {pattern!r} matches no {what}",
    )


def test_the_file_backends_downtimes_section(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "downtimes:\n  night:\n    groups: [switch]\n    cron: '0 1 * * *'\n"
        "    duration: 1h\n    reason: backups\n"
    )
    problems = Problems()
    found = parse_downtimes(read_yaml(path)["downtimes"], str(path), problems, "UTC")
    assert not problems.items and found["night"].duration == 3600
    assert str(found["night"].where) == f"{path}:2:3"


# -- repairs, the gate, and the way back to YAML --------------------------------------


def test_a_repair_cannot_watch_unreachable(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        AUDITS,
        repairs="fix:\n  when: {audit: check_a, outcome: unreachable}\n  run: check_b\n",
    )
    problem = only_problem(root)
    assert problem.message.startswith("repair 'fix': when.outcome must be one or more of critical,")
    assert "unreachable" not in problem.message.split("got")[0]


def test_the_monitoring_definitions_round_trip_through_yaml(tmp_path: Path) -> None:
    root = write(
        tmp_path / "a",
        """
        compute:
          audits:
            check_a:
              run_every: 1h
              max_attempts: 3
              retry_every: 2m
              flapping: {low: 20, high: 40}
              depends_on: {audit: ping, host: parent}
            check_b: {cron: "*/5 * * * *", flapping: true, depends_on: {audit: backup}}
            backup: {passive: true, freshness: 1d}
        switch:
          audits:
            ping: {run_every: 1m}
        """,
        downtimes="""
        kernel: {hosts: ["compute-*"], cron: "0 2 * * 6", duration: 2h, reason: kernel}
        move: {groups: [switch], start: 2026-03-01T22:00:00Z, end: 2026-03-02T04:00:00Z,
               reason: racks, skip_checks: true}
        """,
    )
    first = load(root)
    out = tmp_path / "b"
    write_dir(first, out)
    assert (out / "downtimes.yaml").exists()
    second = load(out)
    assert catalog_differences(first, second) == []
    assert second.downtimes == first.downtimes
    assert second.hosts["compute-02"].parents == ("sw-1", "sw-2")
