"""What the definitions check in a script before any engine runs it.

Everything a runner would refuse at every run (`output_limit: -1`, `port:
70000`, `{hostname}`), and every placeholder where a value would be read as
code (`[sh, -c, "ping {host}"]`). Then, once the pairs are known, every
placeholder against each host and schedule it meets: `{vars.rack}` on a host
without that var, `{params.depth}` on a schedule without that param, and a
value that would start an argument with `-` (read as an option).
"""

from __future__ import annotations

import functools
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import codeargs, values
from .errors import Location
from .model import Catalog, Host, Schedule, Script
from .placeholders import Placeholder, Text, as_text, find, texts
from .regularfile import not_regular_reason
from .ssh.upload import upload_path
from .values import data_problem

Report = Callable[[tuple[int, int], str], None]  # (where in the file, message)

OUTPUT_LIMIT_MAX = 16 * 1024 * 1024  # bytes a command's output may keep
LATENCY_MAX_MS = 86_400_000  # warning_ms / critical_ms: a day
_METHOD = re.compile(r"[A-Za-z]{1,20}")
_ENV_NAME = re.compile(r"[^=\x00]+")  # what exec takes locally
# What the remote `env NAME=value sh` and a POSIX shell take: a name such as
# `-S` or `--chdir` would be read by env(1) as an option.
_POSIX_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION = re.compile(r"[\w.-]+(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?")
_NUMBER = re.compile(r"-[0-9]+(\.[0-9]+)?")


def check_script(
    name: str, kind: str, entry: Any, report: Report, defined_in: str | None = None
) -> None:
    """Report every problem in one script entry (a MarkedMap) of a known kind.

    defined_in: the scripts file, where a relative `upload:` starts (as the runner reads it).
    """
    what = f"script {name!r}"
    for key, value in entry.items():
        if key in ("kind", "timeout", "description"):
            continue
        problem = data_problem(value)
        if problem:
            report(entry.at(key), f"{what}: {key}: {problem}")
            return
    kind_check = _KIND_CHECKS.get(kind)
    if kind_check is not None:
        for key, message in kind_check(entry):
            report(entry.at(key), f"{what}: {key}: {message}")
    for text in texts(kind, entry):
        for found, _ in find(text.text):
            problem = found.problem()
            if problem:
                report(entry.at(text.key.partition(".")[0]), f"{what}: {text.label}: {problem}")
    if kind in ("command", "ssh"):  # ssh: the same argv, run by the remote host
        _check_env_names(what, kind, entry, report)
        _check_command_code(what, entry, report)
    if kind == "ssh":
        _check_upload_file(what, entry, defined_in, report)


def _check_upload_file(what: str, entry: Any, defined_in: str | None, report: Report) -> None:
    """An `upload:` that exists here must be a regular file: hashing a FIFO blocks each run.

    One that does not exist is no problem here: with executor = broker it is
    looked for on the workers' machines.
    """
    upload = entry.get("upload")
    if not isinstance(upload, str) or not upload.strip() or "{" in upload:
        return  # _ssh says why
    path = upload_path(upload, defined_in)
    if os.path.lexists(path):
        why = not_regular_reason(path)
        if why is not None:
            report(entry.at("upload"), f"{what}: upload: {upload!r} {why}")


# -- each kind's values --------------------------------------------------------------------


# Environment variables a program reads as code, or as where to load code from:
# a value from a host or a schedule must not go there.
CODE_ENV = frozenset(
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "BASH_ENV",
        "ENV",
        "PATH",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "IFS",
        "CDPATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONWARNINGS",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "GIT_PROXY_COMMAND",
        "GIT_PAGER",
        "GIT_EDITOR",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "LESSOPEN",
        "LESSCLOSE",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "RSYNC_RSH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
    ]
)


def _command(entry: Any) -> Iterable[tuple[str, str]]:
    command, shell = entry.get("command"), entry.get("shell", False)
    if not isinstance(shell, bool):
        yield "shell", f"must be true or false, got {shell!r}"
    elif shell:
        if not isinstance(command, str) or not command.strip():
            yield "command", "with shell: true, command must be one string"
    elif not isinstance(command, list) or not command:
        yield (
            "command",
            (
                "must be a list of arguments, e.g. [check_disk, -w, '10%'] "
                "(or one string with shell: true)"
            ),
        )
    elif not all(isinstance(arg, str | int | float) for arg in command):
        yield "command", "each argument must be text or a number"
    env = entry.get("env")
    if env is not None:
        if not isinstance(env, dict):
            yield "env", f"must be a mapping of names to values, got {env!r}"
        else:
            code = [
                name
                for name, value in env.items()
                if (name in CODE_ENV or name.startswith("BASH_FUNC_"))
                and next(iter(find(as_text(value))), None)
            ]
            if code:
                yield (
                    "env",
                    (
                        f"{code[0]} is read as code or says where code is loaded from; a "
                        f"placeholder there would let a host's value choose what runs"
                    ),
                )
    cwd = entry.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd):
        yield "cwd", f"must be a directory path, got {cwd!r}"
    limit = entry.get("output_limit")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= OUTPUT_LIMIT_MAX
    ):
        yield (
            "output_limit",
            f"must be a number of bytes from 1 to {OUTPUT_LIMIT_MAX}, got {limit!r}",
        )


def _http(entry: Any) -> Iterable[tuple[str, str]]:
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        yield "url", f"must be an http:// or https:// URL, got {url!r}"
    else:
        scheme, sep, rest = url.partition("://")
        if "{" not in scheme and (scheme.lower() not in ("http", "https") or not sep or not rest):
            yield "url", f"must be an http:// or https:// URL, got {url!r}"
        else:
            problem = _port_problem(url)
            if problem:
                yield "url", f"{url!r}: {problem}"
    method = entry.get("method")
    if method is not None and (not isinstance(method, str) or not _METHOD.fullmatch(method)):
        yield "method", f"must be an HTTP method such as GET or POST, got {method!r}"
    status = entry.get("expect_status")
    if status is not None:
        codes = status if isinstance(status, list) else [status]
        if not codes or not all(
            isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599
            for code in codes
        ):
            yield (
                "expect_status",
                f"must be a status code (100-599) or a list of them, got {status!r}",
            )
    regex = entry.get("body_regex")
    if regex is not None:
        try:
            with warnings.catch_warnings():  # "possible nested set": fine, and not ours to say
                warnings.simplefilter("ignore")
                re.compile(str(regex))
        except re.error as exc:
            yield "body_regex", f"{regex!r} is not a valid regex: {exc}"
    headers = entry.get("headers")
    if headers is not None and not isinstance(headers, dict):
        yield "headers", f"must be a mapping, got {headers!r}"
    verify = entry.get("verify_tls")
    if verify is not None and not isinstance(verify, bool):
        yield "verify_tls", f"must be true or false, got {verify!r}"
    yield from _thresholds(entry)


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _port_problem(url: str) -> str | None:
    """A port out of range or not a number (`http://{ip_address}:99999999/`): every run fails.

    Placeholders stand in as 0, so a `{params.port}` is left to the per-pair checks.
    """
    try:
        urlsplit(_PLACEHOLDER.sub("0", url)).port  # noqa: B018 - read for its ValueError
    except ValueError as exc:
        return str(exc) if "port" in str(exc).lower() else None
    return None


def _tcp(entry: Any) -> Iterable[tuple[str, str]]:
    port = entry.get("port")
    if isinstance(port, str) and "{" in port:
        pass  # a placeholder: checked when it runs
    else:
        try:
            number = int(port) if not isinstance(port, bool | float) else 0
        except (TypeError, ValueError):
            number = 0
        if not 0 < number < 65536:
            yield "port", f"must be a number from 1 to 65535, got {port!r}"
    host = entry.get("host")
    if host is not None and (not isinstance(host, str) or not host):
        yield "host", f"must be a host name or address, got {host!r}"
    yield from _thresholds(entry)


def _python(entry: Any) -> Iterable[tuple[str, str]]:
    function = entry.get("function")
    if not isinstance(function, str) or not _FUNCTION.fullmatch(function):
        yield "function", f"must be 'module:function' or an entry point name, got {function!r}"


def _thresholds(entry: Any) -> Iterable[tuple[str, str]]:
    for key in ("warning_ms", "critical_ms"):
        value = entry.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= LATENCY_MAX_MS
        ):
            yield key, f"must be a number of milliseconds from 0 to {LATENCY_MAX_MS}, got {value!r}"


_COMMAND_OR_UPLOAD = (
    "kind ssh needs command (what to run) or upload (a local file to copy and run), one of them"
)
_ARGS_WITH_UPLOAD = (
    "args go with upload (the uploaded file's arguments); with command, list them there"
)


def _ssh(entry: Any) -> Iterable[tuple[str, str]]:
    """kind: ssh takes command's keys (but cwd), or upload: a local file run with args."""
    if ("command" in entry) == ("upload" in entry):
        key = "upload" if "upload" in entry else "command"
        yield key, _COMMAND_OR_UPLOAD
        return
    if "upload" not in entry:
        if "args" in entry:
            yield "args", _ARGS_WITH_UPLOAD
        yield from _command(entry)
        return
    upload = entry.get("upload")
    if not isinstance(upload, str) or not upload.strip():
        yield "upload", f"must be the path of a local file, got {upload!r}"
    elif "{" in upload:
        yield "upload", "is the local file to copy; it can't hold placeholders"
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        yield "args", f"must be a list of arguments (text or numbers), got {args!r}"
    yield from ((key, message) for key, message in _command({**entry, "command": ["x"]})
                if key != "command")  # fmt: skip


_KIND_CHECKS: dict[str, Callable[[Any], Iterable[tuple[str, str]]]] = {
    "command": _command,
    "http": _http,
    "tcp": _tcp,
    "python": _python,
    "ssh": _ssh,
}


def _check_env_names(what: str, kind: str, entry: Any, report: Report) -> None:
    """Each env name a runner would refuse, at its own line (ssh: POSIX names only)."""
    env = entry.get("env")
    if not isinstance(env, dict):
        return  # _command says so
    strict = kind == "ssh"
    pattern = _POSIX_ENV_NAME if strict else _ENV_NAME
    for name in env:
        if isinstance(name, str) and pattern.fullmatch(name):
            continue
        at = env.at(name) if hasattr(env, "at") else entry.at("env")
        rule = (
            "letters, digits and _, not starting with a digit"
            if strict
            else "not empty, without '=' or NUL"
        )
        shown = values.shown(name)
        report(at, f"{what}: env: {shown} can't be an environment variable's name ({rule})")


# -- placeholders where a value would be code ------------------------------------------------


def _check_command_code(what: str, entry: Any, report: Report) -> None:
    command = entry.get("command")
    at = entry.at("command")
    if isinstance(entry.get("upload"), str) and isinstance(entry.get("args", []), list):
        command, at = [entry["upload"], *entry.get("args", [])], entry.at("args")
    if entry.get("shell") is True and isinstance(command, str):
        problem = shell_problem(command)
        if problem:
            report(at, f"{what}: command: {problem}")
    elif isinstance(command, list):
        problem = argv_problem(tuple(as_text(arg) for arg in command))
        if problem:
            report(at, f"{what}: {problem}")


@functools.lru_cache(maxsize=1024)
def argv_problem(argv: tuple[str, ...]) -> str | None:
    """Why this argv template puts a placeholder where a value would be code, or None."""
    if not any("{" in arg for arg in argv):
        return None
    for index, why in sorted(codeargs.code_arguments(argv).items()):
        found = _placeholder_in(argv[index], why)
        if found is not None:
            return f"command[{index}] is {why}, where {found} {_fix(found, why)}"
    return None


def _placeholder_in(word: str, why: str) -> Placeholder | None:
    """The first placeholder in a code word; in a program position, the first var or param.

    A host name or address can't choose a program (they are checked to be
    plain names), so `/opt/checks/{host}.sh` may run; `{vars.tool}` may not.
    """
    for found, _ in find(word):
        if not why.startswith(codeargs.PROGRAM) or found.name in ("vars", "params"):
            return found
    return None


@functools.lru_cache(maxsize=1024)
def shell_problem(text: str) -> str | None:
    """Why this `shell: true` command can't take its placeholders safely, or None."""
    placeholders = list(find(text))
    if not placeholders:
        return None
    for found, match in placeholders:
        if codeargs.shell_quoting(text, match.start()) == "tangled":
            return (
                f"{found} follows a backquote, a heredoc, `$(` inside double quotes, `$'` or "
                f"`$((` in a shell command; it can't be passed safely there, use ${found.env}"
            )
    commands = codeargs.shell_words(text)
    if commands is None:
        return (
            f"the quoting of this shell command can't be followed (an open quote?), so "
            f"{placeholders[0][0]} can't be passed safely; use ${placeholders[0][0].env}"
        )
    for words in commands:
        for index, why in sorted(codeargs.shell_code(words).items()):
            in_code = _placeholder_in(words[index], why)
            if in_code is not None:
                return f"{in_code} is in {why} within the shell command; {_fix(in_code, why)}"
    return None


def _fix(found: Placeholder, why: str) -> str:
    if why.startswith(codeargs.PROGRAM):
        return "would choose what runs; name the program in the script itself"
    if "remote" in why:
        return (
            "would be run by the remote shell; keep values out of a remote command "
            "(a host name belongs in ssh's destination argument)"
        )
    reader = re.search(r"`(\S+)", why)
    if "shell" in why or (reader and reader.group(1) in codeargs.SHELLS | {"eval", "trap"}):
        return (
            f'would run as shell code; read it from the environment there ("${found.env}"), '
            f"or write the command as one string with shell: true, which quotes it"
        )
    return (
        f"would run as code; read it from the environment ({found.env}) or pass it as an "
        f"argument of its own"
    )


# -- every placeholder against the hosts and schedules it meets --------------------------------


@dataclass(frozen=True, slots=True)
class Needs:
    """What a script's placeholders ask of the host and the schedule it runs with."""

    vars: frozenset[str]
    params: frozenset[str]
    leading: tuple[Placeholder, ...]  # {vars.X}/{params.X} that start an argument

    def __bool__(self) -> bool:
        return bool(self.vars or self.params or self.leading)


def needs(script: Script) -> Needs:
    vars_, params, leading = set(), set(), []
    for text in texts(script.kind, script.params):
        for found, match in find(text.text):
            if found.name == "vars" and found.key is not None:
                vars_.add(found.key)
            elif found.name == "params" and found.key is not None:
                params.add(found.key)
            else:
                continue
            if _starts_a_word(script, text, match.start()) and found not in leading:
                leading.append(found)
    return Needs(frozenset(vars_), frozenset(params), tuple(leading))


def _starts_a_word(script: Script, text: Text, start: int) -> bool:
    if script.kind != "command" or text.key != "command":
        return False
    if text.index is not None:
        return start == 0 and text.index > 0
    before = text.text[:start].rstrip("'\"")
    return not before or before[-1] in " \t\n;&|()"


def leading_dash(value: Any) -> bool:
    """A value that would be read as an option at the start of an argument."""
    found = as_text(value)
    return found.startswith("-") and not _NUMBER.fullmatch(found)


def check_pairs(catalog: Catalog, report: Callable[[Location, str], None]) -> None:
    """Every placeholder of every pair's script (and repair) against its host and schedule."""
    wanted = {name: needs(script) for name, script in catalog.scripts.items()}
    wanted = {name: found for name, found in wanted.items() if found}
    if not wanted:
        return
    hosts = catalog.hosts
    missing: dict[tuple[int, str], tuple[Schedule, list[Host]]] = {}
    dashes: dict[tuple[str, str], tuple[Script, str, list[Host]]] = {}
    checked_schedules: set[int] = set()
    for pair in catalog.pairs:
        found = wanted.get(pair.audit_name)
        if found is None:
            continue
        schedule, host = pair.schedule, hosts[pair.host]
        script = catalog.scripts[pair.audit_name]
        if found.params and id(schedule) not in checked_schedules:
            checked_schedules.add(id(schedule))
            _check_params(script, found, schedule, report)
        for key in found.vars:
            if key not in host.vars:
                missing.setdefault((id(schedule), key), (schedule, []))[1].append(host)
        for placeholder in found.leading:
            var = placeholder.key  # never None in leading (needs() keeps only vars.X/params.X)
            if placeholder.name == "vars" and var is not None and leading_dash(host.vars.get(var)):
                dashes.setdefault((script.name, var), (script, str(placeholder),
                                  []))[2].append(host)  # fmt: skip
    for (_, key), (schedule, lacking) in missing.items():
        script = catalog.scripts[schedule.audit_name]
        report(
            lacking[0].where,
            f"host {lacking[0].name!r} has no var {key!r}, which script {script.name!r} "
            f"({script.where}) uses as {{vars.{key}}} for audit {schedule.audit_name!r} on "
            f"{schedule.target!r} ({schedule.where}){_more(lacking)}",
        )
    for script, shown, having in dashes.values():
        report(having[0].where, _dash_message(having, shown, script))
    _check_repairs(catalog, wanted, report)


def _check_params(script: Script, found: Needs, schedule: Schedule, report: Any) -> None:
    for key in sorted(found.params - schedule.params.keys()):
        report(
            schedule.where,
            f"audit {schedule.audit_name!r} on {schedule.target!r}: script {script.name!r} "
            f"({script.where}) uses {{params.{key}}}, which this entry's params do not give",
        )
    for placeholder in found.leading:
        param = placeholder.key  # never None in leading (needs() keeps only vars.X/params.X)
        if placeholder.name != "params" or param is None:
            continue
        if leading_dash(schedule.params.get(param)):
            report(
                schedule.where,
                f"audit {schedule.audit_name!r} on {schedule.target!r}: param "
                f"{param!r} = {as_text(schedule.params[param])!r} starts "
                f"with '-' where script {script.name!r} ({script.where}) starts an argument "
                f"with {placeholder}, so the command would read it as an option; write it as "
                f"--option={placeholder} or read it from the environment",
            )


def _check_repairs(catalog: Catalog, wanted: dict[str, Needs], report: Any) -> None:
    """A repair runs its script with the failing host and no params."""
    hosts_of: dict[str, list[str]] | None = None
    for rule in catalog.repairs.values():
        found = wanted.get(rule.run)
        if found is None:
            continue
        script = catalog.scripts[rule.run]
        for key in sorted(found.params):
            report(
                rule.where,
                f"repair {rule.name!r}: script {script.name!r} ({script.where}) uses "
                f"{{params.{key}}}, but a repair runs with no params",
            )
        if not (found.vars or found.leading):
            continue
        if hosts_of is None:
            hosts_of = defaultdict(list)
            for pair in catalog.pairs:
                hosts_of[pair.audit_name].append(pair.host)
        names = {h for audit, hs in hosts_of.items() if rule.matches(audit) for h in hs}
        for key in sorted(found.vars):
            lacking = sorted((catalog.hosts[n] for n in names if key not in catalog.hosts[n].vars),
                             key=lambda h: h.name)  # fmt: skip
            if lacking:
                report(
                    lacking[0].where,
                    f"host {lacking[0].name!r} has no var {key!r}, which repair {rule.name!r} "
                    f"({rule.where}) would use as {{vars.{key}}} in script {script.name!r} "
                    f"({script.where}){_more(lacking)}",
                )


def _dash_message(having: Sequence[Host], shown: str, script: Script) -> str:
    host = having[0]
    key = shown[len("{vars.") : -1]
    return (
        f"host {host.name!r}: var {key!r} = {as_text(host.vars[key])!r} starts with '-' where "
        f"script {script.name!r} ({script.where}) starts an argument with {shown}, so the "
        f"command would read it as an option; write it as --option={shown} or read it from "
        f"the environment{_more(having)}"
    )


def _more(hosts: Sequence[Host]) -> str:
    if len(hosts) < 2:
        return ""
    shown = ", ".join(repr(h.name) for h in hosts[1:4])
    rest = f" and {len(hosts) - 4} more" if len(hosts) > 4 else ""
    return f"; the same for {shown}{rest}"
