"""Backends, loaded by entry point through stevedore: a definitions source plus a state store.

`fetch()` takes a backend name from the config or a URL from --backend:
`dir:PATH`, `file:PATH.yaml`, `memory:[NAME]`, a database URL for the
sqlalchemy backend (`sqlite:///...`, `postgresql+psycopg://...`,
`mysql+pymysql://...`) or `mongodb://...` for the mongodb backend. The
scheme picks the definitions source (group `entropy.backends`); the source
names the URL of its state store, whose scheme picks the store (group
`entropy.state_stores`, see base.open_state_store).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from oslo_config import cfg
from stevedore import DriverManager
from stevedore.exception import NoMatches

from ..config import option
from ..errors import BackendError
from .base import Backend, Capability, DefinitionsSource, StateStore, open_state_store

__all__ = [
    "Backend",
    "Capability",
    "DefinitionsSource",
    "StateStore",
    "available",
    "fetch",
    "open_state_store",
    "parse_backend_url",
]

NAMESPACE = "entropy.backends"
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb")
_MONGO_SCHEMES = ("mongodb", "mongodb+srv")


def available() -> list[str]:
    """Names of the installed backends, without importing them."""
    return sorted({ep.name for ep in entry_points(group=NAMESPACE)})


def parse_backend_url(url: str) -> tuple[str, str | None]:
    """`dir:PATH` -> ('dir', PATH); `postgresql+psycopg://...` -> ('sqlalchemy', url)."""
    scheme, sep, rest = url.partition(":")
    if sep and scheme.split("+")[0] in _SQL_SCHEMES and rest.startswith("//"):
        return "sqlalchemy", url
    if sep and scheme in _MONGO_SCHEMES and rest.startswith("//"):
        return "mongodb", url
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
        manager: DriverManager[object] = DriverManager(
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
    source = manager.driver
    if not isinstance(source, DefinitionsSource):  # an entry point naming something else
        raise BackendError(f"backend {name!r} is no DefinitionsSource: {source!r}")
    return Backend(conf, source)


def _load_failed(_manager: object, entry_point: object, exc: BaseException) -> None:
    raise BackendError(
        f"backend {getattr(entry_point, 'name', entry_point)!r} failed to load: {exc}"
    )
