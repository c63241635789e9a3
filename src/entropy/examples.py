"""Python audits the example fleet uses (kind: python, function: "entropy.examples:NAME").

Each is called as function(host, params): host is the Host being audited,
params the schedule's params. They run on the engine machine, not on the host.
"""

from __future__ import annotations

import os
from typing import Any

from .model import Host


def vm_count(host: Host, params: dict[str, Any]) -> dict[str, Any]:
    """How many VMs the inventory lists for a hypervisor (its `vms` var).

    A stand-in for asking the hypervisor: the example fleet needs no libvirt.
    """
    vms = host.vars.get("vms") or []
    count = len(vms) if isinstance(vms, list | tuple) else int(vms)
    return {
        "outcome": "ok",
        "summary": f"{count} VMs on {host.name}",
        "metrics": {"vms": count},
    }


def load_average(host: Host, params: dict[str, Any]) -> dict[str, Any]:
    """The 1-minute load average against params `warning` and `critical` (defaults 4, 8)."""
    warning = float(params.get("warning", 4))
    critical = float(params.get("critical", 8))
    load1, load5, load15 = os.getloadavg()
    outcome = "critical" if load1 > critical else "warning" if load1 > warning else "ok"
    limits = {"warn": f"{warning:g}", "crit": f"{critical:g}", "min": 0.0, "max": None}
    return {
        "outcome": outcome,
        "summary": f"load average {load1:.2f}, {load5:.2f}, {load15:.2f}",
        "metrics": {
            "load1": {"value": load1, "uom": "", **limits},
            "load5": {"value": load5, "uom": "", **limits},
            "load15": {"value": load15, "uom": "", **limits},
        },
    }


def noop(host: Host, params: dict[str, Any]) -> None:
    """Does nothing and passes: for measuring Entropy itself."""
    return None
