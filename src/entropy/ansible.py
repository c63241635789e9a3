"""Ansible inventories -> Entropy hosts, without Ansible: `entropy import ansible:INVENTORY DST`.

Reads the three forms operators keep: a static YAML inventory, an INI one,
or the JSON of `ansible-inventory --list` (a file, or `-` for stdin; told
apart by content). Each host becomes:

- ip_address: `ansible_host` (or the inventory name) when it is an IP
  address; a DNS name is resolved now and kept as `ssh.address`;
- ssh: `ansible_user`, `ansible_port` and a ProxyJump found in
  `ansible_ssh_common_args`/`ansible_ssh_extra_args` (`-J`, `-o ProxyJump=`,
  or `-o ProxyCommand="ssh -W %h:%p bastion"`);
- host_type: `entropy_host_type` if set, else the first group that lists it
  (in inventory order); groups: its other groups, parents of nested
  `children` included (`all` and `ungrouped` are not groups in Entropy);
- vars: every other variable, merged the way Ansible merges them (`all`,
  then parent groups before children, then the host's own).

Problems are collected and reported at their inventory line (YAML, INI) or
key path (JSON), like every other definitions problem.

Nothing in an inventory runs: an executable inventory script is refused
(pipe `ansible-inventory -i SCRIPT --list` into `ansible:-` instead). A
hostile inventory is bounded: its size (MAX_BYTES), its hosts once ranges
are expanded (MAX_HOSTS), its groups (MAX_GROUPS) and how deep they nest
(MAX_GROUP_DEPTH), JSON nesting, and the time DNS names may take to resolve
(RESOLVE_BUDGET, looked up RESOLVERS at a time).
"""

from __future__ import annotations

import ast
import functools
import ipaddress
import json
import os
import queue
import re
import shlex
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .definitions import MarkedMap, Problems, marked, parse_hosts, read_yaml
from .errors import ConfigError, Location
from .model import Host, parse_jump
from .regularfile import describe_os_error, open_regular
from .yamlread import new_map

MAX_BYTES = 256 * 1024 * 1024  # an inventory file (or stdin)
MAX_HOSTS = 1_000_000  # hosts, ranges expanded
MAX_GROUPS = 100_000
MAX_GROUP_DEPTH = 64  # levels of children, as YAML's nesting (entropy.yamlread)
RESOLVE_BUDGET = 30.0  # seconds all DNS look-ups may take together
RESOLVERS = 32  # look-ups at a time

_IMPLICIT = ("all", "ungrouped")
_GROUP_KEYS = frozenset({"hosts", "vars", "children"})
_MAPPED = frozenset({
    "ansible_host", "ansible_ssh_host", "ansible_user", "ansible_ssh_user",
    "ansible_port", "ansible_ssh_port", "entropy_host_type",
})  # fmt: skip
_SSH_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
_RANGE = re.compile(r"^(.*?)\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\](.*)$")
_PORT = re.compile(r"[0-9]{1,5}")
_INI_SECTION = re.compile(r"^\[([^\]:]+)(?::(vars|children))?\]\s*$")


@dataclass
class _Group:
    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inventory:
    """What an inventory says, before it is read as Entropy hosts."""

    source: str
    groups: dict[str, _Group] = field(default_factory=dict)
    hostvars: dict[str, dict[str, Any]] = field(default_factory=dict)  # in first-seen order
    where: dict[str, tuple[int, int]] = field(default_factory=dict)  # host -> (line, col)

    def group(self, name: str) -> _Group:
        return self.groups.setdefault(name, _Group(name))

    def group_room(self, name: str) -> bool:
        """Whether group `name` is known or may still be added (MAX_GROUPS)."""
        return name in self.groups or len(self.groups) < MAX_GROUPS

    def add_host(
        self, group: str, name: str, hostvars: dict[str, Any], at: tuple[int, int]
    ) -> None:
        self.where.setdefault(name, at)
        self.hostvars.setdefault(name, {}).update(hostvars)
        members = self.group(group).hosts
        if name not in members:
            members.append(name)


def read(spec: str, problems: Problems) -> tuple[dict[str, Host], list[str]]:
    """The hosts of inventory `spec` (a path, or - for stdin), and warnings to show.

    Problems are recorded in `problems`; the caller raises them.
    """
    try:
        text, source = _text(spec)
    except ConfigError as exc:
        problems.items.append(exc)
        return {}, []
    inventory = Inventory(source)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        _read_json(text, inventory, problems)
    else:
        doc = _yaml(text, source, problems)
        if isinstance(doc, MarkedMap):  # read_yaml makes every mapping one
            _read_yaml(doc, inventory, problems)
        elif problems.items:
            return {}, []
        else:  # not YAML mappings: the INI form (as Ansible, which tries YAML first)
            _read_ini(text, inventory, problems)
    if len(inventory.groups) >= MAX_GROUPS:
        problems.report(Location(source), f"more than {MAX_GROUPS:,} groups; not read further")
    if problems.items:  # a bound crossed, a range or a cycle: the hosts would be partial
        return {}, []
    return _hosts(inventory, problems)


def _text(spec: str) -> tuple[str, str]:
    if spec == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
        return _decoded(data, "<stdin>"), "<stdin>"
    path = Path(spec).expanduser()
    where = Location(str(path))
    try:
        with open_regular(path) as stream:  # a FIFO or /dev/zero: refused, not read for ever
            if _is_script(stream):
                raise ConfigError(where, _SCRIPT.format(path=path))
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(where, "inventory not found") from None
    except OSError as exc:
        raise ConfigError(where, f"cannot read the inventory: {describe_os_error(exc)}") from None
    return _decoded(data, str(path)), str(path)


_SCRIPT = (
    "is an executable inventory script; Entropy never runs one. Run it through Ansible and "
    "import what it prints: ansible-inventory -i {path} --list | entropy import ansible:- DST"
)


def _is_script(stream: Any) -> bool:
    """An executable file starting with #!: a dynamic inventory, which Ansible would run."""
    mode = os.fstat(stream.fileno()).st_mode
    if not mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return False
    start = stream.read(2)
    stream.seek(0)
    return start == b"#!"


def _decoded(data: bytes, source: str) -> str:
    if len(data) > MAX_BYTES:
        raise ConfigError(Location(source), f"the inventory is larger than {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            Location(source), f"not UTF-8 text ({exc.reason} at byte {exc.start:,})"
        ) from None


def _yaml(text: str, source: str, problems: Problems) -> Any:
    """The YAML document (with line marks), or None when the text is not YAML at all."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as spool:
        spool.write(text)  # read_yaml takes a path: its limits and marks apply to stdin too
    try:
        return read_yaml(Path(spool.name))
    except ConfigError as exc:
        if source.endswith((".yaml", ".yml")):  # meant as YAML: say where it broke
            problems.add(source, (exc.where.line, exc.where.col), exc.message)
        return None  # else INI, whose reader says where anything is wrong
    finally:
        os.unlink(spool.name)


# -- the three forms -------------------------------------------------------------------------


def _read_yaml(doc: MarkedMap, inventory: Inventory, problems: Problems) -> None:
    for name, body in doc.items():
        _yaml_group(str(name), body, doc.at(name), inventory, problems, ())


def _yaml_group(
    name: str,
    body: Any,
    at: tuple[int, int],
    inventory: Inventory,
    problems: Problems,
    parents: tuple[str, ...],
) -> None:
    source = inventory.source
    if not inventory.group_room(name):
        return  # read() says the inventory has too many groups
    group = inventory.group(name)
    if name in parents:
        problems.add(source, at, f"group {name!r} is its own child ({' > '.join(parents)})")
        return
    if body is None:
        return
    if not isinstance(body, MarkedMap):
        problems.add(source, at, f"group {name!r} must be a mapping of hosts, vars, children")
        return
    for key in body:
        if key not in _GROUP_KEYS:
            allowed = "allowed: children, hosts, vars"
            problems.add(source, body.at(key), f"unknown key {key!r} in group {name!r} ({allowed})")
    group.vars.update(_mapping(body.get("vars"), f"group {name!r}: vars", body.at("vars", at),
                               source, problems))  # fmt: skip
    hosts = body.get("hosts") or new_map(at)
    if not isinstance(hosts, MarkedMap):
        problems.add(source, body.at("hosts", at), f"group {name!r}: hosts must be a mapping")
        hosts = new_map(at)
    for pattern, hostvars in hosts.items():
        place = hosts.at(pattern)
        found = _mapping(hostvars, f"host {pattern!r}: vars", place, source, problems)
        for host in _expand(str(pattern), place, inventory, problems):
            inventory.add_host(name, host, found, place)
    children = body.get("children") or new_map(at)
    if not isinstance(children, MarkedMap):
        problems.add(source, body.at("children", at), f"group {name!r}: children must be a mapping")
        return
    for child, child_body in children.items():
        if str(child) not in group.children:
            group.children.append(str(child))
        _yaml_group(str(child), child_body, children.at(child), inventory, problems,
                    (*parents, name))  # fmt: skip


def _read_ini(text: str, inventory: Inventory, problems: Problems) -> None:
    source = inventory.source
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        at = (number, 1)
        header = _INI_SECTION.match(line)
        if header:
            section, kind = header.group(1).strip(), header.group(2) or "hosts"
            if not inventory.group_room(section):
                return  # read() says the inventory has too many groups
            inventory.group(section)
            continue
        if line.startswith("["):
            problems.add(source, at, f"not a section header: {line!r} (expected [group], "
                         "[group:vars] or [group:children])")  # fmt: skip
            continue
        if kind == "children":
            child = line.split()[0]
            if not inventory.group_room(child):
                return
            if child not in inventory.group(section).children:
                inventory.group(section).children.append(child)
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            problems.add(source, at, f"cannot read {line!r}: {exc}")
            continue
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                problems.add(source, at, f"[{section}:vars] lines are key=value, got {line!r}")
                continue
            inventory.group(section).vars[key.strip()] = _literal(value.strip())
            continue
        pattern, *assignments = tokens
        hostvars: dict[str, Any] = {}
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep or not key:
                problems.add(source, at, f"host {pattern!r}: {item!r} is not key=value")
                break
            hostvars[key] = _literal(value)
        else:
            pattern, port = _host_port(pattern)
            if port is not None:
                hostvars.setdefault("ansible_port", port)
            for host in _expand(pattern, at, inventory, problems):
                inventory.add_host(section, host, hostvars, at)


def _read_json(text: str, inventory: Inventory, problems: Problems) -> None:
    source = inventory.source
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.add(source, (exc.lineno, exc.colno), f"invalid JSON: {exc.msg}")
        return
    except RecursionError:
        problems.report(Location(source), "invalid JSON: nested too deep")
        return
    if not isinstance(doc, dict):
        problems.add(source, (1, 1), "ansible-inventory JSON must be an object of groups")
        return
    meta = doc.get("_meta") or {}
    hostvars = meta.get("hostvars") or {} if isinstance(meta, dict) else None
    if not isinstance(hostvars, dict):
        problems.report(Location(source), "_meta.hostvars must be an object of hosts")
        hostvars = {}
    for name, body in doc.items():
        if name == "_meta":
            continue
        where = f"group {name!r}"
        if isinstance(body, list):  # the oldest form: a group is its list of hosts
            body = {"hosts": body}
        if not isinstance(body, dict):
            problems.report(Location(source), f"{where} must be an object")
            continue
        if not inventory.group_room(name):
            return  # read() says the inventory has too many groups
        group = inventory.group(name)
        for key, kind in (("hosts", list), ("children", list), ("vars", dict)):
            if not isinstance(body.get(key, kind()), kind):
                problems.report(Location(source), f"{where}: {key} must be a {kind.__name__}")
                body = {**body, key: kind()}
        group.vars.update(body.get("vars", {}))
        group.children.extend(str(c) for c in body.get("children", []))
        for host in body.get("hosts", []):
            if len(inventory.hostvars) >= MAX_HOSTS:
                problems.report(Location(source), f"more than {MAX_HOSTS:,} hosts")
                return
            inventory.add_host(name, str(host), {}, (0, 0))
    for host, found in hostvars.items():
        if len(inventory.hostvars) >= MAX_HOSTS and str(host) not in inventory.hostvars:
            problems.report(Location(source), f"more than {MAX_HOSTS:,} hosts")
            return
        if not isinstance(found, dict):
            problems.report(Location(source), f"_meta.hostvars[{host!r}] must be an object")
            continue
        inventory.where.setdefault(str(host), (0, 0))
        inventory.hostvars.setdefault(str(host), {}).update(found)


# -- inventory -> hosts --------------------------------------------------------------------


def _hosts(inventory: Inventory, problems: Problems) -> tuple[dict[str, Host], list[str]]:
    """Every host with its groups and merged vars, checked by hosts.yaml's own parser."""
    source = inventory.source
    parents = _parents(inventory, problems)
    if problems.items:
        return {}, []
    ancestors = functools.lru_cache(maxsize=None)(functools.partial(_ancestors, parents=parents))
    order = {name: i for i, name in enumerate(inventory.groups)}
    depth = {name: len(ancestors(name)) for name in inventory.groups}
    direct: dict[str, list[str]] = {host: [] for host in inventory.hostvars}
    for group in inventory.groups.values():
        for host in group.hosts:
            direct[host].append(group.name)
    found = []
    for name, own in inventory.hostvars.items():
        groups = list(dict.fromkeys(
            g for d in direct[name] for g in (d, *ancestors(d)) if g not in _IMPLICIT
        ))  # fmt: skip
        merged: dict[str, Any] = (
            dict(inventory.groups["all"].vars) if "all" in inventory.groups else {}
        )
        for group_name in sorted(set(groups) | {"ungrouped"} & set(direct[name]),
                                 key=lambda g: (depth.get(g, 0), order.get(g, 0))):  # fmt: skip
            merged.update(inventory.groups[group_name].vars)
        merged.update(own)
        found.append((name, merged, groups))
    resolved = _resolve_all(
        list(dict.fromkeys(a for n, m, _ in found if _ip(a := _address(m, n)) is None))
    )
    entries, warnings = [], []
    for name, merged, groups in found:
        at = inventory.where.get(name, (0, 0))
        entry, warned = _entry(name, merged, groups, at, source, problems, resolved)
        warnings += warned
        if entry is not None:
            entries.append((name, entry, at))
    hosts = parse_hosts(marked(entries), source, problems) if entries else {}
    return hosts, warnings


def _entry(
    name: str, found: dict[str, Any], groups: list[str], at: tuple[int, int], source: str,
    problems: Problems, resolved: dict[str, str | None],
) -> tuple[dict[str, Any] | None, list[str]]:  # fmt: skip
    what = f"host {name!r}"
    warnings: list[str] = []
    host_type = found.get("entropy_host_type") or (groups[0] if groups else "ungrouped")
    address = _address(found, name)
    ssh: dict[str, Any] = {}
    ip = _ip(address)
    if ip is None:
        ip = resolved.get(address)
        if ip is None:
            why = (
                "does not resolve to one"
                if address in resolved
                else (f"was not resolved within {RESOLVE_BUDGET:g}s (all look-ups together)")
            )
            problems.add(source, at, f"{what}: {address!r} is not an IP address and {why}; "
                         "set ansible_host to its IP address")  # fmt: skip
            return None, warnings
        ssh["address"] = address
    user = found.get("ansible_user") or found.get("ansible_ssh_user")
    if user:
        ssh["user"] = str(user)
    port = found.get("ansible_port") or found.get("ansible_ssh_port")
    if port is not None:  # the host parser says if it is bad
        ssh["port"] = int(port) if _PORT.fullmatch(str(port)) else port
    other = {k: v for k, v in found.items() if k not in _MAPPED}
    for key in _SSH_ARGS:
        if key not in other:
            continue
        try:
            jump, rest = _jump(str(other[key]))
        except ValueError as exc:
            problems.add(source, at, f"{what}: {key}: {exc}")
            return None, warnings
        if jump:
            ssh["jump"] = jump
            if rest:
                other[key] = shlex.join(rest)
                warnings.append(f"{source}: {what}: {key}: kept as a var; only ProxyJump is "
                                f"used by Entropy, not {shlex.join(rest)}")  # fmt: skip
            else:
                del other[key]
    rest_groups = [g for g in groups if g != host_type]
    entry: dict[str, Any] = {"ip_address": ip, "host_type": str(host_type), "groups": rest_groups,
                             "vars": other}  # fmt: skip
    if ssh:
        entry["ssh"] = ssh
    return entry, warnings


def _parents(inventory: Inventory, problems: Problems) -> dict[str, list[str]]:
    """child -> its parent groups; a child that names no known group becomes an empty one."""
    parents: dict[str, list[str]] = {}
    for group in list(inventory.groups.values()):
        for child in group.children:
            inventory.group(child)
            parents.setdefault(child, []).append(group.name)
    for name, problem in _chain_problems(inventory.groups, parents):
        problems.report(Location(inventory.source), f"group {name!r} {problem}")
    return parents


def _chain_problems(groups: dict[str, Any], parents: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Groups that are their own ancestors, or nest deeper than MAX_GROUP_DEPTH.

    One depth-first walk over the children graph (linear in groups and
    links): a group's height is 1 + its highest parent's.
    """
    height: dict[str, int] = {}
    on_path: set[str] = set()
    found: list[tuple[str, str]] = []
    for start in groups:
        if start in height:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(parents.get(start, ())))]
        on_path.add(start)
        while stack:
            name, todo = stack[-1]
            parent = next(todo, None)
            if parent is None:
                stack.pop()
                on_path.discard(name)
                height[name] = 1 + max((height.get(p, 0) for p in parents.get(name, ())),
                                       default=0)  # fmt: skip
                continue
            if parent in on_path:
                found.append((parent, "is its own ancestor through children"))
                return found
            if parent not in height:
                if len(stack) >= MAX_GROUP_DEPTH:
                    found.append((start, f"nests deeper than {MAX_GROUP_DEPTH} levels of children"))
                    return found
                on_path.add(parent)
                stack.append((parent, iter(parents.get(parent, ()))))
        if height[start] > MAX_GROUP_DEPTH:
            found.append((start, f"nests deeper than {MAX_GROUP_DEPTH} levels of children"))
            return found
    return found


def _ancestors(name: str, parents: dict[str, list[str]]) -> tuple[str, ...]:
    """Every ancestor group of name, nearest first (breadth first); no cycles (see above)."""
    found: dict[str, None] = {}
    todo = list(parents.get(name, []))
    index = 0
    while index < len(todo):
        parent = todo[index]
        index += 1
        if parent not in found:
            found[parent] = None
            todo.extend(parents.get(parent, []))
    return tuple(found)


def _jump(args: str) -> tuple[str | None, list[str]]:
    """(ProxyJump spec, the other ssh arguments) of ansible_ssh_common_args."""
    tokens = shlex.split(args)
    jump, rest = None, []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        value = None
        if token == "-J" and i + 1 < len(tokens):
            value, i = tokens[i + 1], i + 1
        elif token.startswith("-J") and len(token) > 2:
            value = token[2:]
        elif token in ("-o", "-O") and i + 1 < len(tokens):
            value = _option_jump(tokens[i + 1])
            if value is None:
                rest += tokens[i : i + 2]
            i += 1
        elif token.startswith("-o") and len(token) > 2:
            value = _option_jump(token[2:])
            if value is None:
                rest.append(token)
        else:
            rest.append(token)
        if value is not None:
            jump = value
        i += 1
    if jump is not None:
        parse_jump(jump)  # ValueError naming what is wrong
    return jump, rest


def _option_jump(option: str) -> str | None:
    key, _, value = option.replace("=", " ", 1).partition(" ")
    value = value.strip()
    if key.lower() == "proxyjump":
        return value
    if key.lower() == "proxycommand":
        return _proxy_command(value)
    return None


def _proxy_command(command: str) -> str | None:
    """`ssh [-q] [-p P] [-l U] -W %h:%p [user@]host` as a jump spec; None if it is not that."""
    tokens = shlex.split(command)
    if not tokens or os.path.basename(tokens[0]) != "ssh" or "-W" not in tokens:
        return None
    user = port = host = None
    i = 1
    while i < len(tokens):
        token = tokens[i]
        if token in ("-p", "-l", "-W") and i + 1 < len(tokens):
            if token == "-p":
                port = tokens[i + 1]
            elif token == "-l":
                user = tokens[i + 1]
            i += 2
            continue
        if token.startswith("-"):
            if token not in ("-q", "-T", "-N", "-4", "-6", "-C"):
                return None  # options we could not honour: leave the var as it is
        else:
            host = token
        i += 1
    if host is None:
        return None
    if user and "@" not in host:
        host = f"{user}@{host}"
    return f"{host}:{port}" if port else host


# -- small readers -----------------------------------------------------------------------


def _mapping(
    value: Any, what: str, at: tuple[int, int], source: str, problems: Problems
) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    problems.add(source, at, f"{what} must be a mapping")
    return {}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _expand(
    pattern: str, at: tuple[int, int], inventory: Inventory, problems: Problems
) -> Iterator[str]:
    """`web[01:03].example.com` -> web01..., `db-[a:c]` -> db-a..., with a step if given.

    Counted before any is made: `w[0:99999999]` or `a[0:999]b[0:999]c[0:999]`
    must not take gigabytes or hours (MAX_HOSTS in all).
    """
    source = inventory.source
    ranges = []
    rest = pattern
    while (match := _RANGE.match(rest)) is not None:
        head, start, end, step, rest = match.groups()
        items = _range(start, end, step)
        if isinstance(items, str):
            what = f"host range {pattern!r}" + ("" if items == "is empty" else f": [{start}:{end}]")
            problems.add(source, at, f"{what} {items}")
            return
        ranges.append((head, items))
    if not ranges:
        yield pattern
        return
    count = 1
    for _, items in ranges:
        count *= len(items)
    room = MAX_HOSTS - len(inventory.hostvars)
    if count > room:
        problems.add(source, at, f"host range {pattern!r} makes {count:,} hosts; an inventory "
                     f"may hold {MAX_HOSTS:,} in all")  # fmt: skip
        return
    yield from _combine(ranges, rest)


def _range(start: str, end: str, step: str | None) -> range | list[str] | str:
    """The items of [start:end:step], or why there are none."""
    stride = int(step or 1) if len(step or "1") < 10 else 0
    if stride < 1:
        return f"has step {step}; give a step from 1"
    if start.isdigit() and end.isdigit() and max(len(start), len(end)) <= 18:
        first, last = int(start), int(end)
        if first > last:
            return "is empty"
        width = len(start) if start.startswith("0") else 0
        return (
            [str(n).zfill(width) for n in range(first, last + 1, stride)]
            if ((last - first) // stride < MAX_HOSTS)
            else range(first, last + 1, stride)
        )
    if len(start) == len(end) == 1 and start.isalpha() and end.isalpha():
        if start > end:
            return "is empty"
        return [chr(c) for c in range(ord(start), ord(end) + 1, stride)]
    return "is not a range"


def _combine(ranges: list[tuple[str, Any]], tail: str) -> Iterator[str]:
    """Each name the ranges make, in order (the first range varies slowest)."""
    head, items = ranges[0]
    for item in items:
        if len(ranges) == 1:
            yield f"{head}{item}{tail}"
        else:
            yield from (f"{head}{item}{name}" for name in _combine(ranges[1:], tail))


def _host_port(pattern: str) -> tuple[str, int | None]:
    """INI's `host:2222` (not an IPv6 address, not a range)."""
    name, sep, port = pattern.rpartition(":")
    if sep and port.isdigit() and name.count(":") == 0 and not name.endswith("]"):
        return name, int(port)
    return pattern, None


def _literal(value: str) -> Any:
    """INI values are Python literals when they read as one, else text (as Ansible reads them)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _address(found: dict[str, Any], name: str) -> str:
    return str(found.get("ansible_host") or found.get("ansible_ssh_host") or name)


def _resolve_all(names: list[str]) -> dict[str, str | None]:
    """name -> its first address (None: it does not resolve); names not looked up within
    RESOLVE_BUDGET are left out. RESOLVERS daemon threads, so a look-up that never ends
    holds neither the import nor the process's exit."""
    results: dict[str, str | None] = {}
    if not names:
        return results
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in names:
        todo.put(name)
    done = threading.Event()
    lock = threading.Lock()

    def work() -> None:
        while not done.is_set():
            try:
                name = todo.get_nowait()
            except queue.Empty:
                return
            address = _resolve(name)
            with lock:
                results[name] = address
                if len(results) == len(names):
                    done.set()

    for _ in range(min(RESOLVERS, len(names))):
        threading.Thread(target=work, name="ansible-resolve", daemon=True).start()
    done.wait(RESOLVE_BUDGET)
    done.set()
    with lock:
        return dict(results)


def _resolve(name: str) -> str | None:
    try:
        found = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError, ValueError):
        return None
    return str(found[0][4][0]) if found else None
