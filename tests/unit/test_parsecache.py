"""The dir and file sources parse again only the files that changed (entropy.parsecache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entropy.backends import fetch
from entropy.config import load_conf
from entropy.errors import ValidationError
from fleets import SEED_HOSTS, SEED_SCHEDULES, SEED_SCRIPTS, write_fleet


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_unchanged_files_are_not_parsed_again(tmp_path: Path, kind: str) -> None:
    location = write_fleet(kind, tmp_path / "fleet")
    source = fetch(load_conf(), f"{kind}:{location}").definitions
    first = source.load()
    files = 5 if kind == "dir" else 1  # hosts, scripts, three schedule files
    assert source._cache.parsed == files
    assert source.load().schedules == first.schedules and source._cache.parsed == 0
    write_fleet(kind, tmp_path / "fleet")  # the same content, written again: only hashed
    assert source.load().hosts == first.hosts and source._cache.parsed == 0
    hosts = {**SEED_HOSTS, "new.example.com": {"ip_address": "10.9.0.1", "host_type": "compute"}}
    write_fleet(kind, tmp_path / "fleet", hosts=hosts)
    again = source.load()
    assert source._cache.parsed == 1 and "new.example.com" in again.hosts
    assert len(again.pairs) == len(first.pairs) + 2


def test_a_broken_file_is_read_and_reported_every_time(tmp_path: Path) -> None:
    location = write_fleet("dir", tmp_path / "fleet")
    source = fetch(load_conf(), f"dir:{location}").definitions
    source.load()
    broken = location / "audits" / "compute_audits.yaml"
    broken.write_text("compute:\n  audits: [unclosed\n")
    for _ in range(2):
        with pytest.raises(ValidationError, match=r"compute_audits\.yaml"):
            source.load()
        assert source._cache.parsed == 1
    write_fleet("dir", location, hosts=SEED_HOSTS, scripts=SEED_SCRIPTS, schedules=SEED_SCHEDULES)
    assert len(source.load().pairs) == 8


def test_a_file_changed_within_the_same_stat_is_caught_by_nothing_but_ctime(tmp_path: Path):
    """Same size and mtime (restored by hand): the inode change time still moves."""
    location = write_fleet("dir", tmp_path / "fleet")
    source = fetch(load_conf(), f"dir:{location}").definitions
    source.load()
    path = location / "hosts.yaml"
    stat = path.stat()
    path.write_text(path.read_text().replace("10.0.0.11", "10.0.0.99"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.load().hosts["compute-01.example.com"].ip_address == "10.0.0.99"
