"""`entropy import ansible:INVENTORY DST`: Ansible inventories read without Ansible.

tests/data/ansible/*.list.json are what `ansible-inventory -i FILE --list`
(ansible-core 2.17, from bench/.venv-ansible) printed for the YAML and INI
inventories beside them: each form must give the same hosts as Ansible's
own reading of the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from entropy import ansible
from entropy.backends import fetch
from entropy.config import load_conf
from entropy.definitions import Problems
from entropy.model import Host, HostSsh
from faults import silent_dns
from fleets import write_fleet
from processes import ENTROPY

DATA = Path(__file__).resolve().parents[1] / "data" / "ansible"


def read(path: Path | str) -> tuple[dict[str, Host], list[str]]:
    problems = Problems()
    hosts, warnings = ansible.read(str(path), problems)
    problems.raise_if_any()
    return hosts, warnings


def shape(hosts: dict[str, Host]) -> dict[str, tuple]:
    return {n: (h.ip_address, h.host_type, set(h.groups), h.vars, h.ssh) for n, h in hosts.items()}


def test_a_nested_yaml_inventory() -> None:
    hosts, warnings = read(DATA / "nested.yaml")
    assert list(hosts) == [
        "localhost", "compute01.example.com", "compute02.example.com",
        "compute03.example.com", "compute-big.example.com", "api.example.com",
    ]  # fmt: skip
    big = hosts["compute-big.example.com"]
    assert (big.ip_address, big.host_type, big.groups) == (
        "10.0.1.99",
        "compute",
        ("openstack", "monitored"),
    )
    # all < openstack < compute < the host: the nearest group's tier wins, the host's own rack.
    assert big.vars == {"ntp_server": "ntp.example.com", "tier": "compute-tier", "rack": "r9"}
    assert big.ssh == HostSsh(None, 2200, "ops", "jump@bastion.example.com:2222")
    api = hosts["api.example.com"]
    assert api.host_type == "api" and set(api.groups) == {"control", "openstack", "monitored"}
    assert api.ssh == HostSsh(None, None, "ops", "admin@10.0.0.254")  # from its ProxyCommand
    assert api.vars["ansible_ssh_common_args"] == "-o ForwardAgent=yes"  # the rest is kept
    assert "only ProxyJump is used by Entropy, not -o ForwardAgent=yes" in warnings[0]
    local = hosts["localhost"]  # no ansible_host, a name that resolves: kept for SSH
    assert (local.ip_address, local.host_type, local.ssh) == (
        "127.0.0.1",
        "ungrouped",
        HostSsh(address="localhost"),
    )


@pytest.mark.parametrize("name", ["nested.yaml", "hosts.ini"])
def test_each_form_reads_as_ansible_inventory_list_does(name: str) -> None:
    mine, _ = read(DATA / name)
    ansibles, _ = read(DATA / name.replace(".yaml", ".list.json").replace(".ini", ".list.json"))
    assert shape(mine) == shape(ansibles)


def test_an_ini_inventory() -> None:
    hosts, _ = read(DATA / "hosts.ini")
    web3 = hosts["web-3.example.com"]
    assert (web3.host_type, web3.groups, web3.ssh) == (
        "web",
        ("prod",),
        HostSsh(None, 2202, None, "ops@10.0.0.254"),
    )
    assert web3.vars == {"http_port": 8080, "env": "production", "weight": 3, "tags": ["a", "b"]}
    assert hosts["db-standalone.example.com"].host_type == "ungrouped"


@pytest.mark.parametrize(("text", "suffix", "where", "message"), [
    ("all:\n  children:\n    web:\n      host:\n        a: {}\n", ".yaml", ":4:7:",
     "unknown key 'host' in group 'web'"),
    ("all:\n  hosts:\n    a b:\n      ansible_host: nowhere.invalid\n", ".yaml", ":3:5:",
     "'nowhere.invalid' is not an IP address and does not resolve"),
    ("all:\n  hosts:\n    a:\n      ansible_host: 10.0.0.1\n      ansible_port: ssh\n",
     ".yaml", ":3:5:", "port must be a number from 1 to 65535"),
    ("all:\n  hosts: [a, b]\n", ".yaml", ":2:3:", "hosts must be a mapping"),
    ("all:\n  hosts:\n   a: {x: 1\n", ".yaml", ":4:", "invalid YAML"),
    ("[web]\nok ansible_host=10.0.0.1\nbad ansible_host\n", ".ini", ":3:1:",
     "'ansible_host' is not key=value"),
    ("[web\nok\n", ".ini", ":1:1:", "not a section header"),
    ("[web]\nw[3:1] ansible_host=10.0.0.1\n", ".ini", ":2:1:", "host range 'w[3:1]' is empty"),
    ("[web]\nw ansible_host=10.0.0.1 ansible_ssh_common_args='-J -oops'\n", ".ini", ":2:1:",
     "ansible_ssh_common_args: '-oops' is not [user@]host[:port]"),
    ('{"all": {"hosts": "a"}}', ".json", "", "group 'all': hosts must be a list"),
    ('{"all": {"hosts": ["a"]}, "_meta": {"hostvars": {"a": []}}}', ".json", "",
     "_meta.hostvars['a'] must be an object"),
    ('{"all": {"hosts": ["a"],}', ".json", ":1:", "invalid JSON"),
])  # fmt: skip
def test_errors_name_the_inventory_line_or_key(
    tmp_path: Path, text: str, suffix: str, where: str, message: str
) -> None:
    path = tmp_path / f"inventory{suffix}"
    path.write_text(text)
    problems = Problems()
    ansible.read(str(path), problems)
    shown = [str(p) for p in problems.items]
    assert any(p.startswith(f"{path}{where}") and message in p for p in shown), shown


def entropy(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENTROPY, *args], input=stdin, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_import_replaces_dst_hosts_and_keeps_its_scripts_and_schedules(tmp_path: Path) -> None:
    fleet = write_fleet(
        "dir", tmp_path / "fleet",
        hosts={"old.example.com": {"ip_address": "10.9.9.9", "host_type": "compute"}},
        scripts={"nova_conf": {"kind": "ssh", "command": ["test", "-f", "/etc/nova/nova.conf"]}},
        schedules={"compute.yaml": {"compute": {"audits": {"nova_conf": {"run_every": "1h"}}}}},
    )  # fmt: skip
    done = entropy("import", f"ansible:{DATA / 'nested.yaml'}", f"dir:{fleet}")
    assert done.returncode == 0, done.stderr
    assert "imported 6 hosts" in done.stdout and "(replacing 1)" in done.stdout
    assert "only ProxyJump is used by Entropy" in done.stderr
    backend = fetch(load_conf(), f"dir:{fleet}")
    catalog = backend.load()
    assert "old.example.com" not in catalog.hosts and len(catalog.hosts) == 6
    assert sorted(p.host for p in catalog.pairs) == [
        "compute-big.example.com", "compute01.example.com", "compute02.example.com",
        "compute03.example.com",
    ]  # fmt: skip
    assert catalog.hosts["compute01.example.com"].ssh.jump == "jump@bastion.example.com:2222"

    # From stdin (ansible-inventory --list | entropy import ansible:- ...), into a new database.
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    listed = (DATA / "hosts.list.json").read_text()
    done = entropy("import", "ansible:-", db, "--json", stdin=listed)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["hosts"], report["scripts"], report["replaced_hosts"]) == (5, 0, 0)


def test_an_import_that_would_orphan_a_schedule_changes_nothing(tmp_path: Path) -> None:
    fleet = write_fleet(
        "dir", tmp_path / "fleet",
        hosts={"pet.example.com": {"ip_address": "10.9.9.9", "host_type": "pets"}},
        scripts={"ping": {"kind": "tcp", "port": 22}},
        schedules={"pet.yaml": {"pet.example.com": {"audits": {"ping": {"run_every": "1h"}}}}},
    )  # fmt: skip
    before = (fleet / "hosts.yaml").read_text()
    done = entropy("import", f"ansible:{DATA / 'hosts.ini'}", f"dir:{fleet}")
    assert done.returncode == 2
    assert f"{fleet / 'audits' / 'pet.yaml'}:3:5: unknown target 'pet.example.com'" in done.stderr
    assert (fleet / "hosts.yaml").read_text() == before
    done = entropy("import", f"ansible:{DATA / 'hosts.ini'}", f"dir:{fleet}", "--with-state")
    assert done.returncode == 2 and "has no state" in done.stderr
    done = entropy("import", f"ansible:{tmp_path / 'missing.yaml'}", f"dir:{fleet}")
    assert done.returncode == 2 and "missing.yaml: inventory not found" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_names_a_silent_dns_server_never_answers_cost_the_budget_not_more(tmp_path: Path) -> None:
    """Each look-up here would hang 150 s on its own, and there are 40 of them: the import
    still ends once RESOLVE_BUDGET is spent, naming each name it could not resolve. The
    budget is set to 3 s in the process (30 s in use) so the test takes seconds."""
    names = {f"web-{n:02d}": {"ansible_host": f"web-{n:02d}.example.org"} for n in range(40)}
    inventory = tmp_path / "inventory.yaml"
    hosts = {**names, "db-1": {"ansible_host": "10.0.0.5"}}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    fleet = write_fleet("dir", tmp_path / "fleet")
    budget = 3.0
    run_import = (
        f"import sys, entropy.ansible; entropy.ansible.RESOLVE_BUDGET = {budget}; "
        "from entropy.cli import main; main(sys.argv[1:])"
    )
    with silent_dns(tmp_path) as dns:
        argv = [sys.executable, "-c", run_import, "import", f"ansible:{inventory}", f"dir:{fleet}"]
        started = time.monotonic()
        done = subprocess.run(dns.resolving(argv), capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
    assert done.returncode == 2, done.stderr  # problems in the inventory, nothing changed
    assert "40 problems; nothing was changed" in done.stderr
    assert f"'web-07.example.org' is not an IP address and was not resolved within {budget:g}s" \
        in done.stderr  # fmt: skip
    assert done.stderr.count("was not resolved within") == 40
    assert budget <= took < budget + 15, took
