"""`upload: PATH`: a local script copied to each host once per content hash, over SFTP.

On the host it lives at `upload_dir/<sha256 prefix>-<name>`, mode 0700, so a
changed script gets a new name and an unchanged one is never sent twice.
Each engine remembers which hashes a host has; the first run on a host asks
SFTP whether the file is there (by size) before sending it, to a temporary
name renamed into place, so a half-sent file is never run.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..regularfile import check_regular, open_regular
from .failures import ERROR, SshFailure

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    digest: str  # sha256, hex
    size: int

    def remote_path(self, upload_dir: str) -> str:
        name = _UNSAFE.sub("_", self.path.name) or "script"
        return f"{upload_dir.rstrip('/') or '/'}/{self.digest[:16]}-{name}"


def upload_path(upload: str, defined_in: str | None) -> Path:
    """Where `upload: PATH` is looked for: ~ expanded; relative to the scripts file it is
    defined in (when that is a file), as validate and the runner both read it."""
    found = Path(upload).expanduser()
    if not found.is_absolute() and defined_in is not None:
        scripts_file = Path(defined_in)
        if scripts_file.is_file():
            found = scripts_file.parent / found
    return found


_lock = threading.Lock()
_hashed: dict[Path, tuple[tuple[int, int], LocalFile]] = {}  # path -> ((mtime, size), file)


def local_file(path: Path) -> LocalFile:
    """path's content hash, computed again only when its mtime or size changed (OSError).

    A FIFO or a device (`upload: /dev/zero`) is refused, not read: hashing
    it blocked or ran for ever, holding the worker and the engine's stop.
    """
    st = path.stat()
    check_regular(path, st.st_mode)
    stamp = (st.st_mtime_ns, st.st_size)
    with _lock:
        known = _hashed.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    digest = hashlib.sha256()
    with open_regular(path) as stream:
        for chunk in iter(lambda: stream.read(1 << 16), b""):
            digest.update(chunk)
    found = LocalFile(path, digest.hexdigest(), st.st_size)
    with _lock:
        _hashed[path] = (stamp, found)
    return found


async def ensure(conn: Any, entry: Any, local: LocalFile, upload_dir: str) -> str:
    """The path of local on conn's host, sent there first if it is not there yet."""
    import asyncssh

    remote = local.remote_path(upload_dir)
    if local.digest in entry.uploaded:
        return remote
    async with entry.upload_lock:  # one transfer per host at a time; the rest find it done
        if local.digest in entry.uploaded:
            return remote
        try:
            async with conn.start_sftp_client() as sftp:
                if not await _present(sftp, remote, local.size):
                    await sftp.makedirs(os.path.dirname(remote) or ".", exist_ok=True)
                    partial = f"{remote}.{secrets.token_hex(4)}.part"
                    await sftp.put(str(local.path), partial)
                    await sftp.chmod(partial, 0o700)
                    try:
                        await sftp.posix_rename(partial, remote)  # replaces atomically
                    except asyncssh.SFTPOpUnsupported:  # not OpenSSH's sftp-server
                        await sftp.rename(partial, remote)
        except asyncssh.SFTPError as exc:
            raise SshFailure(
                ERROR, f"cannot upload {local.path} to {entry.target} as {remote}: {exc}"
            ) from None
        except OSError as exc:
            raise SshFailure(ERROR, f"cannot upload {local.path}: {exc.strerror or exc}") from None
        entry.uploaded.add(local.digest)
    return remote


async def _present(sftp: Any, remote: str, size: int) -> bool:
    import asyncssh

    try:
        attrs = await sftp.stat(remote)
    except asyncssh.SFTPNoSuchFile:
        return False
    return attrs.size == size


def forget(entry: Any, local: LocalFile) -> None:
    """The host lost the file (it ran as `not found`): check and send it again next time."""
    entry.uploaded.discard(local.digest)
