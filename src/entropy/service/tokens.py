"""The HTTP API's bearer tokens: a file of names, roles and hashes ([api] tokens_file).

A token is shown once, when it is made; the file keeps only its SHA-256,
so a copy of the file lets no one in. Checking a token hashes it and
compares with every stored hash in constant time (hmac.compare_digest),
so neither the answer's timing nor an early exit tells how close a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..config import state_dir
from ..errors import EntropyError, NotFound
from .errors import BadRequest
from .runtime import Runtime


class Role(StrEnum):
    READER = "reader"  # reads everything
    OPERATOR = "operator"  # reads and acts: disable, enable, run, reset, post results


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: Role
    sha256: str  # hex digest of the token's text
    created_at: str  # ISO 8601 UTC

    def public(self) -> dict[str, Any]:
        """What `api token list` shows: never the hash."""
        return {"name": self.name, "role": self.role.value, "created_at": self.created_at}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenFile:
    """The tokens file: read on every check, so a token removed is refused at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def tokens(self) -> list[Token]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise EntropyError(f"[api] tokens_file {self.path}: {exc.strerror}") from None
        try:
            entries = json.loads(text)["tokens"]
            return [Token(e["name"], Role(e["role"]), e["sha256"], e["created_at"])
                    for e in entries]  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            where = f"[api] tokens_file {self.path}"
            raise EntropyError(f"{where}: not a tokens file ({exc})") from None

    def add(self, name: str, role: Role | str, now: datetime) -> str:
        """Store a new token NAME with ROLE; the token's text, which is not kept anywhere."""
        try:
            role = Role(role)
        except ValueError:
            raise BadRequest(f"role {role!r} is none of reader, operator", "role") from None
        if not name or not name.isprintable() or any(c.isspace() for c in name):
            raise BadRequest(f"token name {name!r}: give a word without spaces", "name")
        found = self.tokens()
        if any(t.name == name for t in found):
            raise BadRequest(f"a token named {name!r} exists; remove it first", "name")
        secret = secrets.token_urlsafe(32)
        found.append(Token(name, role, _digest(secret), now.isoformat()))
        self._write(found)
        return secret

    def remove(self, name: str) -> None:
        found = self.tokens()
        kept = [t for t in found if t.name != name]
        if len(kept) == len(found):
            raise NotFound(f"no token named {name!r} in {self.path}")
        self._write(kept)

    def check(self, secret: str) -> Token | None:
        """The token whose hash is SECRET's, or None; every stored hash is compared."""
        digest = _digest(secret)
        match = None
        for token in self.tokens():
            if hmac.compare_digest(digest, token.sha256):
                match = token
        return match

    def _write(self, found: list[Token]) -> None:
        """Atomically, readable by its owner only: a half-written file would lock everyone out."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"tokens": [{**asdict(t), "role": t.role.value} for t in found]},
                          indent=2)  # fmt: skip
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def token_file(rt: Runtime) -> TokenFile:
    """The file [api] tokens_file names (default: api-tokens.json in the state directory)."""
    configured = rt.option("tokens_file", "api")
    default = state_dir(rt.conf) / "api-tokens.json"
    path = Path(str(configured)).expanduser() if configured else default
    return TokenFile(path)
