"""The [ssh] options, and the Target a host is reached at (also the pool's key)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import option
from ..errors import EntropyError
from ..model import Host, parse_jump


@dataclass(frozen=True, slots=True)
class SshSettings:
    """[ssh] in entropy.conf, read once per process (see `from_conf`)."""

    user: str = ""  # "" = the user the engine runs as
    port: int = 22
    identity_files: tuple[str, ...] = ()
    known_hosts: str = "~/.ssh/known_hosts"
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    keepalive_interval: float = 30.0
    keepalive_count_max: int = 3
    max_connections: int = 1000
    max_sessions_per_host: int = 10
    idle_timeout: float = 300.0
    config_file: str | None = None
    upload_dir: str = ".cache/entropy/uploads"

    @classmethod
    def from_conf(cls, conf: Any) -> SshSettings:
        """[ssh] as set; a bad value is an EntropyError naming the option."""
        # Any: each value has its option's type (oslo.config checked it), one per field.
        values: dict[str, Any] = {name: option(conf, name, "ssh") for name in cls.__slots__}
        values["user"] = values["user"] or ""
        values["identity_files"] = tuple(values["identity_files"] or ())
        return cls(**values)

    @property
    def default_user(self) -> str:
        return self.user or _local_user()

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts).expanduser()


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): what OpenSSH would say too
        raise EntropyError("no [ssh] user is set and the local user has no name") from None


@dataclass(frozen=True, slots=True)
class Target:
    """Where one connection goes: the pool's key, and the known_hosts names to check."""

    address: str
    port: int
    user: str
    jump: Target | None = None
    name: str = ""  # the host's name in hosts.yaml (also looked up in known_hosts)

    def __str__(self) -> str:
        where = f"[{self.address}]" if ":" in self.address else self.address
        shown = f"{self.user}@{where}:{self.port}"
        return f"{shown} via {self.jump}" if self.jump else shown

    @property
    def key(self) -> tuple[str, int, str, Any]:
        """What makes two targets share one connection: address, port, user, jump."""
        return (self.address, self.port, self.user, None if self.jump is None else self.jump.key)


def target_for(host: Host, settings: SshSettings) -> Target:
    """Where host is reached: its ssh: entry, else its ip_address and the [ssh] defaults."""
    ssh = host.ssh
    user = (ssh and ssh.user) or settings.default_user
    jump = None
    if ssh is not None and ssh.jump:
        for hop_user, hop_host, hop_port in parse_jump(ssh.jump):
            hop_user = hop_user or settings.default_user
            jump = Target(hop_host, hop_port or settings.port, hop_user, jump, name=hop_host)
    return Target(
        (ssh and ssh.address) or host.ip_address,
        (ssh and ssh.port) or settings.port,
        user,
        jump,
        name=host.name,
    )


_conf: Any = None  # the ConfigOpts the CLI loaded; read when the first ssh job needs it


def use_conf(conf: Any) -> None:
    """Let the ssh client read [ssh] from conf when it is first needed (cheap: reads nothing)."""
    global _conf
    _conf = conf


def configured() -> SshSettings:
    """[ssh] from the conf given to use_conf, or the defaults when there is none."""
    return SshSettings() if _conf is None else SshSettings.from_conf(_conf)
