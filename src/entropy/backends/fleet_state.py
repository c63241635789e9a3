"""Where a dir fleet's default SQLite state lives: tied to the fleet, not to its path.

The first command that writes state (sync, engine run, disable, ...) leaves
a small file, FLEET/.entropy-state, naming the fleet's state file in
state_dir. It moves with the directory, so a fleet that is moved keeps its
history. It also records where it was written: a copy of the directory
(the original still there, with its own file) gets a state of its own
rather than sharing rows with the original.

A new fleet's file is named after its directory (path, device and inode:
a directory made later at the same path is another fleet), so a command
that only reads, and writes no marker, names the file the first write will
use. Upgrading keeps history: a fleet with no marker whose path-keyed file
(what earlier versions used: state_dir/dir-<name>-<hash of the path>.sqlite)
exists adopts it, and marks it adopted (`<file>.adopted`), so that a new
fleet at that path once this one has moved does not take it too. A fleet
directory that cannot be written (a read-only mount) falls back to the
path-keyed name, with a warning. Read-only commands never write anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import yaml
from oslo_config import cfg

from ..config import state_dir
from ..errors import BackendError
from .base import path_keyed_state

LOG = logging.getLogger(__name__)

MARKER = ".entropy-state"
_HEADER = (
    "# Written by Entropy: this fleet's state (audit rows, results) is the file `state`\n"
    "# in state_dir. Moving this directory keeps it; a copy elsewhere starts its own.\n"
)


def fleet_state_file(conf: cfg.ConfigOpts, root: Path, create: bool) -> Path:
    """The SQLite file holding the state of the dir fleet at root.

    create: write (or update) FLEET/.entropy-state; False for commands that
    only read, which then name the file the state would be in.
    """
    root = root.expanduser().resolve()
    legacy = path_keyed_state(conf, "dir", root)
    if not root.is_dir():
        return legacy  # not there (yet): an import or export creates it
    if not create:
        return _resolve(conf, root, legacy, create)
    # Processes (or threads) starting together on a new fleet must agree on one file.
    with _locked(root):
        return _resolve(conf, root, legacy, create)


def _resolve(conf: cfg.ConfigOpts, root: Path, legacy: Path, create: bool) -> Path:
    marker = root / MARKER
    recorded = _read(marker)
    if recorded is not None:
        name, where = recorded
        if where == str(root):
            return state_dir(conf) / name
        if not _copy_of(marker, Path(where), name):
            if create:  # moved here: remember where it is now
                _write_or_warn(marker, name, root, legacy)
            return state_dir(conf) / name
        LOG.warning("%s is a copy of the fleet at %s: it gets a state of its own", root, where)
    adopt = legacy.exists() and not _adopted(legacy)
    name = legacy.name if adopt else _own_name(root)
    if not create:
        return state_dir(conf) / name
    if not _write_or_warn(marker, name, root, legacy):
        return legacy
    if adopt:
        _mark_adopted(legacy, root)
    return state_dir(conf) / name


def _own_name(root: Path) -> str:
    """A new fleet's file: stable for its directory, another for a directory made later."""
    stat = root.stat()
    digest = hashlib.sha1(f"{root}\0{stat.st_dev}\0{stat.st_ino}".encode()).hexdigest()[:12]
    return f"dir-{_safe(root.name)}-{digest}.sqlite"


def _adopted(legacy: Path) -> bool:
    return Path(f"{legacy}.adopted").exists()


def _mark_adopted(legacy: Path, root: Path) -> None:
    try:
        Path(f"{legacy}.adopted").write_text(f"adopted by the fleet at {root}\n")
    except OSError as exc:  # then a new fleet at that path would adopt it as well: say so
        LOG.warning("cannot write %s.adopted (%s)", legacy, exc.strerror)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive flock on the directory itself (no lock file to leave behind)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # cannot even open it: the write below will say what is wrong
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip(".") or "root"


def _read(marker: Path) -> tuple[str, str] | None:
    """(state file name, directory it was written in), or None when there is no marker."""
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BackendError(f"{marker}: cannot read it: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BackendError(f"{marker}: not valid YAML ({exc}); fix or remove it") from None
    name = doc.get("state") if isinstance(doc, dict) else None
    where = doc.get("path") if isinstance(doc, dict) else None
    # Only a plain file name in state_dir: the marker lives in a directory others may write.
    if (
        not isinstance(name, str)
        or not isinstance(where, str)
        or Path(name).name != name
        or name.startswith(".")
        or not name.endswith(".sqlite")
    ):
        raise BackendError(
            f"{marker}: expected `state: <name>.sqlite` (a file in state_dir) and "
            f"`path: <directory>`; fix or remove it (removing it starts a new state)"
        )
    return name, where


def _copy_of(marker: Path, where: Path, name: str) -> bool:
    """Whether the fleet the marker was written in is still there with the same state."""
    original = where / MARKER
    try:
        if original.samefile(marker):
            return False  # the same directory by another path (a bind mount)
        found = _read(original)
        return found is not None and found[0] == name
    except (OSError, BackendError):
        return False


def _write_or_warn(marker: Path, name: str, root: Path, legacy: Path) -> bool:
    text = f"{_HEADER}state: {_scalar(name)}\npath: {_scalar(str(root))}\n"
    temporary = marker.with_name(f"{MARKER}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, marker)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        LOG.warning(
            "cannot write %s (%s): this fleet's state stays keyed by its path (%s), so moving "
            "the directory loses its history; set [dir] state_connection to choose where it "
            "lives",
            marker, exc.strerror, legacy,
        )  # fmt: skip
        return False
    return True


def _scalar(value: str) -> str:
    """value as one YAML scalar (quoted when it needs to be)."""
    dumped = yaml.safe_dump(value, width=1 << 20)
    return dumped.removesuffix("\n...\n").removesuffix("\n")
