"""Hostile fleets: host names, placeholders and values that must never run as code.

Each fleet is written into tmp_path and loaded as `entropy validate` loads
it; what would execute is a `touch` of a marker file, and the tests that
run things check the marker was never made.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from entropy import ansible
from entropy.backends.impl_dir import DirBackend
from entropy.backends.impl_file import FileBackend
from entropy.clock import SystemClock
from entropy.config import load_conf
from entropy.definitions import Problems
from entropy.errors import BackendError, ConfigError, ValidationError
from entropy.model import Host, Outcome, Script
from entropy.runners import Job, command, run_job
from faults import deadline

GOOD_HOST = {"ip_address": "10.0.0.1", "host_type": "web"}

HOSTILE_NAMES = [
    "$(touch pwned)",
    "a;rm -rf x",
    "`id`",
    "-oProxyCommand=touch pwned",
    "-leading.example.com",
    "trailing-.example.com",
    "with space.example.com",
    "new\nline.example.com",
    "tab\there",
    "héllo.example.com",
    "a..b.example.com",
    ".example.com",
    "under_score.example.com",
    "x" * 64 + ".example.com",
    ("a" * 60 + ".") * 5 + "com",  # 308 characters
    "1.2.3.999",  # all digits: not an IP, and `ping` would read it as one
    "a|b",
    "a/b",
    "a\x00b",
    "",
]
GOOD_NAMES = [
    "web-01.example.com",
    "web-01.example.com.",
    "localhost",
    "123abc.example",
    "xn--bcher-kva.example",
    "10.0.0.1",
    "fd00::1",
    "fe80::1%eth0",
    "A" * 63 + ".example",
]


@pytest.fixture
def conf():
    conf = load_conf()
    conf.set_override("cron_timezone", "UTC")
    return conf


def write(root: Path, hosts: Any, scripts: Any, schedules: Any, repairs: Any = None) -> Path:
    (root / "audits").mkdir(parents=True, exist_ok=True)
    (root / "hosts.yaml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    (root / "scripts.yaml").write_text(yaml.safe_dump(scripts, sort_keys=False))
    (root / "audits" / "a.yaml").write_text(yaml.safe_dump(schedules, sort_keys=False))
    if repairs is not None:
        (root / "repairs.yaml").write_text(yaml.safe_dump(repairs, sort_keys=False))
    return root


def problems_of(conf, root: Path) -> list[ConfigError]:
    with pytest.raises(ValidationError) as info:
        DirBackend(conf, str(root)).load()
    return info.value.problems


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


ECHO = {"kind": "command", "command": ["echo", "{host}"]}
ON_WEB = {"web": {"audits": {"check": {"run_every": "1h"}}}}


# -- host names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_a_hostile_host_name_is_refused_at_its_line(conf, tmp_path: Path, name: str) -> None:
    root = write(tmp_path, {}, {"check": ECHO}, ON_WEB)
    (root / "hosts.yaml").write_text(  # one host a line; JSON strings are YAML too
        "".join(f"{json.dumps(n)}: {{ip_address: 10.0.0.1, host_type: web}}\n"
                for n in ("ok.example.com", name))
    )  # fmt: skip
    (problem,) = problems_of(conf, root)
    assert problem.where.path == str(root / "hosts.yaml")
    assert (problem.where.line, problem.where.col) == (2, 1)
    assert "DNS name" in problem.message or "must be text" in problem.message
    assert str(problem).startswith(f"{root / 'hosts.yaml'}:2:1: ")


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_dns_names_and_addresses_are_host_names(conf, tmp_path: Path, name: str) -> None:
    root = write(tmp_path, {name: GOOD_HOST}, {"check": ECHO}, ON_WEB)
    catalog = DirBackend(conf, str(root)).load()
    assert [pair.host for pair in catalog.pairs] == [name]


@pytest.mark.parametrize(
    "ip", ["fe80::1%$(touch pwned)", "fe80::1%a b", "10.0.0.1 ", "example.com", 167772161]
)
def test_ip_address_must_be_an_address_with_a_plain_zone(conf, tmp_path: Path, ip: Any) -> None:
    hosts = {"ok.example": GOOD_HOST, "web-1.example": {"ip_address": ip, "host_type": "web"}}
    root = write(tmp_path, hosts, {"check": ECHO}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert "ip_address must be an IP address" in problem.message
    assert problem.where.line == line_of(root / "hosts.yaml", "web-1.example") + 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"host_type": "web\x00x"}, "control character"),
        ({"groups": ["g" * 256]}, "longer than 255"),
        ({"vars": {"since": "2024-01-01"}}, None),  # quoted: text, fine
        ({"vars": {1: "x"}}, "the key 1 is not text"),
        ({"vars": {"n": float("nan")}}, "not a finite number"),
        ({"vars": {"n": 2**70}}, "too large"),
        ({"vars": {"x": "a\x00b"}}, "NUL"),
    ],
)
def test_host_fields_that_would_break_later(
    conf, tmp_path: Path, entry: dict, message: str | None
) -> None:
    hosts = {"ok.example": GOOD_HOST, "web-1.example": {**GOOD_HOST, **entry}}
    root = write(tmp_path, hosts, {"check": ECHO}, ON_WEB)
    if message is None:
        DirBackend(conf, str(root)).load()
        return
    (problem,) = problems_of(conf, root)
    assert message in problem.message


def test_a_date_var_is_refused_with_a_hint_to_quote_it(conf, tmp_path: Path) -> None:
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": ECHO}, ON_WEB)
    (root / "hosts.yaml").write_text(
        "ok.example: {ip_address: 10.0.0.1, host_type: web}\n"
        "web-1.example: {ip_address: 10.0.0.1, host_type: web, vars: {since: 2024-01-01}}\n"
    )
    (problem,) = problems_of(conf, root)
    assert "2024-01-01 is a date; quote it" in problem.message


# -- placeholders where a value would be code ------------------------------------------------

CODE_ARGV = [
    ["sh", "-c", "ping -c1 {host}"],
    ["/bin/sh", "-c", "test -f /tmp/{host}"],
    ["bash", "-ec", "echo {ip_address}"],
    ["bash", "-o", "pipefail", "-c", "echo {vars.note}"],
    ["dash", "-lc", "echo {params.size}"],
    ["zsh", "-c", "x {host}"],
    ["ksh", "-c", "x {host}"],
    ["busybox", "sh", "-c", "x {host}"],
    ["env", "LANG=C", "sh", "-c", "x {host}"],
    ["/usr/bin/env", "-i", "bash", "-c", "x {host}"],
    ["sudo", "-u", "nobody", "sh", "-c", "x {host}"],
    ["sudo", "-s", "echo", "{host}"],
    ["nice", "-n", "5", "sh", "-c", "x {host}"],
    ["timeout", "5", "sh", "-c", "x {host}"],
    ["xargs", "sh", "-c", "x {host}"],
    ["python3", "-c", "print('{host}')"],
    ["python3.11", "-Ic", "print('{host}')"],
    ["perl", "-e", "print '{host}'"],
    ["perl", "-lne", "print '{host}'"],
    ["ruby", "-e", "puts '{host}'"],
    ["node", "-e", "console.log('{host}')"],
    ["node", "--eval=console.log('{host}')"],
    ["php", "-r", "echo '{host}';"],
    ["awk", 'BEGIN {print "{host}"}'],
    ["awk", "-F:", '{print "{host}"}', "/etc/passwd"],
    ["sed", "s/x/{vars.note}/"],
    ["ssh", "{host}", "uptime; echo {host}"],
    ["ssh", "-o", "ProxyCommand=nc {vars.note} 22", "h.example"],
    ["su", "-c", "x {host}", "nobody"],
    ["watch", "-n", "1", "echo", "{host}"],
    ["psql", "-c", "\\! echo {host}"],
    ["sqlite3", ":memory:", ".shell echo {host}"],
]


@pytest.mark.parametrize("argv", CODE_ARGV, ids=lambda a: " ".join(a)[:40])
def test_a_placeholder_in_code_is_refused_naming_the_fix(
    conf, tmp_path: Path, argv: list[str]
) -> None:
    hosts = {"web-1.example": {**GOOD_HOST, "vars": {"note": "n"}}}
    schedules = {"web": {"audits": {"check": {"run_every": "1h", "params": {"size": 1}}}}}
    root = write(tmp_path, hosts, {"check": {"kind": "command", "command": argv}}, schedules)
    problems = problems_of(conf, root)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.where.line == line_of(root / "scripts.yaml", "command:")
    assert re.search(r"command\[\d+\] is .*, where \{[\w.]+\} would", problem.message)
    assert "environment" in problem.message or "remote command" in problem.message


def test_the_fix_for_a_shell_names_the_variable_and_shell_true(conf, tmp_path: Path) -> None:
    root = write(tmp_path, {"web-1.example": GOOD_HOST},
                 {"check": {"kind": "command", "command": ["sh", "-c", "ping {host}"]}},
                 ON_WEB)  # fmt: skip
    (problem,) = problems_of(conf, root)
    assert problem.message == (
        "script 'check': command[2] is the script of `sh -c`, where {host} would run as shell "
        'code; read it from the environment there ("$ENTROPY_HOST"), or write the command as '
        "one string with shell: true, which quotes it"
    )


SAFE_ARGV = [
    ["sh", "-c", 'ping -c1 "$1"', "sh", "{host}"],  # a positional parameter: never parsed
    ["sh", "-c", 'ping -c1 "$ENTROPY_HOST"'],
    ["ping", "-c", "1", "{host}"],
    ["check_disk", "-w", "{params.size}", "-c", "{params.size}", "-H", "{ip_address}"],
    ["awk", "-v", "h={host}", "BEGIN {print h}"],
    ["python3", "/opt/check.py", "--host", "{host}"],
    ["ssh", "-p", "22", "{host}", "uptime"],
    ["sed", "-n", "p", "/etc/{vars.note}"],
    ["test", "-f", "/etc/{vars.note}.conf"],
]


@pytest.mark.parametrize("argv", SAFE_ARGV, ids=lambda a: " ".join(a)[:40])
def test_placeholders_outside_code_are_fine(conf, tmp_path: Path, argv: list[str]) -> None:
    hosts = {"web-1.example": {**GOOD_HOST, "vars": {"note": "n"}}}
    schedules = {"web": {"audits": {"check": {"run_every": "1h", "params": {"size": 1}}}}}
    root = write(tmp_path, hosts, {"check": {"kind": "command", "command": argv}}, schedules)
    assert len(DirBackend(conf, str(root)).load().pairs) == 1


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("sh -c 'ping {host}'", "`sh -c`"),
        ("eval echo {host}", "`eval`"),
        ('echo ok; bash -c "x {vars.note}"', "`bash -c`"),
        ("ssh h.example echo {host}", "remote"),
        ("echo `echo {host}`", "backquote"),
        ("x=$(( {params.size} + 1 ))", "`$((`"),
        ("echo 'open {host}", "open quote"),
    ],
)
def test_shell_true_refuses_placeholders_that_would_be_parsed_again(
    conf, tmp_path: Path, line: str, needle: str
) -> None:
    hosts = {"web-1.example": {**GOOD_HOST, "vars": {"note": "n"}}}
    schedules = {"web": {"audits": {"check": {"run_every": "1h", "params": {"size": 1}}}}}
    script = {"kind": "command", "command": line, "shell": True}
    root = write(tmp_path, hosts, {"check": script}, schedules)
    (problem,) = problems_of(conf, root)
    assert needle in problem.message, problem.message


# -- every placeholder against every host and schedule ------------------------------------------


def test_a_placeholder_typo_is_refused_with_a_guess(conf, tmp_path: Path) -> None:
    script = {"kind": "command", "command": ["ping", "-c1", "{hostname}"]}
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert problem.where.path == str(root / "scripts.yaml")
    assert problem.where.line == line_of(root / "scripts.yaml", "command:")
    assert problem.message == (
        "script 'check': command[2]: unknown placeholder {hostname}; did you mean {host}?"
    )


@pytest.mark.parametrize(
    ("script", "guess"),
    [
        ({"kind": "http", "url": "http://{ipaddress}:80/"}, "{ip_address}"),
        ({"kind": "tcp", "port": 22, "host": "{var.rack}"}, "{vars.rack}"),
        ({"kind": "command", "command": ["x"], "env": {"A": "{param.x}"}}, "{params.x}"),
        ({"kind": "command", "command": ["x"], "cwd": "/srv/{host.name}"}, "{host}"),
    ],
)
def test_typos_in_every_templated_key(conf, tmp_path: Path, script: dict, guess: str) -> None:
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert f"did you mean {guess}?" in problem.message


def test_a_var_missing_on_some_hosts_names_the_host_and_the_pair(conf, tmp_path: Path) -> None:
    hosts = {
        "web-1.example": {**GOOD_HOST, "vars": {"rack": "r1"}},
        "web-2.example": GOOD_HOST,
        "web-3.example": GOOD_HOST,
    }
    script = {"kind": "command", "command": ["check_rack", "{vars.rack}"]}
    root = write(tmp_path, hosts, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert problem.where.path == str(root / "hosts.yaml")
    assert problem.where.line == line_of(root / "hosts.yaml", "web-2.example")
    schedule_at = f"{root / 'audits' / 'a.yaml'}:3:5"
    scripts_at = f"{root / 'scripts.yaml'}:1:1"
    assert problem.message == (
        f"host 'web-2.example' has no var 'rack', which script 'check' ({scripts_at}) uses as "
        f"{{vars.rack}} for audit 'check' on 'web' ({schedule_at}); the same for 'web-3.example'"
    )


def test_a_param_missing_on_a_schedule_is_refused_there(conf, tmp_path: Path) -> None:
    script = {"kind": "command", "command": ["check_queue", "--max={params.depth}"]}
    schedules = {
        "web": {"audits": {"check": {"run_every": "1h"}}},
        "web-1.example": {"audits": {"check": {"run_every": "1h", "params": {"depth": 3}}}},
    }
    hosts = {"web-1.example": GOOD_HOST, "web-2.example": GOOD_HOST}
    root = write(tmp_path, hosts, {"check": script}, schedules)
    (problem,) = problems_of(conf, root)
    assert (problem.where.path, problem.where.line) == (str(root / "audits" / "a.yaml"), 3)
    assert "uses {params.depth}, which this entry's params do not give" in problem.message


def test_a_repair_script_gets_no_params_and_needs_its_hosts_vars(conf, tmp_path: Path) -> None:
    scripts = {
        "check": ECHO,
        "fix": {"kind": "command", "command": ["fix", "{params.x}", "{vars.rack}"]},
    }
    repairs = {"fixit": {"when": {"audit": "check"}, "run": "fix"}}
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, scripts, ON_WEB, repairs)
    messages = sorted(p.message for p in problems_of(conf, root))
    assert len(messages) == 2
    assert "has no var 'rack', which repair 'fixit'" in messages[0]
    assert "uses {params.x}, but a repair runs with no params" in messages[1]


@pytest.mark.parametrize("value", ["-oProxyCommand=touch pwned", "--help", "-c"])
def test_a_value_read_as_an_option_is_refused(conf, tmp_path: Path, value: str) -> None:
    hosts = {"web-1.example": {**GOOD_HOST, "vars": {"jump": value}}}
    script = {"kind": "command", "command": ["ssh", "{vars.jump}", "uptime"]}
    root = write(tmp_path, hosts, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert "starts with '-'" in problem.message and "option" in problem.message
    assert problem.where.line == line_of(root / "hosts.yaml", "web-1.example")


def test_a_negative_number_may_start_an_argument(conf, tmp_path: Path) -> None:
    hosts = {"web-1.example": {**GOOD_HOST, "vars": {"offset": -5}}}
    script = {"kind": "command", "command": ["check_clock", "{vars.offset}"]}
    root = write(tmp_path, hosts, {"check": script}, ON_WEB)
    assert len(DirBackend(conf, str(root)).load().pairs) == 1


# -- nothing runs ---------------------------------------------------------------------------


def test_a_script_made_without_validation_still_refuses_code(tmp_path: Path) -> None:
    """The runner checks too: a Script built in code never reaches a shell with a value."""
    host = Host("h.example", "127.0.0.1", "web", vars={"x": "$(touch pwned)"})
    for argv in (["sh", "-c", "echo {vars.x}"], ["env", "bash", "-c", "echo {host}"]):
        script = Script("a", "command", {"command": argv, "cwd": str(tmp_path)})
        result = run_job(Job("a", host, script, {}, 5.0), SystemClock())
        assert result.outcome is Outcome.ERROR
        assert "$ENTROPY_" in result.summary
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "nasty",
    [
        "x\ntouch pwned\n#",  # a comment ends at a newline: was run on 156156c
        "$(touch pwned)",
        "`touch pwned`",
        "'; touch pwned; '",
        '"; touch pwned; "',
        "\\'; touch pwned #",
    ],
)
def test_shell_true_never_parses_a_value(tmp_path: Path, nasty: str) -> None:
    host = Host("h.example", "127.0.0.1", "web", vars={"v": nasty})
    line = "printf '%s|' {vars.v} \"{vars.v}\" '{vars.v}' # comment {vars.v}"
    script = Script("a", "command", {"command": line, "shell": True, "cwd": str(tmp_path)})
    result = command.run(Job("a", host, script, {}, 5.0))
    assert result.outcome is Outcome.OK, result
    assert result.output == f"{nasty}|{nasty}|{nasty}|"
    assert list(tmp_path.iterdir()) == []


def test_two_vars_that_would_share_an_environment_variable(conf, tmp_path: Path) -> None:
    hosts = {
        "ok.example": GOOD_HOST,
        "web-1.example": {**GOOD_HOST, "vars": {"rack-id": 1, "rack_id": 2}},
    }
    root = write(tmp_path, hosts, {"check": ECHO}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert "'rack-id' and 'rack_id' would both be $ENTROPY_VAR_RACK_ID" in problem.message


@pytest.mark.parametrize("name", ["LD_PRELOAD", "BASH_ENV", "PATH", "PERL5OPT", "BASH_FUNC_x%%"])
def test_a_placeholder_in_an_environment_variable_read_as_code(
    conf, tmp_path: Path, name: str
) -> None:
    script = {"kind": "command", "command": ["check"], "env": {name: "{vars.x}", "OK": "{host}"}}
    hosts = {"web-1.example": {**GOOD_HOST, "vars": {"x": "/tmp/evil.so"}}}
    root = write(tmp_path, hosts, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert f"env: {name} is read as code" in problem.message


@pytest.mark.parametrize(
    "argv",
    [
        ["{vars.tool}", "--check"],
        ["timeout", "5", "{vars.tool}"],
        ["sudo", "-u", "nobody", "{params.size}"],
        ["env", "A=1", "{vars.tool}"],
    ],
)
def test_a_value_may_not_choose_the_program(conf, tmp_path: Path, argv: list[str]) -> None:
    hosts = {"web-1.example": {**GOOD_HOST, "vars": {"tool": "/bin/sh"}}}
    schedules = {"web": {"audits": {"check": {"run_every": "1h", "params": {"size": 1}}}}}
    root = write(tmp_path, hosts, {"check": {"kind": "command", "command": argv}}, schedules)
    (problem,) = problems_of(conf, root)
    assert "would choose what runs" in problem.message


def test_a_host_name_may_name_a_per_host_script(conf, tmp_path: Path) -> None:
    script = {"kind": "command", "command": ["/opt/checks/{host}.sh", "{ip_address}"]}
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": script}, ON_WEB)
    assert len(DirBackend(conf, str(root)).load().pairs) == 1


# -- what stands where a definitions file should ------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _loop(path: Path) -> None:
    path.symlink_to(path.name)  # a link to itself: ELOOP


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")  # read without end: it would never finish


def _directory(path: Path) -> None:
    path.mkdir()


NOT_FILES = {
    _fifo: "is a named pipe (FIFO), not a regular file",
    _loop: "is a symbolic link loop",
    _device: "is a character device, not a regular file",
    _directory: "is a directory, not a regular file",
}


DEFINITIONS_FILES = ["hosts.yaml", "scripts.yaml", "audits/a.yaml", "repairs.yaml"]


@pytest.mark.parametrize("relative", DEFINITIONS_FILES)
@pytest.mark.parametrize("make", list(NOT_FILES), ids=lambda f: f.__name__.strip("_"))
def test_a_definitions_file_that_is_not_a_file_is_refused(
    conf, tmp_path: Path, relative: str, make: Any
) -> None:
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": ECHO}, ON_WEB)
    target = root / relative
    target.unlink(missing_ok=True)
    make(target)
    with deadline(10):  # before: a FIFO blocked open() for ever, /dev/zero read for ever
        problems = problems_of(conf, root)
    mine = [p for p in problems if p.where.path == str(target)]
    assert len(mine) == 1, problems
    assert mine[0].message.startswith(NOT_FILES[make])


@pytest.mark.parametrize("make", list(NOT_FILES), ids=lambda f: f.__name__.strip("_"))
def test_a_file_backend_that_is_not_a_file_is_refused(conf, tmp_path: Path, make: Any) -> None:
    target = tmp_path / "fleet.yaml"
    make(target)
    backend = FileBackend(conf, str(target))
    for attempt in (backend.require_present, backend.load):
        with pytest.raises(BackendError) as info, deadline(10):
            attempt()
        assert f"definitions file {target} " in str(info.value)
        assert NOT_FILES[make].partition(",")[0] in str(info.value)


def test_a_file_where_a_dir_backend_should_be_says_so(conf, tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text("hosts: {}\n")
    with pytest.raises(BackendError, match=r"fleet.yaml is a file, not a directory"):
        DirBackend(conf, str(tmp_path / "fleet.yaml")).load()


def test_a_running_engines_refresh_refuses_a_fifo_and_keeps_its_catalog(
    conf, tmp_path: Path
) -> None:
    """A refresh reads through the parse cache, which hashed the file first: it blocked there."""
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": ECHO}, ON_WEB)
    backend = DirBackend(conf, str(root))
    assert len(backend.load().pairs) == 1
    (root / "hosts.yaml").unlink()
    os.mkfifo(root / "hosts.yaml")
    with deadline(10):
        (problem,) = problems_of_loaded(backend)
    assert problem.message == "is a named pipe (FIFO), not a regular file"


def problems_of_loaded(backend: DirBackend) -> list[ConfigError]:
    with pytest.raises(ValidationError) as info:
        backend.load()
    return info.value.problems


# -- kind: ssh env names ---------------------------------------------------------------------

BAD_SSH_ENV_NAMES = ["A B", "X=Y", "$(id)", "", "a\nb", "-S", "--chdir", "9LIVES", "É"]


@pytest.mark.parametrize("name", BAD_SSH_ENV_NAMES, ids=repr)
@pytest.mark.parametrize("form", ["command", "upload"])
def test_an_ssh_env_name_that_is_not_a_variable_is_refused_at_its_line(
    conf, tmp_path: Path, name: str, form: str
) -> None:
    script: dict[str, Any] = {"kind": "ssh", "env": {"GOOD_1": "x", name: "y"}}
    script |= {"command": ["true"]} if form == "command" else {"upload": "/bin/true"}
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert problem.where.path == str(root / "scripts.yaml")
    assert problem.where.line > line_of(root / "scripts.yaml", "env:")  # the name's own line
    assert f"env: {name!r} can't be an environment variable's name" in problem.message


@pytest.mark.parametrize("env", [{"A\x00B": "x"}, {"OK": "x\x00y"}], ids=["name", "value"])
def test_an_ssh_env_with_nul_is_refused(conf, tmp_path: Path, env: dict) -> None:
    script = {"kind": "ssh", "command": ["true"], "env": env}
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert problem.where.path == str(root / "scripts.yaml") and problem.where.line
    assert "NUL" in problem.message


def test_posix_env_names_pass_for_ssh(conf, tmp_path: Path) -> None:
    script = {"kind": "ssh", "command": ["true"], "env": {"A": "1", "_B2": "2", "lower": "3"}}
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {"check": script}, ON_WEB)
    assert len(DirBackend(conf, str(root)).load().pairs) == 1


# -- hostile Ansible inventories (entropy import ansible:PATH) ----------------------------------


def inventory_problems(path: Path | str) -> list[str]:
    problems = Problems()
    with deadline(20):  # before: a FIFO, /dev/zero, a huge range or a long chain never ended
        hosts, _ = ansible.read(str(path), problems)
    assert problems.items, hosts
    return [str(p) for p in problems.items]


CHAIN = 5000  # groups, each the child of the one before: O(n^3) ancestors before


_CYCLE = {"a": {"children": ["b"], "hosts": ["10.0.0.1"]}, "b": {"children": ["a"]}}
_CHAIN = {**{f"g{i}": {"children": [f"g{i + 1}"]} for i in range(CHAIN)},
          f"g{CHAIN}": {"hosts": ["10.0.0.1"]}}  # fmt: skip
_BOMB = ("all:\n  vars:\n    a: &a [x,x,x,x,x,x,x,x,x,x]\n"
         + "".join(f"    {n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                   for p, n in zip("abcdef", "bcdefg", strict=True))
         + "  hosts:\n    10.0.0.1:\n")  # fmt: skip
HOSTILE_INVENTORIES = [
    ("range.ini", "[web]\nweb[0:99999999].example\n", "makes 100,000,000 hosts"),
    ("range.yaml", "all:\n  hosts:\n    web[0:99999999].example:\n", "makes 100,000,000"),
    ("nested.ini", "[web]\na[0:999]b[0:999]c[0:999].example\n", "makes 1,000,000,000 hosts"),
    ("step.ini", "[web]\nweb[1:5:0].example\n", "has step 0"),  # ValueError before
    ("huge.ini", "[web]\nweb[0:" + "9" * 5000 + "].example\n", "is not a range"),
    ("cycle.yaml", "a:\n  children:\n    b:\n      children:\n        a:\n", "own child"),
    ("cycle.ini", "[a:children]\nb\n[b:children]\na\n[a]\n10.0.0.1\n", "own ancestor"),
    ("cycle.json", json.dumps(_CYCLE), "own ancestor"),
    ("chain.json", json.dumps(_CHAIN), "nests deeper than 64 levels of children"),
    # a RecursionError traceback before:
    ("deep.json", '{"all": {"vars": {"x": ' + "[" * 10**5 + "]" * 10**5 + "}}}", "nested too deep"),
    ("bomb.yaml", _BOMB, "aliases expand to more than"),
    ("port.ini", "[web]\n10.0.0.1 ansible_port=\u00b2\n", "port must be a number"),
    ("names.yaml", 'all:\n  hosts:\n    "$(touch pwned)": {ansible_host: 10.0.0.1}\n', "DNS name"),
]


@pytest.mark.parametrize(("name", "text", "said"), HOSTILE_INVENTORIES,
                         ids=[name for name, _, _ in HOSTILE_INVENTORIES])  # fmt: skip
def test_a_hostile_inventory_is_refused_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, said: str
) -> None:
    monkeypatch.chdir(tmp_path)  # where a `touch pwned` would land
    path = tmp_path / name
    path.write_text(text)
    problems = inventory_problems(path)
    assert any(said in p and p.startswith(str(path)) for p in problems), problems
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("make", [_fifo, _device, _directory, _loop], ids=lambda f: f.__name__)
def test_an_inventory_that_is_not_a_file_is_refused(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "hosts.yaml"
    make(path)
    (problem,) = inventory_problems(path)
    assert problem.startswith(f"{path}: cannot read the inventory: is ")


def test_an_executable_inventory_script_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "inventory.py"
    script.write_text('#!/bin/sh\ntouch pwned\necho \'{"all": {"hosts": ["10.0.0.1"]}}\'\n')
    script.chmod(0o755)
    (problem,) = inventory_problems(script)
    assert "is an executable inventory script; Entropy never runs one" in problem
    assert f"ansible-inventory -i {script} --list | entropy import ansible:- DST" in problem
    assert not (tmp_path / "pwned").exists()


def test_an_inventory_past_its_bounds_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ansible, "MAX_HOSTS", 100)
    monkeypatch.setattr(ansible, "MAX_GROUPS", 50)
    monkeypatch.setattr(ansible, "MAX_BYTES", 10_000)
    many = tmp_path / "many.json"
    addresses = [f"10.0.{i // 250}.{i % 250}" for i in range(101)]
    many.write_text(json.dumps({"all": {"hosts": addresses}}))
    assert any("more than 100 hosts" in p for p in inventory_problems(many))
    groups = tmp_path / "groups.ini"
    groups.write_text("".join(f"[g{i}]\n10.0.0.1\n" for i in range(60)))
    assert any("more than 50 groups" in p for p in inventory_problems(groups))
    big = tmp_path / "big.ini"
    big.write_text("[web]\n" + "# padding\n" * 2000)
    assert any("larger than 10,000 bytes" in p for p in inventory_problems(big))


@pytest.mark.parametrize("make", [_fifo, _device, _directory], ids=lambda f: f.__name__)
def test_an_ssh_upload_that_is_not_a_file_is_an_error_not_a_hang(
    conf, tmp_path: Path, make: Any
) -> None:
    """Hashing a FIFO or /dev/zero to upload it blocked its worker, and the engine's stop."""
    upload = tmp_path / "check.sh"
    make(upload)
    script = {"kind": "ssh", "upload": str(upload)}
    root = write(tmp_path / "fleet", {"web-1.example": GOOD_HOST}, {"check": script}, ON_WEB)
    (problem,) = problems_of(conf, root)
    assert f"upload: '{upload}' is " in problem.message
    host = Host("web-1.example", "127.0.0.1", "web")
    job = Job("check", host, Script("check", "ssh", script), {}, 5.0)
    with deadline(10):
        result = run_job(job, SystemClock())
    assert result.outcome is Outcome.ERROR
    assert f"upload '{upload}': is " in result.summary


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u2028", "\u2066", "\ufeff"], ids=ascii)
def test_a_name_with_an_invisible_or_reordering_character_is_refused(
    conf, tmp_path: Path, char: str
) -> None:
    """`status` and logs show names: U+202E would show 'check\u202etxt.exe' reversed."""
    name = f"check{char}gnp"
    schedules = {"web": {"audits": {name: {"run_every": "1h"}}}}
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {name: ECHO}, schedules)
    problems = problems_of(conf, root)
    assert problems and all(f"U+{ord(char):04X}" in p.message for p in problems), problems


def test_a_name_in_another_script_is_fine(conf, tmp_path: Path) -> None:
    name = "prüfung-ディスク"
    root = write(tmp_path, {"web-1.example": GOOD_HOST}, {name: ECHO},
                 {"web": {"audits": {name: {"run_every": "1h"}}}})  # fmt: skip
    assert [p.audit_name for p in DirBackend(conf, str(root)).load().pairs] == [name]
