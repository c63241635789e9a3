"""Moving a fleet between backends: `import` (definitions, optionally state), `export` to YAML.

What is written is loaded back and must give the fleet that was copied,
else BackendError says how it differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ansible
from ..backends import Backend, parse_backend_url
from ..backends.base import safe_url
from ..definitions import Problems
from ..dump import write_dir, write_file
from ..errors import BackendError
from ..model import Catalog
from ..transfer import (
    catalog_differences,
    check_state_copy,
    copy_state,
    replace_hosts,
    same_definitions,
    same_state,
)
from .errors import BadRequest
from .runtime import Runtime


@dataclass(frozen=True, slots=True)
class StateCopied:
    rows: int
    results: int
    downtimes: int  # ad hoc downtimes
    acks: int
    repair_states: int  # per (repair, host): attempts, flags
    repair_runs: int  # the repair history
    removed: int  # DST's rows that SRC had no row for


@dataclass(slots=True)
class Copied:
    """What an import or an export wrote."""

    catalog: Catalog  # the fleet now at the destination
    source: str  # URLs, passwords hidden
    destination: str
    state: StateCopied | None = None  # import --with-state
    files: list[Path] = field(default_factory=list)  # export
    replaced_hosts: int | None = None  # import of an Ansible inventory: the hosts replaced

    def counts(self) -> dict[str, Any]:
        c = self.catalog
        return {"source": self.source, "destination": self.destination, "hosts": len(c.hosts),
                "scripts": len(c.scripts), "schedules": len(c.schedules),
                "audits": len(c.pairs)}  # fmt: skip


def import_fleet(
    rt: Runtime, src_url: str, dst_url: str, with_state: bool = False, force: bool = False
) -> Copied:
    """Replace DST's definitions with SRC's (validated first); with_state, its state too."""
    src = rt.open(src_url)
    try:
        dst = rt.open(dst_url)
    except BaseException:
        src.close()
        raise
    try:
        if same_definitions(src, dst):
            raise BadRequest(f"SRC_URL and DST_URL are the same place: {src_url}")
        if with_state and same_state(src, dst):
            raise BackendError(
                f"SRC and DST share the state store {safe_url(src.state_url())}: "
                f"there is no state to copy; leave out --with-state"
            )
        if with_state:  # open both stores now: a store that is behind fails before any write
            _ = (src.state, dst.state)
        catalog = src.load()  # a problem in SRC's definitions changes nothing at DST
        removed = check_state_copy(src, dst, force) if with_state else 0
        dst.write_definitions(catalog)
        _check_written(catalog, dst, dst_url)
        state = StateCopied(*copy_state(src, dst, rt.clock.now()), removed) if with_state else None
    finally:
        src.close()
        dst.close()
    return Copied(catalog, safe_url(src_url), safe_url(dst_url), state)


def import_inventory(
    rt: Runtime, src_url: str, dst_url: str, on_warning: Callable[[str], None] | None = None
) -> Copied:
    """ansible:INVENTORY's hosts replace DST's; DST keeps its scripts, schedules and repairs."""
    spec = src_url.removeprefix("ansible:")
    if not spec:
        raise BadRequest("give ansible:PATH, or ansible:- for stdin", "SRC_URL")
    problems = Problems()
    hosts, warnings = ansible.read(spec, problems)
    problems.raise_if_any()
    if not hosts:
        raise BackendError(f"{spec}: the inventory has no hosts; nothing was changed")
    for warning in warnings:
        if on_warning is not None:
            on_warning(warning)
    dst = rt.open(dst_url)
    try:
        before, catalog = replace_hosts(dst, hosts)
        _check_written(catalog, dst, dst_url)
    finally:
        dst.close()
    return Copied(catalog, safe_url(src_url), safe_url(dst_url),
                  replaced_hosts=len(before.hosts))  # fmt: skip


def export_fleet(rt: Runtime, src_url: str, to_url: str, force: bool = False) -> Copied:
    """Write SRC's definitions as YAML: a directory (dir:PATH) or one file (file:PATH.yaml)."""
    kind, location = parse_backend_url(to_url)
    if kind not in ("dir", "file") or not location:
        raise BadRequest(
            f"{to_url!r}: export writes YAML, give dir:PATH or file:PATH.yaml "
            f"(to copy into a database use `entropy import`)",
            "--to",
        )
    src = rt.open(src_url)
    try:
        catalog = src.load()
    finally:
        src.close()
    if kind == "dir":
        files = write_dir(catalog, location, overwrite=force)
    else:
        files = [write_file(catalog, location, overwrite=force)]
    dst = rt.open(f"{kind}:{location}")
    try:
        _check_written(catalog, dst, to_url)
    finally:
        dst.close()
    return Copied(catalog, safe_url(src_url), safe_url(to_url), files=list(files))


def _check_written(catalog: Catalog, dst: Backend, dst_url: str) -> None:
    """Load what was written: it must give the fleet that was copied."""
    differences = catalog_differences(catalog, dst.load())
    if differences:
        shown = "; ".join(differences[:5])
        more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
        raise BackendError(
            f"the definitions written to {safe_url(dst_url)} load back differently: {shown}{more}"
        )
