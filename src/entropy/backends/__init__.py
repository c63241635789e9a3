"""Backends, loaded by entry point (group `entropy.backends`) through stevedore.

`fetch()` takes a backend name from the config or a URL from --backend:
`dir:PATH`, `file:PATH.yaml`, or (with the sqlalchemy backend installed)
`sqlite:///...`, `postgresql+psycopg://...`, `mysql+pymysql://...`. The
scheme picks the entry point, the rest is the location.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from oslo_config import cfg
from stevedore import DriverManager
from stevedore.exception import NoMatches

from ..config import option
from ..errors import BackendError
from .base import Backend

NAMESPACE = "entropy.backends"
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb")


def available() -> list[str]:
    """Names of the installed backends, without importing them."""
    return sorted({ep.name for ep in entry_points(group=NAMESPACE)})


def parse_backend_url(url: str) -> tuple[str, str | None]:
    """`dir:PATH` -> ('dir', PATH); `postgresql+psycopg://...` -> ('sqlalchemy', url)."""
    scheme, sep, rest = url.partition(":")
    if sep and scheme.split("+")[0] in _SQL_SCHEMES and rest.startswith("//"):
        return "sqlalchemy", url
    if sep and scheme and "/" not in scheme:
        return scheme, rest or None
    if not sep:
        path = Path(url).expanduser()
        if path.is_dir():
            return "dir", url
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            return "file", url
    return url, None


def fetch(conf: cfg.ConfigOpts, url: str | None = None) -> Backend:
    """The backend the URL (or else `entropy_backend` in the config) names, ready to use."""
    name, location = parse_backend_url(url) if url else (str(option(conf, "entropy_backend")), None)
    try:
        manager = DriverManager(
            NAMESPACE,
            name,
            invoke_on_load=True,
            invoke_args=(conf, location),
            on_load_failure_callback=_load_failed,
        )
    except NoMatches:
        raise BackendError(
            f"unknown backend {name!r}; available: {', '.join(available())}"
        ) from None
    return manager.driver


def _load_failed(_manager: object, entry_point: object, exc: Exception) -> None:
    raise BackendError(
        f"backend {getattr(entry_point, 'name', entry_point)!r} failed to load: {exc}"
    )
