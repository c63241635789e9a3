"""Catalog -> seed-format YAML: what is written, and that it loads back to the same fleet."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from entropy.backends import Backend, fetch
from entropy.config import load_conf
from entropy.dump import (
    DumpError,
    hosts_doc,
    schedule_docs,
    scripts_doc,
    to_yaml,
    write_dir,
    write_file,
)
from entropy.errors import EntropyError
from entropy.model import Catalog, Host, Schedule, Script
from entropy.timing import Cron, Every
from entropy.transfer import catalog_differences
from fleets import RICH_HOSTS as HOSTS
from fleets import RICH_REPAIRS as REPAIRS
from fleets import RICH_SCHEDULES as SCHEDULES
from fleets import RICH_SCRIPTS as SCRIPTS
from fleets import write_fleet


def load(kind: str, location: Path) -> Catalog:
    backend: Backend = fetch(load_conf(), f"{kind}:{location}")
    try:
        return backend.load()
    finally:
        backend.close()


@pytest.fixture
def source(tmp_path: Path) -> Catalog:
    return load("dir", write_fleet("dir", tmp_path / "src", HOSTS, SCRIPTS, SCHEDULES, REPAIRS))


def test_write_dir_loads_back_to_the_same_fleet(source: Catalog, tmp_path: Path) -> None:
    written = write_dir(source, tmp_path / "out")
    again = load("dir", tmp_path / "out")
    assert catalog_differences(source, again) == []
    assert {p.key for p in again.pairs} == {p.key for p in source.pairs}
    assert {p.name for p in written} >= {"hosts.yaml", "scripts.yaml"}
    # And once more: writing what was read back gives the same bytes.
    write_dir(again, tmp_path / "out2")
    for path in written:
        twin = tmp_path / "out2" / path.relative_to(tmp_path / "out")
        assert twin.read_text() == path.read_text()


def test_write_file_loads_back_with_the_file_backend(source: Catalog, tmp_path: Path) -> None:
    path = write_file(source, tmp_path / "out" / "fleet.yaml")
    assert catalog_differences(source, load("file", path)) == []


def test_what_survives_the_round_trip(source: Catalog, tmp_path: Path) -> None:
    write_dir(source, tmp_path / "out")
    catalog = load("dir", tmp_path / "out")
    assert catalog.hosts["compute-01.example.com"] == Host(
        "compute-01.example.com",
        "10.0.0.11",
        "compute",
        ("hypervisor", "rack-1"),
        {"rack": "r1", "disks": ["sda", "sdb"], "bmc": {"user": "admin", "port": 623}},
    )
    assert catalog.hosts["hv-01.example.com"].ip_address == "fd00::1"
    assert catalog.scripts["check_config"] == Script(
        "check_config",
        "command",
        {"command": ["test", "-f", "/etc/nova/nova.conf"], "env": {"LANG": "C", "EMPTY": ""}},
        10,
    )
    assert catalog.scripts["check_shell"].params["command"] == (
        "test -f /etc/a, then: {host} # not a comment"
    )
    assert catalog.scripts["vm_count"].timeout == 5400
    assert catalog.scripts["api"].params["verify_tls"] is False
    by_key = {(s.target, s.audit_name): s for s in catalog.schedules}
    shell = by_key["compute", "check_shell"]
    assert shell.timing == Cron("*/5 * * * *", "UTC")
    assert (shell.disabled, shell.disabled_reason) == (True, "rebuilding: see TICKET-1")
    assert by_key["hypervisor", "vm_count"].timing == Every(172800)
    assert by_key["hypervisor", "vm_count"].timeout == 90
    assert by_key["rack-1", "ssh_port"].params == {
        "port": 2222,
        "labels": ["a", "b, c"],
        "nested": {"k": None},
    }
    api = by_key["nova-api.mydomain.com", "api"]
    assert (api.disabled, api.disabled_reason) == (False, "noted, not disabled")
    # The host's own entry still beats its group's after the round trip.
    pairs = {p.key: p.schedule for p in catalog.pairs}
    assert pairs["ssh_port", "nova-api.mydomain.com"].timing == Cron("0 3 * * 1-5", "UTC")
    assert pairs["check_config", "compute-02.example.com"].timing == Every(604800)
    assert pairs["check_config", "compute-01.example.com"].timing == Every(86400)


def test_only_non_default_keys_are_written(source: Catalog) -> None:
    hosts = hosts_doc(source)
    assert hosts["compute-02.example.com"] == {"ip_address": "10.0.0.12", "host_type": "compute"}
    assert hosts["nova-api.mydomain.com"]["groups"] == ["web"]
    scripts = scripts_doc(source)
    assert scripts["vm_count"] == {"kind": "python", "function": "os:getcwd", "timeout": "1h30m"}
    assert list(scripts["check_config"]) == ["kind", "command", "env", "timeout"]
    docs = schedule_docs(source)
    assert docs["compute.yaml"] == {
        "compute": {
            "audits": {
                "check_config": {"run_every": "1d"},
                "check_shell": {
                    "cron": "*/5 * * * *",
                    "disabled": True,
                    "disabled_reason": "rebuilding: see TICKET-1",
                },
            }
        }
    }
    assert docs["hypervisor.yaml"] == {
        "hypervisor": {"audits": {"vm_count": {"run_every": "2d", "timeout": "1m30s"}}}
    }
    assert docs["nova-api.mydomain.com.yaml"]["nova-api.mydomain.com"]["audits"]["ssh_port"] == {
        "cron": "0 3 * * 1-5"
    }


def test_yaml_reads_like_the_seed(source: Catalog) -> None:
    text = to_yaml(hosts_doc(source))
    assert text.startswith("---\ncompute-01.example.com:\n  ip_address: 10.0.0.11\n")
    assert "  groups: [hypervisor, rack-1]\n" in text
    assert "command: [test, -f, /etc/nova/nova.conf]" in to_yaml(scripts_doc(source))


def test_schedule_file_names_are_safe_and_distinct() -> None:
    hosts = {
        "h1": Host("h1", "10.0.0.1", "Web", ("web", "a/b", ".hidden")),
    }
    scripts = {"s": Script("s", "tcp", {"port": 22})}
    schedules = [
        Schedule(target, "s", Every(60)) for target in ("Web", "web", "a/b", ".hidden", "h1")
    ]
    names = list(schedule_docs(Catalog(hosts, scripts, schedules)))
    assert names == ["Web.yaml", "web-2.yaml", "a_b.yaml", "_hidden.yaml", "h1.yaml"]


def test_a_catalog_without_schedules_still_loads(tmp_path: Path) -> None:
    catalog = Catalog({"h": Host("h", "10.0.0.1", "compute")}, {}, [])
    write_dir(catalog, tmp_path / "out")
    again = load("dir", tmp_path / "out")
    assert catalog_differences(catalog, again) == [] and again.pairs == []


def test_existing_definitions_are_not_overwritten_without_asking(
    source: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_dir(source, out)
    before = {p: p.read_text() for p in out.rglob("*.yaml")}
    message = f"{out} already holds definitions ({out}/hosts.yaml, "
    with pytest.raises(DumpError, match=f"^{re.escape(message)}"):
        write_dir(source, out)
    assert {p: p.read_text() for p in out.rglob("*.yaml")} == before

    path = write_file(source, tmp_path / "fleet.yaml")
    with pytest.raises(EntropyError, match=f"^{re.escape(str(path))} already exists; refusing"):
        write_file(source, path)


def test_schedule_files_alone_are_definitions_too(source: Catalog, tmp_path: Path) -> None:
    (tmp_path / "out" / "audits").mkdir(parents=True)
    (tmp_path / "out" / "audits" / "mine.yml").write_text("{}\n")
    with pytest.raises(DumpError, match=re.escape("audits/mine.yml")):
        write_dir(source, tmp_path / "out")


def test_a_directory_without_definitions_and_an_empty_file_are_written(
    source: Catalog, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README").write_text("mine\n")
    write_dir(source, tmp_path / "out")
    assert (tmp_path / "out" / "README").read_text() == "mine\n"
    (tmp_path / "empty.yaml").touch()
    write_file(source, tmp_path / "empty.yaml")
    assert catalog_differences(source, load("file", tmp_path / "empty.yaml")) == []


def test_overwrite_replaces_and_removes_schedule_files_that_are_gone(
    source: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_dir(source, out)
    (out / "audits" / "old.yml").write_text("{}\n")
    smaller = load("dir", write_fleet("dir", tmp_path / "small"))
    write_dir(smaller, out, overwrite=True)
    assert sorted(p.name for p in (out / "audits").iterdir()) == [
        "compute.yaml",
        "hypervisor.yaml",
        "nova-api.mydomain.com.yaml",
    ]
    assert catalog_differences(smaller, load("dir", out)) == []


def test_files_are_replaced_whole_keeping_their_mode(source: Catalog, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "fleet.yaml"
    path.write_text("hosts: {}\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    write_file(source, path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # a new file moved into place, not rewritten in place
    assert os.listdir(tmp_path / "out") == ["fleet.yaml"]  # no temp file left behind
    new = write_file(source, tmp_path / "out" / "new.yaml")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask


def test_a_path_of_the_wrong_kind_is_refused(source: Catalog, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(DumpError, match="is not a directory"):
        write_dir(source, tmp_path / "afile")
    with pytest.raises(DumpError, match="is a directory"):
        write_file(source, tmp_path)


def test_a_script_parameter_named_like_an_entry_key_is_refused() -> None:
    catalog = Catalog({}, {"s": Script("s", "tcp", {"port": 22, "timeout": 5})}, [])
    with pytest.raises(DumpError, match="script 's': parameter 'timeout'"):
        scripts_doc(catalog)


def test_the_backends_write_definitions(source: Catalog, tmp_path: Path) -> None:
    conf = load_conf()
    for kind, location in (("dir", tmp_path / "d"), ("file", tmp_path / "f.yaml")):
        backend = fetch(conf, f"{kind}:{location}")
        backend.write_definitions(source)
        backend.write_definitions(source)  # replacing is what a backend's write does
        assert catalog_differences(source, backend.load()) == []
        backend.close()


def test_catalog_differences_sees_what_matters(source: Catalog, tmp_path: Path) -> None:
    changed = yaml.safe_load(yaml.safe_dump(SCHEDULES))
    changed["hosts.yaml"]["nova-api.mydomain.com"]["audits"]["api"]["run_every"] = "31m"
    other = load("dir", write_fleet("dir", tmp_path / "other", HOSTS, SCRIPTS, changed, REPAIRS))
    assert catalog_differences(source, other) == [
        "schedule 'api' on 'nova-api.mydomain.com' differs",
        "audit 'api' on host 'nova-api.mydomain.com' differs",
    ]
    hosts = {**HOSTS, "hv-01.example.com": {"ip_address": "fd00::2", "host_type": "hypervisor"}}
    other = load("dir", write_fleet("dir", tmp_path / "other", hosts, SCRIPTS, SCHEDULES, REPAIRS))
    assert catalog_differences(source, other)[0].startswith("host 'hv-01.example.com' differs")
    repairs = {**REPAIRS, "any_check": {**REPAIRS["any_check"], "cooldown": "1h"}}
    other = load("dir", write_fleet("dir", tmp_path / "other", HOSTS, SCRIPTS, SCHEDULES, repairs))
    assert catalog_differences(source, other)[0].startswith("repair 'any_check' differs")
