"""Write the same fleet definitions in the dir or the file backend's format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SEED_HOSTS = {
    "compute-01.example.com": {
        "ip_address": "10.0.0.11",
        "host_type": "compute",
        "groups": ["hypervisor"],
        "vars": {"rack": "r1"},
    },
    "compute-02.example.com": {"ip_address": "10.0.0.12", "host_type": "compute"},
    "hv-01.example.com": {"ip_address": "10.0.1.1", "host_type": "hypervisor"},
    "nova-api.mydomain.com": {"ip_address": "10.0.2.1", "host_type": "control"},
}
SEED_SCRIPTS = {
    "check_nova_config_exists": {"kind": "command", "command": ["true"], "timeout": "10s"},
    "check_nova_compute_log_file_exists": {"kind": "command", "command": ["true"]},
    "vm_count": {"kind": "python", "function": "os:getcwd"},
    "vmbooter": {"kind": "tcp", "port": 22},
    "api_availability": {"kind": "http", "url": "http://{ip_address}:8774/"},
}
SEED_SCHEDULES = {
    "compute_audits.yaml": {
        "compute": {
            "audits": {
                "check_nova_config_exists": {"run_every": "1day"},
                "check_nova_compute_log_file_exists": {"run_every": "30mins"},
            }
        }
    },
    "hypervisor_audits.yaml": {"hypervisor": {"audits": {"vm_count": {"run_every": "2days"}}}},
    "other_audits.yaml": {
        "nova-api.mydomain.com": {
            "audits": {
                "vmbooter": {"run_every": "1hour"},
                "api_availability": {"run_every": "30mins"},
            }
        }
    },
}
# The pairs the seed gives: (audit, host) -> interval in seconds.
SEED_PAIRS = {
    ("check_nova_config_exists", "compute-01.example.com"): 86400,
    ("check_nova_config_exists", "compute-02.example.com"): 86400,
    ("check_nova_compute_log_file_exists", "compute-01.example.com"): 1800,
    ("check_nova_compute_log_file_exists", "compute-02.example.com"): 1800,
    ("vm_count", "compute-01.example.com"): 172800,
    ("vm_count", "hv-01.example.com"): 172800,
    ("vmbooter", "nova-api.mydomain.com"): 3600,
    ("api_availability", "nova-api.mydomain.com"): 1800,
}
# The row fields promised to operators (status --json), exactly.
ROW_FIELDS = frozenset(
    [
        "id",
        "host",
        "ip_address",
        "audit_name",
        "next_run",
        "created_at",
        "updated_at",
        "disabled",
        "disabled_reason",
        "status",
        "result",
        "monitor",
    ]
)


def write_fleet(
    kind: str,
    root: Path,
    hosts: dict[str, Any] | None = None,
    scripts: dict[str, Any] | None = None,
    schedules: dict[str, dict[str, Any]] | None = None,
    repairs: dict[str, Any] | None = None,
    downtimes: dict[str, Any] | None = None,
) -> Path:
    """Write a fleet for the `dir` or `file` backend under root; return its location.

    `schedules` maps a schedule file name to its content; the file backend
    merges them under one `schedules:` section.
    """
    hosts = SEED_HOSTS if hosts is None else hosts
    scripts = SEED_SCRIPTS if scripts is None else scripts
    schedules = SEED_SCHEDULES if schedules is None else schedules
    if kind == "dir":
        (root / "audits").mkdir(parents=True, exist_ok=True)
        for old in (root / "audits").glob("*.yaml"):
            old.unlink()
        _dump(root / "hosts.yaml", hosts)
        _dump(root / "scripts.yaml", scripts)
        for name, content in schedules.items():
            _dump(root / "audits" / name, content)
        if repairs is not None:
            _dump(root / "repairs.yaml", repairs)
        if downtimes is not None:
            _dump(root / "downtimes.yaml", downtimes)
        else:
            (root / "downtimes.yaml").unlink(missing_ok=True)
        return root
    if kind == "file":
        merged: dict[str, Any] = {}
        for content in schedules.values():
            for target, section in content.items():
                merged.setdefault(target, {"audits": {}})["audits"].update(section["audits"])
        root.mkdir(parents=True, exist_ok=True)
        path = root / "fleet.yaml"
        doc = {"hosts": hosts, "scripts": scripts, "schedules": merged}
        if repairs is not None:
            doc["repairs"] = repairs
        if downtimes is not None:
            doc["downtimes"] = downtimes
        _dump(path, doc)
        return path
    raise ValueError(kind)


def _dump(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# A fleet using everything the seed format can say, at least once (dump round trips).
RICH_HOSTS: dict[str, Any] = {
    "compute-01.example.com": {
        "ip_address": "10.0.0.11",
        "host_type": "compute",
        "groups": ["hypervisor", "rack-1"],
        "vars": {"rack": "r1", "disks": ["sda", "sdb"], "bmc": {"user": "admin", "port": 623}},
    },
    "compute-02.example.com": {"ip_address": "10.0.0.12", "host_type": "compute"},
    "hv-01.example.com": {"ip_address": "fd00::1", "host_type": "hypervisor"},
    "nova-api.mydomain.com": {
        "ip_address": "10.0.2.1",
        "host_type": "control",
        "groups": ["web"],
    },
}
RICH_SCRIPTS: dict[str, Any] = {
    "check_config": {
        "kind": "command",
        "command": ["test", "-f", "/etc/nova/nova.conf"],
        "env": {"LANG": "C", "EMPTY": ""},
        "timeout": "10s",
    },
    "check_shell": {
        "kind": "command",
        "command": "test -f /etc/a, then: {host} # not a comment",
        "shell": True,
        "output_limit": 4096,
    },
    "vm_count": {"kind": "python", "function": "os:getcwd", "timeout": "1h30m"},
    "ssh_port": {"kind": "tcp", "port": 22, "warning_ms": 200, "critical_ms": 1000},
    "api": {
        "kind": "http",
        "url": "http://{ip_address}:8774/",
        "expect_status": [200, 300],
        "headers": {"Accept": "application/json"},
        "verify_tls": False,
        "body_regex": "^ok: [a-z]+$",
    },
}
RICH_REPAIRS: dict[str, Any] = {
    "fix_config": {
        "when": {"audit": "check_config", "outcome": ["critical", "unknown"], "consecutive": 3},
        "run": "check_shell",
        "cooldown": "30mins",
        "max_concurrent": 2,
        "max_attempts": 3,
        "verify": True,
    },
    "any_check": {"when": {"audit": "check_*"}, "run": "vm_count"},
}
RICH_SCHEDULES: dict[str, dict[str, Any]] = {
    "compute.yaml": {
        "compute": {
            "audits": {
                "check_config": {"run_every": "1day"},
                "check_shell": {
                    "cron": "*/5 * * * *",
                    "disabled": True,
                    "disabled_reason": "rebuilding: see TICKET-1",
                },
            }
        },
        "hypervisor": {"audits": {"vm_count": {"run_every": "2days", "timeout": "90s"}}},
    },
    "extra.yaml": {
        # The same group entry again, agreeing: valid, and written once.
        "hypervisor": {"audits": {"vm_count": {"run_every": "48h", "timeout": "1m30s"}}},
        "rack-1": {
            "audits": {
                "ssh_port": {
                    "run_every": "90s",
                    "params": {"port": 2222, "labels": ["a", "b, c"], "nested": {"k": None}},
                }
            }
        },
    },
    "hosts.yaml": {
        "nova-api.mydomain.com": {
            "audits": {
                "api": {"run_every": "30mins", "disabled_reason": "noted, not disabled"},
                "ssh_port": {"cron": "0 3 * * 1-5", "disabled": False},
            }
        },
        "compute-02.example.com": {"audits": {"check_config": {"run_every": "1w"}}},
    },
}
