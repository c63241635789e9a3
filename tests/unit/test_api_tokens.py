"""The API's tokens file: shown once, kept as a hash, checked, removed; and its CLI."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from entropy.cli import main
from entropy.clock import FakeClock
from entropy.errors import EntropyError, NotFound
from entropy.service.errors import BadRequest
from entropy.service.tokens import Role, TokenFile


def test_a_token_is_kept_only_as_its_hash(tmp_path: Path, clock: FakeClock) -> None:
    tokens = TokenFile(tmp_path / "sub" / "tokens.json")
    secret = tokens.add("ops", "operator", clock.now())
    text = tokens.path.read_text()
    assert secret not in text
    assert hashlib.sha256(secret.encode()).hexdigest() in text
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert len(secret) >= 40  # 32 random bytes, URL-safe base64

    found = tokens.check(secret)
    assert found is not None and (found.name, found.role) == ("ops", Role.OPERATOR)
    assert tokens.check(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert tokens.check("") is None


def test_names_roles_and_removal(tmp_path: Path, clock: FakeClock) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    assert tokens.tokens() == []  # no file yet: no token, every request refused
    reader = tokens.add("grafana", Role.READER, clock.now())
    operator = tokens.add("ops", Role.OPERATOR, clock.now())
    with pytest.raises(BadRequest, match="exists"):
        tokens.add("ops", "reader", clock.now())
    with pytest.raises(BadRequest, match="none of reader, operator"):
        tokens.add("root", "admin", clock.now())
    with pytest.raises(BadRequest, match="without spaces"):
        tokens.add("two words", "reader", clock.now())
    assert [t.public()["name"] for t in tokens.tokens()] == ["grafana", "ops"]

    tokens.remove("ops")
    assert tokens.check(operator) is None
    assert tokens.check(reader) is not None
    with pytest.raises(NotFound, match="no token named 'ops'"):
        tokens.remove("ops")


def test_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    with pytest.raises(EntropyError, match=r"\[api\] tokens_file .*tokens.json: not a tokens file"):
        TokenFile(path).check("x")


def test_the_cli_prints_the_token_once_and_lists_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    conf = tmp_path / "entropy.conf"
    conf.write_text(f"[api]\ntokens_file = {path}\n")
    run = CliRunner()
    made = run.invoke(main, ["--config-file", str(conf), "api", "token", "add", "ci", "--role",
                             "reader", "--json"])  # fmt: skip
    assert made.exit_code == 0, made.output
    secret = json.loads(made.output)["token"]
    assert TokenFile(path).check(secret) is not None

    listed = run.invoke(main, ["--config-file", str(conf), "api", "token", "list", "--json"])
    assert secret not in listed.output
    (entry,) = json.loads(listed.output)
    assert (entry["name"], entry["role"]) == ("ci", "reader")

    gone = run.invoke(main, ["--config-file", str(conf), "api", "token", "remove", "ci"])
    assert gone.exit_code == 0 and "removed token ci" in gone.output
    again = run.invoke(main, ["--config-file", str(conf), "api", "token", "remove", "ci"])
    assert again.exit_code == 1 and "no token named 'ci'" in again.output
