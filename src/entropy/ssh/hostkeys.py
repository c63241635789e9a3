"""Host keys: checked against an OpenSSH known_hosts file, never accepted when changed.

A host's keys are looked up under its name in hosts.yaml and under the
address Entropy connects to (`[addr]:port` off port 22), as OpenSSH would
find them after `ssh NAME` or `ssh ADDRESS`. A key that matches is used. A
host with no key there is unknown: refused, unless accept_new_host_keys
records the key it shows (OpenSSH's StrictHostKeyChecking=accept-new). A
host with keys there none of which match has changed: always refused.

Used on the SSH loop's thread only; the file is re-read when it changes.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from .failures import HOST_KEY, SshFailure
from .settings import Target

_EMPTY: Any = ((), (), (), (), (), (), ())  # asyncssh's match result with nothing in it


class KnownHosts:
    """One known_hosts file, parsed once per change of its size or mtime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._parsed: Any = None

    def match(self, target: Target) -> Any:
        """asyncssh's 7-tuple (host keys, CA keys, revoked keys, x509 ...) for target."""
        parsed = self._load()
        if parsed is None:
            return _EMPTY
        port = None if target.port == 22 else target.port
        if _is_ip(target.address):
            return parsed.match(target.name or target.address, target.address, port)
        # asyncssh matches addr as an IP only: look a DNS name up as a second host name.
        found = [parsed.match(name, "", port) for name in {target.name, target.address} if name]
        return tuple([item for result in found for item in result[i]] for i in range(7))

    def _load(self) -> Any:
        import asyncssh

        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._parsed = None, None
            return None
        except OSError as exc:
            why = f"cannot read known_hosts {self.path}: {exc.strerror}"
            raise SshFailure(HOST_KEY, why) from None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self._parsed = asyncssh.read_known_hosts(str(self.path))
            except (OSError, ValueError) as exc:
                raise SshFailure(HOST_KEY, f"cannot read known_hosts {self.path}: {exc}") from None
            self._stamp = stamp
        return self._parsed

    def record(self, target: Target, key: Any) -> None:
        """Append key for target's name and address, the way ssh's accept-new does."""
        names = dict.fromkeys(n for n in (target.name, target.address) if n)
        if target.port != 22:
            names = {f"[{n}]:{target.port}": None for n in names}
        algorithm, data = key.export_public_key().decode().split()[:2]
        line = f"{','.join(names)} {algorithm} {data}\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())  # one write with O_APPEND: engines don't interleave
        finally:
            os.close(fd)
        self._stamp = None


class HostKeyCheck:
    """What one connection attempt saw of its server's key (asyncssh calls validate)."""

    def __init__(self, target: Target, known: KnownHosts, accept_new: bool) -> None:
        self.target = target
        self.known = known
        self.accept_new = accept_new
        self.matched = known.match(target)
        self.has_keys = bool(self.matched[0] or self.matched[1])
        self.shown: Any = None  # the key the server showed, when none matched
        self.accepted: Any = None  # a first-seen key to record once the login succeeds

    def known_hosts(self, host: str, addr: str, port: int | None) -> Any:
        """asyncssh's known_hosts callable: our match, whatever name asyncssh looked up."""
        return self.matched

    def validate(self, key: Any) -> bool:
        """Called by asyncssh only for a key that matched nothing trusted."""
        self.shown = key
        if not self.has_keys and self.accept_new:
            self.accepted = key
            return True
        return False

    def remember(self) -> None:
        """After a successful login: record the first-seen key accept-new let through."""
        if self.accepted is not None:
            self.known.record(self.target, self.accepted)
            self.accepted = None

    def failure(self) -> SshFailure | None:
        """Why the server's key was refused (unknown or changed), if it was."""
        if self.shown is None or self.accepted is not None:
            return None
        shown = f"{self.shown.algorithm.decode()} {self.shown.get_fingerprint()}"
        path = self.known.path
        if self.has_keys:
            return SshFailure(
                HOST_KEY,
                f"{self.target}: host key CHANGED: it shows {shown}, which does not match "
                f"its key in {path}; refused (if the change is expected, remove the old key "
                f"with `ssh-keygen -f {path} -R {_pattern(self.target)}`)",
            )
        return SshFailure(
            HOST_KEY,
            f"{self.target}: unknown host key {shown}: not in {path}; refused (check it "
            "and add it to known_hosts, or set [ssh] accept_new_host_keys = true)",
        )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _pattern(target: Target) -> str:
    name = target.name or target.address
    return name if target.port == 22 else f"'[{name}]:{target.port}'"
