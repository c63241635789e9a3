"""Runtime: the config, the backend and the clock one command or request works on.

Made once, opened lazily: making one reads no file and opens no database;
the first use of `conf` reads the config and of `backend` opens it.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from ..backends import Backend, fetch
from ..clock import Clock, SystemClock
from ..config import load_conf, option
from ..events import Events
from ..ssh import settings as ssh_settings


class Runtime:
    def __init__(
        self,
        config_files: Sequence[str] = (),
        config_dirs: Sequence[str] = (),
        backend_url: str | None = None,
        clock: Clock | None = None,
        backend: Backend | None = None,
    ) -> None:
        """backend: one already open (a test's, the API's); else --backend or the config's."""
        self.config_files = tuple(config_files)
        self.config_dirs = tuple(config_dirs)
        self.backend_url = backend_url
        self.clock: Clock = clock or SystemClock()
        self.read_only = False  # set before first use by operations that only read
        self._backend = backend

    @property
    def backend(self) -> Backend:
        """The backend --backend (or the config) names; an error if its definitions are missing."""
        if self._backend is None:
            self._backend = fetch(self.conf, self.backend_url)
            self._backend.read_only = self.read_only
            self._backend.require_present()
        return self._backend

    @functools.cached_property
    def conf(self) -> cfg.ConfigOpts:
        if self._backend is not None:
            return self._backend.conf
        conf = load_conf(self.config_files, self.config_dirs)
        ssh_settings.use_conf(conf)  # [ssh] is read when the first ssh script runs
        return conf

    def option(self, name: str, group: str | None = None) -> Any:
        return option(self.conf, name, group)

    def open(self, url: str) -> Backend:
        """Another backend, by URL, on this runtime's config (import, export)."""
        return fetch(self.conf, url)

    def events(self) -> Events | None:
        """The event publisher [notifications] transport_url asks for, if any."""
        url = self.option("transport_url", "notifications")
        if not url:
            return None
        return Events(str(url), int(self.option("buffer_size", "notifications")))

    def close(self) -> str | None:
        """Close the backend; say why, when a read-only store read as empty (none was there)."""
        if self._backend is None:
            return None
        backend, self._backend = self._backend, None
        backend.close()
        return str(backend.no_state) if backend.no_state is not None else None


def actor(command: str) -> str:
    """Who runs this command, for the state store's memory: `entropy sync by USER@HOST`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid, e.g. in a container
        user = str(os.getuid())
    return f"entropy {command} by {user}@{socket.gethostname()}"
