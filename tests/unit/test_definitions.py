"""YAML definitions -> Catalog: parsing, path:line:col problems, expansion to pairs.

Fleets are written into tmp_path and loaded the way the dir and file backends
load them; line numbers are computed from the text each test wrote.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from entropy.backends.impl_dir import DirBackend
from entropy.backends.impl_file import FileBackend
from entropy.config import load_conf
from entropy.definitions import (
    Problems,
    build_catalog,
    parse_hosts,
    parse_schedules,
    parse_scripts,
    read_yaml,
)
from entropy.errors import BackendError, ConfigError, EntropyError, ValidationError
from entropy.model import Catalog, Host, Pair, Schedule
from entropy.timing import Cron, Every

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fleet"

HOSTS = """\
compute-01:
  ip_address: 10.0.0.1
  host_type: compute
  groups: [hypervisor]
compute-02:
  ip_address: 10.0.0.2
  host_type: compute
hv-01:
  ip_address: 10.0.0.3
  host_type: hypervisor
api-01:
  ip_address: 10.0.0.4
  host_type: control
  groups: [web]
"""

SCRIPTS = """\
check_a:
  kind: command
  command: [test, -f, /etc/a]
check_b:
  kind: command
  command: [test, -f, /etc/b]
ping:
  kind: tcp
  port: 22
"""

GOOD_AUDITS = """\
compute:
  audits:
    check_a:
      run_every: 1h
api-01:
  audits:
    ping:
      run_every: 5m
"""

PROBLEM_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$", re.S)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def conf():
    conf = load_conf()
    conf.set_override("cron_timezone", "UTC")
    return conf


def write_fleet(
    root: Path,
    audits: dict[str, str],
    hosts: str = HOSTS,
    scripts: str = SCRIPTS,
) -> Path:
    """A dir-backend fleet: hosts.yaml, scripts.yaml and audits/<name>."""
    (root / "audits").mkdir(parents=True, exist_ok=True)
    (root / "hosts.yaml").write_text(hosts)
    (root / "scripts.yaml").write_text(scripts)
    for name, text in audits.items():
        (root / "audits" / name).write_text(text)
    return root


def load_dir(conf, root: Path) -> Catalog:
    return DirBackend(conf, str(root)).load()


def problems_of(conf, location: Path, backend: type = DirBackend) -> list[ConfigError]:
    with pytest.raises(ValidationError) as info:
        backend(conf, str(location)).load()
    return info.value.problems


def only_problem(conf, location: Path, backend: type = DirBackend) -> ConfigError:
    problems = problems_of(conf, location, backend)
    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    return problems[0]


def locate(path: Path, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """(line, col), from 1, of the n-th line of path that contains needle."""
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not {occurrence} times in {path}")


def assert_at(problem: ConfigError, path: Path, line: int, col: int | None = None) -> None:
    """The problem reads 'path:line:col: message' and stands at that place."""
    text = str(problem)
    match = PROBLEM_LINE.match(text)
    assert match, text
    assert match["path"] == str(path)
    assert int(match["line"]) == line, text
    assert match["message"] == problem.message
    assert problem.where.path == str(path)
    assert problem.where.line == line
    if col is not None:
        assert int(match["col"]) == col, text
        assert problem.where.col == col
    assert text == f"{path}:{problem.where.line}:{problem.where.col}: {problem.message}"


def timings(catalog: Catalog) -> dict[tuple[str, str], object]:
    return {pair.key: pair.schedule.timing for pair in catalog.pairs}


def by_key(catalog: Catalog) -> dict[tuple[str, str], Pair]:
    pairs = {pair.key: pair for pair in catalog.pairs}
    assert len(pairs) == len(catalog.pairs), "a pair was expanded twice"
    return pairs


# --- the seed fleet ------------------------------------------------------------

SEED_PAIRS = {
    ("check_nova_config_exists", "compute-01.example.com"): 86400,
    ("check_nova_config_exists", "compute-02.example.com"): 86400,
    ("check_nova_config_exists", "compute-03.example.com"): 86400,
    ("check_nova_compute_log_file_exists", "compute-01.example.com"): 1800,
    ("check_nova_compute_log_file_exists", "compute-02.example.com"): 1800,
    ("check_nova_compute_log_file_exists", "compute-03.example.com"): 1800,
    ("vm_count", "compute-01.example.com"): 172800,
    ("vm_count", "compute-02.example.com"): 172800,
    ("vm_count", "hv-01.example.com"): 172800,
    ("vmbooter", "nova-api.mydomain.com"): 3600,
    ("api_availability", "nova-api.mydomain.com"): 1800,
}


def test_seed_schedule_files_parse_verbatim() -> None:
    """The three files in the design notes' format load as written, with no problem."""
    problems = Problems()
    parsed = {}
    for name in ("compute_audits.yaml", "hypervisor_audits.yaml", "other_audits.yaml"):
        path = EXAMPLES / "audits" / name
        parsed[name] = {
            (s.target, s.audit_name): s.timing
            for s in parse_schedules(read_yaml(path), str(path), problems, "UTC")
        }
    assert problems.items == []
    assert parsed == {
        "compute_audits.yaml": {
            ("compute", "check_nova_config_exists"): Every(86400),
            ("compute", "check_nova_compute_log_file_exists"): Every(1800),
        },
        "hypervisor_audits.yaml": {("hypervisor", "vm_count"): Every(172800)},
        "other_audits.yaml": {
            ("nova-api.mydomain.com", "vmbooter"): Every(3600),
            ("nova-api.mydomain.com", "api_availability"): Every(1800),
        },
    }


def test_seed_fleet_expands_to_the_right_pairs(conf) -> None:
    catalog = load_dir(conf, EXAMPLES)
    assert timings(catalog) == {key: Every(seconds) for key, seconds in SEED_PAIRS.items()}
    assert len(catalog.pairs) == len(SEED_PAIRS)
    pairs = by_key(catalog)
    assert {p.ip_address for p in pairs.values()} == {"127.0.0.1"}
    assert catalog.sources == [
        str(EXAMPLES / "audits" / name)
        for name in ("compute_audits.yaml", "hypervisor_audits.yaml", "other_audits.yaml")
    ]
    # Each pair remembers which schedule entry gave it.
    vm_count = pairs[("vm_count", "hv-01.example.com")].schedule
    assert vm_count.target == "hypervisor"
    assert vm_count.where.path == str(EXAMPLES / "audits" / "hypervisor_audits.yaml")
    assert (
        vm_count.where.line == locate(EXAMPLES / "audits" / "hypervisor_audits.yaml", "vm_count")[0]
    )
    assert not any(p.schedule.disabled for p in pairs.values())
    assert set(catalog.hosts) == {
        "compute-01.example.com",
        "compute-02.example.com",
        "compute-03.example.com",
        "hv-01.example.com",
        "nova-api.mydomain.com",
    }
    assert catalog.hosts["compute-01.example.com"] == Host(
        "compute-01.example.com", "127.0.0.1", "compute", ("hypervisor",), {"rack": "r1"}
    )
    assert catalog.scripts["vmbooter"].kind == "tcp"
    assert catalog.scripts["vmbooter"].params == {"port": 22}
    assert catalog.scripts["vmbooter"].timeout == 5
    assert catalog.scripts["api_availability"].params == {
        "url": "http://{ip_address}:8774/",
        "expect_status": [200, 300],
    }
    assert catalog.scripts["vm_count"].timeout is None


def test_seed_fleet_copied_elsewhere_gives_the_same_pairs(conf, tmp_path: Path) -> None:
    root = write_fleet(
        tmp_path / "fleet",
        {p.name: p.read_text() for p in (EXAMPLES / "audits").glob("*.yaml")},
        hosts=(EXAMPLES / "hosts.yaml").read_text(),
        scripts=(EXAMPLES / "scripts.yaml").read_text(),
    )
    assert timings(load_dir(conf, root)) == timings(load_dir(conf, EXAMPLES))


def test_a_small_fleet_loads(conf, tmp_path: Path) -> None:
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS})
    catalog = load_dir(conf, root)
    assert timings(catalog) == {
        ("check_a", "compute-01"): Every(3600),
        ("check_a", "compute-02"): Every(3600),
        ("ping", "api-01"): Every(300),
    }
    assert by_key(catalog)[("check_a", "compute-02")].ip_address == "10.0.0.2"
    assert "4 hosts" in catalog.summary()
    assert "3 audits" in catalog.summary()


# --- exactly one problem, at the right place -------------------------------------


@pytest.mark.parametrize(
    ("text", "needle", "col"),
    [
        pytest.param(
            """\
            compute:
              audits:
                check_a:
                  run_every: 1h
               check_b:
                  run_every: 1h
            """,
            "   check_b:",
            4,
            id="bad-indentation",
        ),
        pytest.param(
            """\
            compute:
              audits:
                check_a:
                  run_every: 1h
                    cron: "* * * * *"
            """,
            "cron:",
            None,
            id="value-indented-under-a-scalar",
        ),
        pytest.param(
            """\
            compute:
              audits:
                check_a: {run_every: 1h
                check_b:
                  run_every: 1h
            """,
            "check_b:",
            None,
            id="unclosed-brace",
        ),
        pytest.param(
            """\
            compute:
              audits:
                check_a:
                  run_every: [1h
            api-01:
              audits: {}
            """,
            "api-01:",
            None,
            id="unclosed-bracket",
        ),
    ],
)
def test_malformed_yaml_is_one_problem_at_its_line(
    conf, tmp_path: Path, text: str, needle: str, col: int | None
) -> None:
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "bad.yaml": dedent(text)})
    bad = root / "audits" / "bad.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, bad, locate(bad, needle)[0], col)
    assert problem.message.startswith("invalid YAML: ")


def test_bad_duration_is_one_problem_quoting_the_value(conf, tmp_path: Path) -> None:
    text = dedent(
        """
        compute:
          audits:
            check_a:
              run_every: 1fortnight
        """
    )
    root = write_fleet(
        tmp_path, {"good.yaml": GOOD_AUDITS.replace("check_a", "check_b"), "x.yaml": text}
    )
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, "run_every"))
    assert (path, problem.where.line) == (path, 4)
    assert "'1fortnight'" in problem.message
    assert "check_a" in problem.message
    assert "'compute'" in problem.message
    assert "run_every" in problem.message


def test_bad_duration_as_a_bare_number(conf, tmp_path: Path) -> None:
    text = "compute:\n  audits:\n    check_a:\n      run_every: 60\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 4, 7)
    assert "no unit" in problem.message


def test_unknown_target_is_one_problem_at_the_audit_entry(conf, tmp_path: Path) -> None:
    text = dedent(
        """
        # a typo in the group name
        computer:
          audits:
            check_b:
              run_every: 1h
        """
    )
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "typo.yaml": text})
    path = root / "audits" / "typo.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, "check_b"))
    assert problem.where.line == 4
    assert "unknown target 'computer'" in problem.message


def test_audit_without_a_script_is_one_problem(conf, tmp_path: Path) -> None:
    text = dedent(
        """
        compute:
          audits:
            check_b:
              run_every: 1h
            check_missing:
              run_every: 1h
        """
    )
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "more.yaml": text})
    path = root / "audits" / "more.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, "check_missing"))
    assert problem.where.line == 5
    assert problem.message == "audit 'check_missing' has no script in scripts.yaml"


def test_duplicate_key_in_a_schedule_file_is_one_problem(conf, tmp_path: Path) -> None:
    text = dedent(
        """
        compute:
          audits:
            check_b:
              run_every: 1h
            check_b:
              run_every: 2h
        """
    )
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "dup.yaml": text})
    path = root / "audits" / "dup.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, "check_b", occurrence=2))
    assert problem.where.line == 5
    assert "duplicate key 'check_b'" in problem.message
    assert "first at line 3" in problem.message


def test_duplicate_key_in_a_nested_mapping(conf, tmp_path: Path) -> None:
    text = "compute:\n  audits:\n    check_b: {run_every: 1h, run_every: 2h}\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "dup.yaml": text})
    path = root / "audits" / "dup.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 3, text.splitlines()[2].rindex("run_every") + 1)
    assert "duplicate key 'run_every' (first at line 3)" in problem.message


def test_duplicate_host_in_hosts_yaml_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_text(HOSTS + "compute-02:\n  ip_address: 10.0.0.9\n  host_type: compute\n")
    problems = Problems()
    assert problems.read(path) is None
    assert len(problems.items) == 1
    assert_at(problems.items[0], path, *locate(path, "compute-02:", occurrence=2))
    assert "duplicate key 'compute-02' (first at line 5)" in problems.items[0].message


def test_read_yaml_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_unhashable_key_is_a_yaml_problem(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\n? [1, 2]\n: 3\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.where.line == 2
    assert "unhashable key" in info.value.message


# --- host entries, group entries and their clashes --------------------------------


@pytest.mark.parametrize(("group_file", "host_file"), [("a.yaml", "b.yaml"), ("b.yaml", "a.yaml")])
def test_host_entry_wins_over_group_entry(
    conf, tmp_path: Path, group_file: str, host_file: str
) -> None:
    group = "compute:\n  audits:\n    check_a:\n      run_every: 1h\n"
    host = dedent(
        """
        compute-01:
          audits:
            check_a:
              run_every: 5m
              params: {verbose: true}
        """
    )
    root = write_fleet(tmp_path, {group_file: group, host_file: host})
    pairs = by_key(load_dir(conf, root))
    own = pairs[("check_a", "compute-01")].schedule
    assert own.target == "compute-01"
    assert own.timing == Every(300)
    assert own.params == {"verbose": True}
    assert own.where.path == str(root / "audits" / host_file)
    other = pairs[("check_a", "compute-02")].schedule
    assert other.target == "compute"
    assert other.timing == Every(3600)
    assert set(pairs) == {("check_a", "compute-01"), ("check_a", "compute-02")}


def test_host_entry_settles_a_clash_between_its_groups(conf, tmp_path: Path) -> None:
    text = dedent(
        """
        compute:
          audits:
            check_a:
              run_every: 1h
        hypervisor:
          audits:
            check_a:
              run_every: 2h
        compute-01:
          audits:
            check_a:
              run_every: 3h
        """
    )
    root = write_fleet(tmp_path, {"x.yaml": text})
    assert timings(load_dir(conf, root)) == {
        ("check_a", "compute-01"): Every(3 * 3600),
        ("check_a", "compute-02"): Every(3600),
        ("check_a", "hv-01"): Every(2 * 3600),
    }


def test_the_same_host_given_twice_is_an_error(conf, tmp_path: Path) -> None:
    one = "compute-01:\n  audits:\n    check_a:\n      run_every: 1h\n"
    root = write_fleet(tmp_path, {"a.yaml": one, "b.yaml": one})
    problem = only_problem(conf, root)
    a, b = root / "audits" / "a.yaml", root / "audits" / "b.yaml"
    assert_at(problem, b, 3, 5)
    assert f"first at {a}:3:5" in problem.message


@pytest.mark.parametrize(
    "second",
    [
        pytest.param("run_every: 2h", id="interval"),
        pytest.param('cron: "0 * * * *"', id="cron"),
        pytest.param("run_every: 1h\n      disabled: true", id="disabled"),
        pytest.param("run_every: 1h\n      timeout: 30s", id="timeout"),
        pytest.param("run_every: 1h\n      params: {level: 2}", id="params"),
    ],
)
def test_two_groups_with_different_settings_is_an_error_naming_both(
    conf, tmp_path: Path, second: str
) -> None:
    first_text = "compute:\n  audits:\n    check_a:\n      run_every: 1h\n"
    second_text = f"# more\nhypervisor:\n  audits:\n    check_a:\n      {second}\n"
    root = write_fleet(tmp_path, {"1-compute.yaml": first_text, "2-hv.yaml": second_text})
    first, later = root / "audits" / "1-compute.yaml", root / "audits" / "2-hv.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, later, 4, 5)
    text = str(problem)
    assert f"{first}:3:5" in text
    assert f"{later}:4:5" in text
    assert "'compute-01'" in problem.message  # the only host in both groups
    assert "'compute'" in problem.message
    assert "'hypervisor'" in problem.message


def test_group_clash_in_one_file_counts_the_hosts(conf, tmp_path: Path) -> None:
    hosts = HOSTS + "compute-03:\n  ip_address: 10.0.0.5\n  host_type: compute\n"
    hosts += "  groups: [hypervisor]\n"
    text = dedent(
        """
        compute:
          audits:
            check_a:
              run_every: 1h
        hypervisor:
          audits:
            check_a:
              run_every: 2h
        """
    )
    root = write_fleet(tmp_path, {"x.yaml": text}, hosts=hosts)
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 7, 5)
    assert f"{path}:3:5" in str(problem)
    assert "'compute-01' and 1 more" in problem.message


@pytest.mark.parametrize("spelling", ["1h", "60mins", "3600s", "1hour"])
def test_two_groups_with_identical_settings_is_fine(conf, tmp_path: Path, spelling: str) -> None:
    text = dedent(
        f"""
        compute:
          audits:
            check_a:
              run_every: 1h
              params: {{level: 1}}
        hypervisor:
          audits:
            check_a:
              run_every: {spelling}
              params: {{level: 1}}
        """
    )
    root = write_fleet(tmp_path, {"x.yaml": text})
    catalog = load_dir(conf, root)
    assert timings(catalog) == {
        ("check_a", "compute-01"): Every(3600),
        ("check_a", "compute-02"): Every(3600),
        ("check_a", "hv-01"): Every(3600),
    }
    assert len(catalog.pairs) == 3


def test_a_host_whose_type_is_also_in_its_groups_gets_one_pair(conf, tmp_path: Path) -> None:
    hosts = "h1:\n  ip_address: 10.0.0.1\n  host_type: compute\n  groups: [compute]\n"
    root = write_fleet(tmp_path, {"x.yaml": GOOD_AUDITS.split("api-01")[0]}, hosts=hosts)
    assert timings(load_dir(conf, root)) == {("check_a", "h1"): Every(3600)}


def test_a_target_both_host_and_group_is_an_error(conf, tmp_path: Path) -> None:
    # api-01 is in group 'web'; a host named 'web' makes the target ambiguous.
    hosts = HOSTS + "web:\n  ip_address: 10.0.0.8\n  host_type: control\n"
    text = "web:\n  audits:\n    ping:\n      run_every: 1m\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "web.yaml": text}, hosts=hosts)
    path = root / "audits" / "web.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 3, 5)
    assert problem.message == "target 'web' is both a host and a group; rename one"


def test_a_host_name_that_is_also_a_group_is_fine_when_not_targeted(conf, tmp_path: Path) -> None:
    hosts = HOSTS + "web:\n  ip_address: 10.0.0.8\n  host_type: control\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts)
    assert len(load_dir(conf, root).pairs) == 3


# --- schedule entries -----------------------------------------------------------


def test_cron_entries_use_the_configured_timezone(conf, tmp_path: Path) -> None:
    text = 'compute:\n  audits:\n    check_a:\n      cron: "*/5 * * * *"\n'
    root = write_fleet(tmp_path, {"x.yaml": text})
    assert set(timings(load_dir(conf, root)).values()) == {Cron("*/5 * * * *", "UTC")}
    conf.set_override("cron_timezone", "Europe/Paris")
    assert set(timings(load_dir(conf, root)).values()) == {Cron("*/5 * * * *", "Europe/Paris")}


@pytest.mark.parametrize(
    ("entry", "needle", "message"),
    [
        ('cron: "* * * *"', "cron", "five fields"),
        ('cron: "61 * * * *"', "cron", "invalid cron expression '61 * * * *'"),
        ("cron: 5", "cron", "got 5"),
    ],
)
def test_bad_cron_is_one_problem_at_its_line(
    conf, tmp_path: Path, entry: str, needle: str, message: str
) -> None:
    text = f"compute:\n  audits:\n    check_a:\n      {entry}\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 4, 7)
    assert message in problem.message
    assert f"{needle}:" in problem.message


def test_cron_with_an_unknown_configured_timezone_is_a_problem(conf, tmp_path: Path) -> None:
    text = 'compute:\n  audits:\n    check_a:\n      cron: "0 9 * * *"\n'
    root = write_fleet(tmp_path, {"x.yaml": text})
    conf.set_override("cron_timezone", "Mars/Olympus_Mons")
    problem = only_problem(conf, root)
    assert "unknown timezone 'Mars/Olympus_Mons'" in problem.message


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param('run_every: 1h\n      cron: "* * * * *"', id="both"),
        pytest.param("disabled: true", id="neither"),
    ],
)
def test_a_schedule_needs_exactly_one_timing(conf, tmp_path: Path, entry: str) -> None:
    text = f"compute:\n  audits:\n    check_a:\n      {entry}\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 3, 5)
    assert "needs exactly one of run_every or cron" in problem.message


def test_schedule_settings_are_carried_into_the_schedule(conf, tmp_path: Path) -> None:
    text = dedent(
        """
        compute:
          audits:
            check_a:
              run_every: 30mins
              disabled: true
              disabled_reason: maintenance window
              timeout: 90s
              params: {threshold: 5, mode: strict}
            check_b:
              run_every: 1day
        """
    )
    root = write_fleet(tmp_path, {"x.yaml": text})
    path = root / "audits" / "x.yaml"
    pairs = by_key(load_dir(conf, root))
    schedule = pairs[("check_a", "compute-01")].schedule
    assert schedule == Schedule(
        target="compute",
        audit_name="check_a",
        timing=Every(1800),
        disabled=True,
        disabled_reason="maintenance window",
        timeout=90,
        params={"threshold": 5, "mode": "strict"},
    )
    assert (schedule.where.path, schedule.where.line, schedule.where.col) == (str(path), 3, 5)
    plain = pairs[("check_b", "compute-02")].schedule
    assert (plain.disabled, plain.disabled_reason, plain.timeout, plain.params) == (
        False,
        None,
        None,
        {},
    )
    assert plain.timing == Every(86400)


def test_disabled_reason_is_kept_as_text(conf, tmp_path: Path) -> None:
    text = "compute:\n  audits:\n    check_a:\n      run_every: 1h\n      disabled_reason: 42\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    schedule = load_dir(conf, root).pairs[0].schedule
    assert schedule.disabled_reason == "42"
    assert schedule.disabled is False


@pytest.mark.parametrize(
    ("entry", "needle", "message"),
    [
        ("disabled: maybe", "disabled", "disabled must be true or false"),
        ("params: [1, 2]", "params", "params must be a mapping, got a list"),
        ("timeout: soon", "timeout", "timeout: invalid duration 'soon'"),
    ],
)
def test_bad_schedule_setting_is_one_problem_at_its_line(
    conf, tmp_path: Path, entry: str, needle: str, message: str
) -> None:
    text = f"compute:\n  audits:\n    check_a:\n      run_every: 1h\n      {entry}\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 5, 7)
    assert message in problem.message


def test_unknown_key_in_a_schedule_entry(conf, tmp_path: Path) -> None:
    text = "compute:\n  audits:\n    check_a:\n      run_every: 1h\n      run_evry: 2h\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 5, 7)
    assert problem.message.startswith(
        "unknown key 'run_evry' in audit 'check_a' on 'compute' (allowed: cron, depends_on, "
        "disabled, "
    )


def test_unknown_key_beside_audits_in_a_target(conf, tmp_path: Path) -> None:
    text = "compute:\n  owner: ops\n  audits:\n    check_a:\n      run_every: 1h\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    path = root / "audits" / "x.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, 2, 3)
    assert problem.message == "unknown key 'owner' in target 'compute' (allowed: audits)"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("- compute\n- hypervisor\n", 1, "a schedule file must be a mapping, got a list"),
        ("compute: [check_a]\n", 1, "target 'compute' must be a mapping, got a list"),
        ("compute:\n  audits: [check_a]\n", 2, "'compute' audits must be a mapping, got a list"),
        ("compute:\n  audits:\n    check_a: 1h\n", 3, "must be a mapping, got text"),
    ],
)
def test_schedule_file_shapes(conf, tmp_path: Path, text: str, line: int, message: str) -> None:
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "x.yaml": text})
    problem = only_problem(conf, root)
    assert_at(problem, root / "audits" / "x.yaml", line)
    assert message in problem.message


def test_a_target_without_audits_is_reported_at_the_target(conf, tmp_path: Path) -> None:
    text = "# typo below\ncompute:\n  audit:\n    check_a:\n      run_every: 1h\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "x.yaml": text})
    path = root / "audits" / "x.yaml"
    problems = problems_of(conf, root)
    assert [(p.where.line, p.where.col) for p in problems] == [(2, 1), (3, 3)]
    assert problems[0].message == "'compute' audits must be a mapping, got nothing"
    assert problems[1].message == "unknown key 'audit' in target 'compute' (allowed: audits)"
    for problem in problems:
        assert_at(problem, path, problem.where.line, problem.where.col)


@pytest.mark.parametrize("text", ["", "---\n", "# truncated by a bad deploy\n", "~\n", "null\n"])
def test_an_empty_schedule_file_is_an_error_unless_it_says_so(
    conf, tmp_path: Path, text: str
) -> None:
    """Emptied by mistake, it would remove every audit it scheduled (issue 11, item 2)."""
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "web.yaml": text})
    problem = only_problem(conf, root)
    assert_at(problem, root / "audits" / "web.yaml", 1, 1)
    assert problem.message.startswith(
        "empty schedule file; write {} in it if it is meant to schedule nothing"
    )


def test_a_schedule_file_that_says_it_is_empty_is_fine(conf, tmp_path: Path) -> None:
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS, "web.yaml": "# none yet\n{}\n"})
    assert len(load_dir(conf, root).pairs) == 3


@pytest.mark.parametrize("name", ["hosts.yaml", "scripts.yaml", "repairs.yaml"])
def test_an_empty_hosts_scripts_or_repairs_file_is_an_error(
    conf, tmp_path: Path, name: str
) -> None:
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS})
    (root / name).write_text("# emptied\n")
    problem = only_problem(conf, root)  # and no "unknown target" echoing it
    assert_at(problem, root / name, 1, 1)
    assert "file is empty; write {} in it if it is meant to define nothing" in problem.message
    if name == "hosts.yaml":  # {} would be accepted, and leave the targets unknown
        (root / name).write_text("{}\n")
        assert all("unknown target" in p.message for p in problems_of(conf, root))


@pytest.mark.parametrize(
    ("text", "needle", "message"),
    [
        ("", None, "the definitions file is empty"),
        ("# nothing\n", None, "the definitions file is empty"),
        ("hosts: {}\nscripts: {}\n", None, "no schedules: section; write `schedules: {}`"),
        ("hosts:\nscripts: {}\nschedules: {}\n", "hosts:", "hosts: is empty; write `hosts: {}`"),
        ("hosts: {}\nscripts: {}\nschedules: {}\nrepairs:\n", "repairs:", "repairs: is empty"),
    ],
)
def test_file_backend_empty_file_or_section_is_an_error(
    conf, tmp_path: Path, text: str, needle: str | None, message: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    problem = only_problem(conf, path, FileBackend)
    assert_at(problem, path, locate(path, needle)[0] if needle else 1)
    assert problem.message.startswith(message)


def test_file_backend_with_empty_sections_that_say_so_is_fine(conf, tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("hosts: {}\nscripts: {}\nschedules: {}\n")
    assert FileBackend(conf, str(path)).load().pairs == []


# --- hosts ----------------------------------------------------------------------


def test_unknown_key_in_a_host_entry(conf, tmp_path: Path) -> None:
    hosts = HOSTS.replace("  host_type: hypervisor\n", "  host_type: hypervisor\n  rack: r1\n")
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts)
    path = root / "hosts.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, "rack"))
    assert problem.message.startswith("unknown key 'rack' in host 'hv-01' (allowed: ")


@pytest.mark.parametrize("ip", ["10.0.0.300", "not-an-ip", "10.0.0", "167772161", "''"])
def test_bad_ip_address_is_one_problem(conf, tmp_path: Path, ip: str) -> None:
    # An extra host in group compute: the rest of the fleet still expands cleanly.
    hosts = HOSTS + f"compute-09:\n  ip_address: {ip}\n  host_type: compute\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts)
    path = root / "hosts.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, locate(path, "compute-09:")[0] + 1, 3)
    assert f"got {ip}" in problem.message or f"got '{ip}'" in problem.message
    assert "host 'compute-09': ip_address must be an IP address" in problem.message


def test_missing_ip_address_is_a_problem_at_the_host(conf, tmp_path: Path) -> None:
    hosts = HOSTS + "compute-09:\n  host_type: compute\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts)
    path = root / "hosts.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, "compute-09"))
    assert "ip_address must be an IP address, got None" in problem.message


def test_missing_host_type_is_a_problem_at_the_host(conf, tmp_path: Path) -> None:
    hosts = HOSTS + "compute-09:\n  ip_address: 10.0.0.9\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts)
    path = root / "hosts.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, "compute-09"))
    assert problem.message == "host 'compute-09': host_type is required text"


def test_ipv6_addresses_are_accepted(conf, tmp_path: Path) -> None:
    hosts = "h6:\n  ip_address: '2001:db8::1'\n  host_type: compute\n"
    root = write_fleet(tmp_path, {"x.yaml": GOOD_AUDITS.split("api-01")[0]}, hosts=hosts)
    assert load_dir(conf, root).pairs[0].ip_address == "2001:db8::1"


@pytest.mark.parametrize(
    ("entry", "needle", "message"),
    [
        ("host_type: ''", "host_type", "host_type is required text"),
        ("host_type: compute\n  groups: hypervisor", "groups", "groups must be a list of names"),
        ("host_type: compute\n  vars: [a]", "vars", "vars must be a mapping, got a list"),
    ],
)
def test_bad_host_fields(conf, tmp_path: Path, entry: str, needle: str, message: str) -> None:
    hosts = HOSTS + f"compute-09:\n  ip_address: 10.0.0.9\n  {entry}\n"
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts)
    path = root / "hosts.yaml"
    problem = only_problem(conf, root)
    assert_at(problem, path, *locate(path, needle, occurrence=_count(HOSTS, needle) + 1))
    assert f"host 'compute-09': {message}" in problem.message


def _count(text: str, needle: str) -> int:
    return sum(needle in line for line in text.splitlines())


def test_parse_hosts_builds_hosts(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_text(HOSTS)
    problems = Problems()
    hosts = parse_hosts(read_yaml(path), str(path), problems)
    assert problems.items == []
    assert list(hosts) == ["compute-01", "compute-02", "hv-01", "api-01"]
    assert hosts["compute-01"] == Host("compute-01", "10.0.0.1", "compute", ("hypervisor",))
    assert hosts["compute-01"].in_group("hypervisor")
    assert hosts["compute-01"].in_group("compute")
    assert not hosts["compute-02"].in_group("hypervisor")
    assert str(hosts["hv-01"].where) == f"{path}:8:1"


# --- scripts --------------------------------------------------------------------


def _scripts_problem(conf, tmp_path: Path, extra: str) -> tuple[ConfigError, Path]:
    """Add one (unused) script to a good fleet; return its only problem."""
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, scripts=SCRIPTS + dedent(extra))
    return only_problem(conf, root), root / "scripts.yaml"


def test_script_of_unknown_kind(conf, tmp_path: Path) -> None:
    problem, path = _scripts_problem(conf, tmp_path, "fetch:\n  kind: ftp\n  url: x\n")
    assert_at(problem, path, *locate(path, "kind: ftp"))
    assert problem.message == (
        "script 'fetch': kind must be one of command, http, python, ssh, tcp, got 'ftp'"
    )


def test_script_without_a_kind(conf, tmp_path: Path) -> None:
    problem, path = _scripts_problem(conf, tmp_path, "fetch:\n  url: x\n")
    assert_at(problem, path, *locate(path, "fetch:"))
    assert "got None" in problem.message


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ("web:\n  kind: http\n  method: GET\n", "url"),
        ("port:\n  kind: tcp\n", "port"),
        ("cmd:\n  kind: command\n  shell: true\n", "command"),
        ("fn:\n  kind: python\n", "function"),
    ],
)
def test_script_missing_its_kinds_required_key(
    conf, tmp_path: Path, extra: str, missing: str
) -> None:
    problem, path = _scripts_problem(conf, tmp_path, extra)
    name = extra.split(":")[0]
    assert_at(problem, path, *locate(path, f"{name}:", occurrence=_count(SCRIPTS, f"{name}:") + 1))
    assert problem.message.endswith(f"needs {missing}")
    assert f"script {name!r}" in problem.message


def test_unknown_key_in_a_script(conf, tmp_path: Path) -> None:
    problem, path = _scripts_problem(
        conf, tmp_path, "web:\n  kind: http\n  url: http://x/\n  retries: 3\n"
    )
    assert_at(problem, path, *locate(path, "retries"))
    assert problem.message.startswith("unknown key 'retries' in script 'web' (allowed: ")
    assert "url" in problem.message


def test_bad_script_timeout(conf, tmp_path: Path) -> None:
    problem, path = _scripts_problem(
        conf, tmp_path, "web:\n  kind: http\n  url: http://x/\n  timeout: 5 parsecs\n"
    )
    assert_at(problem, path, *locate(path, "timeout: 5 parsecs"))
    assert "'5 parsecs'" in problem.message


def test_parse_scripts_keeps_kind_params_and_timeout(tmp_path: Path) -> None:
    path = tmp_path / "scripts.yaml"
    path.write_text(
        SCRIPTS
        + "web:\n  kind: http\n  url: http://x/\n  timeout: 1m30s\n  description: the site\n"
    )
    problems = Problems()
    scripts = parse_scripts(read_yaml(path), str(path), problems)
    assert problems.items == []
    web = scripts["web"]
    assert (web.name, web.kind, web.params, web.timeout) == (
        "web",
        "http",
        {"url": "http://x/"},
        90,
    )
    assert scripts["ping"].params == {"port": 22}
    assert scripts["check_a"].params == {"command": ["test", "-f", "/etc/a"]}
    assert scripts["check_a"].timeout is None
    assert str(web.where) == f"{path}:{locate(path, 'web:')[0]}:1"


# --- the file backend -----------------------------------------------------------


def _one_file(hosts: str = HOSTS, scripts: str = SCRIPTS, schedules: str = GOOD_AUDITS) -> str:
    def indent(text: str) -> str:
        return textwrap.indent(text, "  ")

    return f"hosts:\n{indent(hosts)}scripts:\n{indent(scripts)}schedules:\n{indent(schedules)}"


def test_file_backend_loads_the_same_pairs_as_the_dir_backend(conf, tmp_path: Path) -> None:
    schedules = GOOD_AUDITS + "hypervisor:\n  audits:\n    check_b:\n      run_every: 2days\n"
    root = write_fleet(tmp_path / "dir", {"x.yaml": schedules})
    one = tmp_path / "fleet.yaml"
    one.write_text(_one_file(schedules=schedules))
    from_file = FileBackend(conf, str(one)).load()
    from_dir = load_dir(conf, root)
    assert timings(from_file) == timings(from_dir)
    assert timings(from_file) == {
        ("check_a", "compute-01"): Every(3600),
        ("check_a", "compute-02"): Every(3600),
        ("ping", "api-01"): Every(300),
        ("check_b", "compute-01"): Every(172800),
        ("check_b", "hv-01"): Every(172800),
    }
    assert from_file.hosts == from_dir.hosts
    assert from_file.scripts == from_dir.scripts
    assert from_file.sources == [str(one)]


def test_file_backend_loads_the_seed_fleet(conf, tmp_path: Path) -> None:
    schedules = "".join(
        (EXAMPLES / "audits" / name).read_text().removeprefix("---\n")
        for name in ("compute_audits.yaml", "hypervisor_audits.yaml", "other_audits.yaml")
    )
    one = tmp_path / "fleet.yaml"
    one.write_text(
        _one_file(
            (EXAMPLES / "hosts.yaml").read_text(),
            (EXAMPLES / "scripts.yaml").read_text(),
            schedules,
        )
    )
    catalog = FileBackend(conf, str(one)).load()
    assert timings(catalog) == {key: Every(seconds) for key, seconds in SEED_PAIRS.items()}


def test_file_backend_unknown_section(conf, tmp_path: Path) -> None:
    one = tmp_path / "fleet.yaml"
    one.write_text(_one_file() + "extras:\n  a: 1\n")
    problem = only_problem(conf, one, FileBackend)
    assert_at(problem, one, *locate(one, "extras:"))
    allowed = "downtimes, hosts, repairs, schedules, scripts"
    assert problem.message == f"unknown section 'extras' (allowed: {allowed})"


def test_file_backend_problem_lines_are_lines_of_the_one_file(conf, tmp_path: Path) -> None:
    schedules = GOOD_AUDITS + "hypervisor:\n  audits:\n    check_b:\n      run_every: 1fortnight\n"
    one = tmp_path / "fleet.yaml"
    one.write_text(_one_file(schedules=schedules))
    problem = only_problem(conf, one, FileBackend)
    assert_at(problem, one, *locate(one, "run_every: 1fortnight"))
    assert "'1fortnight'" in problem.message


def test_file_backend_malformed_yaml(conf, tmp_path: Path) -> None:
    one = tmp_path / "fleet.yaml"
    one.write_text(_one_file(schedules=GOOD_AUDITS + "hypervisor: [\n"))
    problem = only_problem(conf, one, FileBackend)
    assert problem.where.path == str(one)
    assert problem.message.startswith("invalid YAML: ")
    assert problem.where.line == len(one.read_text().splitlines()) + 1  # at the end


def test_file_backend_duplicate_section(conf, tmp_path: Path) -> None:
    one = tmp_path / "fleet.yaml"
    one.write_text(_one_file() + "hosts:\n  x: {}\n")
    problem = only_problem(conf, one, FileBackend)
    assert_at(problem, one, *locate(one, "hosts:", occurrence=2))
    assert "duplicate key 'hosts' (first at line 1)" in problem.message


def test_file_backend_not_a_mapping(conf, tmp_path: Path) -> None:
    one = tmp_path / "fleet.yaml"
    one.write_text("- hosts\n- scripts\n")
    problem = only_problem(conf, one, FileBackend)
    assert_at(problem, one, 1, 1)
    assert "must be a mapping with hosts:, scripts:, schedules:" in problem.message


def test_file_backend_missing_file(conf, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        FileBackend(conf, str(tmp_path / "nope.yaml")).load()


# --- many problems at once ------------------------------------------------------


def test_validation_error_collects_problems_from_several_files(conf, tmp_path: Path) -> None:
    hosts = HOSTS + "compute-09:\n  ip_address: 999.1.1.1\n  host_type: compute\n"
    scripts = SCRIPTS + "fetch:\n  kind: ftp\n"
    audits = {
        "a.yaml": "compute:\n  audits:\n    check_a:\n      run_every: 1fortnight\n",
        "b.yaml": "hypervisor:\n  audits:\n    check_b:\n      run_every: 1h\n      colour: red\n",
        "c.yaml": "nowhere:\n  audits:\n    ping:\n      run_every: 5m\n",
        "d.yaml": "web:\n  audits:\n    check_zzz:\n      run_every: 5m\n",
    }
    root = write_fleet(tmp_path, audits, hosts=hosts, scripts=scripts)
    with pytest.raises(ValidationError) as info:
        load_dir(conf, root)
    error = info.value
    problems = error.problems
    a, b, c, d = (str(root / "audits" / name) for name in ("a.yaml", "b.yaml", "c.yaml", "d.yaml"))
    assert [(p.where.path, p.where.line) for p in problems] == [
        (a, 4),
        (b, 5),
        (c, 3),
        (d, 3),
        (str(root / "hosts.yaml"), 16),
        (str(root / "scripts.yaml"), 11),
    ]
    assert "'1fortnight'" in problems[0].message
    assert "unknown key 'colour'" in problems[1].message
    assert "unknown target 'nowhere'" in problems[2].message
    assert "audit 'check_zzz' has no script" in problems[3].message
    assert "'999.1.1.1'" in problems[4].message
    assert "'ftp'" in problems[5].message
    text = str(error)
    assert text.splitlines()[0] == "6 problems in the definitions:"
    assert text.splitlines()[1:] == [str(p) for p in problems]
    assert isinstance(error, EntropyError)


def test_validation_error_collects_parse_problems_beside_unreadable_yaml(
    conf, tmp_path: Path
) -> None:
    """With a file unreadable, every parse problem is still reported, but no cross-check
    echoes it (the targets and scripts it held would all look unknown)."""
    hosts = HOSTS + "compute-09:\n  ip_address: 999.1.1.1\n  host_type: compute\n"
    audits = {
        "a.yaml": "compute:\n  audits:\n    check_a:\n      run_every: 1fortnight\n",
        "b.yaml": "api-01:\n  audits:\n    ping: {run_every: 5m\n",
        "c.yaml": "nowhere:\n  audits:\n    ping:\n      run_every: 5m\n",
    }
    root = write_fleet(tmp_path, audits, hosts=hosts)
    with pytest.raises(ValidationError) as info:
        load_dir(conf, root)
    problems = info.value.problems
    a, b = (str(root / "audits" / name) for name in ("a.yaml", "b.yaml"))
    assert [(p.where.path, p.where.line) for p in problems] == [
        (a, 4),
        (b, 4),
        (str(root / "hosts.yaml"), 16),
    ]
    assert problems[1].message.startswith("invalid YAML")
    assert str(info.value).startswith("3 problems in the definitions:\n")


@pytest.mark.parametrize("broken", ["hosts.yaml", "scripts.yaml"])
def test_malformed_hosts_or_scripts_is_one_problem_not_a_cascade(
    conf, tmp_path: Path, broken: str
) -> None:
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS})
    path = root / broken
    path.write_text(path.read_text() + "oops: [\n")
    problem = only_problem(conf, root)
    assert problem.where.path == str(path)
    assert problem.message.startswith("invalid YAML: ")


def test_validation_error_with_one_problem_reads_singular(conf, tmp_path: Path) -> None:
    text = "compute:\n  audits:\n    check_a:\n      run_every: 0s\n"
    root = write_fleet(tmp_path, {"x.yaml": text})
    with pytest.raises(ValidationError) as info:
        load_dir(conf, root)
    assert str(info.value).startswith("1 problem in the definitions:\n")


def test_build_catalog_raises_parsing_problems_too(tmp_path: Path) -> None:
    problems = Problems()
    problems.add(str(tmp_path / "x.yaml"), (3, 1), "something parsed badly")
    with pytest.raises(ValidationError) as info:
        build_catalog({}, {}, [], [], problems)
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'x.yaml'}:3:1: something parsed badly"
    ]


def test_build_catalog_with_no_problems(tmp_path: Path) -> None:
    catalog = build_catalog({}, {}, [], [], Problems())
    assert catalog.pairs == []


def test_dir_backend_without_schedule_files(conf, tmp_path: Path) -> None:
    root = write_fleet(tmp_path, {})
    problem = only_problem(conf, root)
    assert str(problem) == f"{root / 'audits'}: no schedule files (*.yaml) here"


def test_dir_backend_missing_directory(conf, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        load_dir(conf, tmp_path / "nope")


def test_dir_backend_reads_yml_files_too(conf, tmp_path: Path) -> None:
    root = write_fleet(tmp_path, {"x.yml": GOOD_AUDITS, "notes.txt": "compute: nonsense"})
    assert len(load_dir(conf, root).pairs) == 3


# --- zones (executor = broker) --------------------------------------------------


def test_a_host_names_its_zone_and_the_default_is_default(conf, tmp_path: Path) -> None:
    hosts = HOSTS.replace("  host_type: hypervisor\n", "  host_type: hypervisor\n  zone: dc-2\n")
    catalog = load_dir(conf, write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts))
    assert catalog.hosts["hv-01"].zone == "dc-2"
    assert {catalog.hosts[name].zone for name in ("compute-01", "compute-02", "api-01")} == {
        "default"
    }


@pytest.mark.parametrize(
    "zone", ["'dc 2'", "'a.b'", "'-x'", "''", "[a]", "'x/y'", "'" + "z" * 64 + "'"]
)
def test_a_zone_that_is_not_a_simple_name_is_refused_at_its_line(
    conf, tmp_path: Path, zone: str
) -> None:
    hosts = HOSTS.replace("  host_type: hypervisor\n", f"  host_type: hypervisor\n  zone: {zone}\n")
    root = write_fleet(tmp_path, {"good.yaml": GOOD_AUDITS}, hosts=hosts)
    problem = only_problem(conf, root)
    assert_at(problem, root / "hosts.yaml", locate(root / "hosts.yaml", "zone:")[0])
    assert problem.message.startswith("host 'hv-01': zone must be a simple name (letters")
