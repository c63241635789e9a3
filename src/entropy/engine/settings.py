"""What an engine is told: EngineSettings, with the config's defaults (config.py says them once)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from ..config import default, engine_id, lease_settings, number


def _conf(name: str) -> Any:
    """The config option's declared default (config.py), not a number restated here."""
    return field(default=default(name))


@dataclass(frozen=True, slots=True)
class EngineSettings:
    engine_id: str
    max_workers: int = _conf("max_workers")
    default_timeout: float = _conf("default_timeout")
    shutdown_grace: float = _conf("shutdown_grace")
    result_retention: float = _conf("result_retention")
    lease: float = _conf("claim_lease")  # seconds a claim lasts unless a heartbeat renews it
    heartbeat_interval: float = _conf("heartbeat_interval")
    max_clock_skew: float = _conf("max_clock_skew")  # how far engines' clocks may differ
    hostname: str = ""
    pid: int = 0
    # The engine's own tuning, not in the config:
    flush_interval: float = 0.05  # how long results may wait to be written together
    flush_size: int = 1000
    result_queue_size: int = 10_000  # finished results waiting for the recorder, at most

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, max_workers: int | None = None) -> EngineSettings:
        """Every setting the config has, read from it (max_workers overrides the config's)."""
        lease, beat, skew = lease_settings(conf)  # checked against each other
        return cls(
            engine_id=engine_id(conf),
            max_workers=max_workers or int(number(conf, "max_workers")),
            default_timeout=number(conf, "default_timeout"),
            shutdown_grace=number(conf, "shutdown_grace"),
            result_retention=number(conf, "result_retention"),
            lease=lease,
            heartbeat_interval=beat,
            max_clock_skew=skew,
            hostname=socket.gethostname(),
            pid=os.getpid(),
        )
