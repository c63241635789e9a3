"""Checks of single values in the definitions: host names, addresses, names, plain data.

Each returns why a value is refused (a sentence for the operator) or None.
Host names reach argv, URLs and SSH; names reach database columns and
event routing keys; vars and params reach commands, JSON columns and the
environment. What passes here is safe in all of those places.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from datetime import date
from typing import Any

NAME_LIMIT = 255  # the state store's name columns
INT_LIMIT = 2**63  # what a database or JSON reader keeps exactly
TEXT_LIMIT = 64 * 1024  # characters of one text value
MAX_DEPTH = 64  # levels of lists and mappings, as in YAML files (entropy.yamlread)

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DNS_NAME = re.compile(rf"(?:{_LABEL.pattern}\.)*{_LABEL.pattern}\.?")  # the common case, fast
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                   r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")  # fmt: skip
_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # an interface name or number
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ZONE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_DNS_RULE = (
    "a host name must be a DNS name (labels of letters, digits and '-', each 1-63 "
    "characters, not starting or ending with '-', joined by dots; 253 characters at "
    "most) or an IP address"
)


def ip_address_problem(value: Any) -> str | None:
    """Why value is not an IPv4/IPv6 address (a scope such as %eth0 allowed)."""
    if not isinstance(value, str):  # ipaddress also takes ints: 10 -> 0.0.0.10
        return f"must be an IP address, got {shown(value)}"
    if _IPV4.fullmatch(value):
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"must be an IP address, got {shown(value)}"
    _, percent, scope = value.partition("%")
    if percent and not _SCOPE.fullmatch(scope):
        return f"must be an IP address, got {shown(value)}: the zone after % must be an interface"
    return None


def host_name_problem(name: Any) -> str | None:
    """Why name can't be a host's name: it must be a DNS name or an IP address.

    Checked because a host name is handed to commands, URLs and SSH: a name
    such as `$(touch x)`, `a;b` or `-oProxyCommand=x` must never get there.
    """
    if not isinstance(name, str) or not name:
        return f"host name must be text, got {shown(name)}"
    if (
        len(name) <= 254
        and _DNS_NAME.fullmatch(name)
        and len(name.rstrip(".")) <= 253
        and not name.rstrip(".").rpartition(".")[2].isdigit()
    ):
        return None
    if ip_address_problem(name) is None:
        return None
    what = f"host name {shown(name)}"
    if not name.isascii():
        return f"{what} is not ASCII; {_DNS_RULE}. Write an international name in its xn-- form"
    if len(name.rstrip(".")) > 253:
        return f"{what} is {len(name)} characters; {_DNS_RULE}"
    labels = (name[:-1] if name.endswith(".") else name).split(".")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if bad is not None:
        why = "an empty label" if bad == "" else f"the label {shown(bad)}"
        return f"{what} has {why}; {_DNS_RULE}"
    return f"{what} looks like an IP address but is not one; {_DNS_RULE}"


def shown(value: Any, limit: int = 80) -> str:
    """repr(value), cut to about `limit` characters: a 1 MB name must not make a 1 MB message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def name_problem(what: str, name: Any) -> str | None:
    """A script, group or repair name: text of 1-255 characters, no control characters."""
    if not isinstance(name, str) or not name:
        return f"{what} must be text, got {shown(name)}"
    if len(name) > NAME_LIMIT:
        return f"{what} {shown(name)} is longer than {NAME_LIMIT} characters"
    if _CONTROL.search(name):
        return f"{what} {shown(name)} has a control character"
    if not name.isascii():
        # U+202E and friends reorder what a terminal shows ("Trojan Source"), U+200B
        # hides; a name shown in status and logs must read as what it is.
        for char in name:
            if unicodedata.category(char) in _INVISIBLE:
                return (
                    f"{what} {shown(name)} has the invisible or reordering character "
                    f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"
                )
    return None


_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def zone_problem(zone: Any) -> str | None:
    """A zone names a queue on the broker (`entropy.jobs.<zone>`): one simple word."""
    if isinstance(zone, str) and _ZONE.fullmatch(zone):
        return None
    return (
        f"zone must be a simple name (letters, digits, '-' and '_', starting with a letter "
        f"or digit, 63 characters at most), got {shown(zone)}"
    )


def data_problem(value: Any, depth: int = 0) -> str | None:
    """Why value isn't plain data: text, numbers, true/false, null, lists and mappings of them.

    Everything else breaks somewhere later: a date or binary in a JSON
    column, NaN in PostgreSQL, a NUL byte in an argument or the environment,
    a key that is not text in `{vars.KEY}`, an integer no database keeps.
    """
    if value is None or isinstance(value, bool):
        return None
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        if len(value) > TEXT_LIMIT:
            return (
                f"text of {len(value):,} characters is longer than {TEXT_LIMIT:,} (a command "
                f"gets it as an argument or in its environment, 128 KiB at most each)"
            )
        return "has a NUL character" if "\x00" in value else None
    if isinstance(value, int):
        return None if -INT_LIMIT < value < INT_LIMIT else f"the number {value:.3g} is too large"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    if isinstance(value, list | tuple):
        for item in value:
            problem = data_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"the key {shown(key)} is not text (quote it)"
            problem = data_problem(key, depth + 1) or data_problem(item, depth + 1)
            if problem:
                return f"{shown(key)[1:-1] if len(key) > 78 else key}: {problem}"
        return None
    if isinstance(value, date):
        return f"{value} is a date; quote it to keep it as text"
    if isinstance(value, bytes):
        return "binary data is not supported; write it as text"
    return f"a {type(value).__name__} is not supported"
