"""`entropy validate` on a large hosts.yaml: time and peak RSS of the real command.

Writes a dir fleet of N hosts (default 583,000, as in issue 11: 50-70 MB of
hosts.yaml) and one audit on all of them, then runs `entropy --backend
dir:FLEET validate` in a fresh process, --runs times. Measured per run:

  time       wall time of the command, start-up included
  peak RSS   the child's ru_maxrss (os.wait4), the whole process
  per host   peak RSS / hosts

At 156156c this took 3.66-4.3 GB and ~40 s at 583,000 hosts: libyaml's node
tree (some 400 bytes a node, 15 nodes a host) lived until the whole file was
read. Since, hosts.yaml is read one entry at a time (entropy.yamlread).

    python -m bench validate                      583,000 hosts, 1 run
    python -m bench validate --hosts 100000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..common import Spread, context_line, environment, table
from ..fleet import write_dir_fleet

SUMMARY = "entropy validate on a 583,000-host hosts.yaml: time and peak RSS of the command"
DESCRIPTION = __doc__
QUICK: dict[str, object] = {"hosts": 20_000, "runs": 1}
DEFAULT_HOSTS = 583_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosts",
        type=int,
        default=DEFAULT_HOSTS,
        help="hosts in hosts.yaml (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs (default: 1)")
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the fleet and the state go (default: system)"
    )


def measure(fleet: Path, state_dir: Path) -> dict[str, Any]:
    """One `entropy validate` in a fresh process: its wall time, peak RSS and output."""
    env = {**os.environ, "XDG_STATE_HOME": str(state_dir)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "entropy", "--backend", f"dir:{fleet}", "validate"],
            stdout=out, stderr=err, env=env,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return {
        "time_s": elapsed,
        "rss_peak_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "exit": child.returncode,
        "stdout": stdout.decode(errors="replace").strip(),
        "stderr": stderr.decode(errors="replace").strip()[-2000:],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.runs < 1 or args.hosts < 1:
        raise SystemExit("--hosts and --runs must be at least 1")
    runs, problems = [], []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="entropy-bench-validate-", dir=args.tmpdir) as tmp:
            fleet = write_dir_fleet(Path(tmp) / "fleet", hosts=args.hosts, audits=1)
            size = (fleet.location / "hosts.yaml").stat().st_size
            one = measure(fleet.location, Path(tmp) / "state")
            one.update(run=number, hosts_yaml_bytes=size)
            expected = f"{args.hosts} hosts, 1 scripts, 1 schedule files -> {args.hosts} audits"
            if one["exit"] != 0 or one["stdout"] != expected:
                problems.append(f"run {number}: exit {one['exit']}, {one['stdout']!r} "
                                f"{one['stderr']!r}")  # fmt: skip
            runs.append(one)
    return {
        "scenario": "validate",
        "params": {"hosts": args.hosts, "runs": args.runs, "audits": 1},
        "environment": environment(),
        "runs": runs,
        "summary": {
            "time_s": Spread.of([r["time_s"] for r in runs]).as_dict(),
            "rss_peak_mib": Spread.of([r["rss_peak_mib"] for r in runs]).as_dict(),
            "bytes_per_host": Spread.of(
                [r["rss_peak_mib"] * 1024 * 1024 / args.hosts for r in runs]
            ).as_dict(),
        },
        "problems": problems,
        "ok": not problems,
        "targets": {},
        "targets_met": None,
    }


def render(result: dict[str, Any]) -> str:
    p, s = result["params"], result["summary"]
    size = result["runs"][0]["hosts_yaml_bytes"] / 1e6

    def row(label: str, key: str, fmt: str, unit: str) -> list[str]:
        v = s[key]
        return [label, f"{v['median']:{fmt}} {unit}", f"{v['min']:{fmt}}..{v['max']:{fmt}}"]

    lines = [
        f"validate: `entropy validate` on {p['hosts']:,} hosts ({size:.0f} MB hosts.yaml), "
        f"1 audit each, {p['runs']} run(s), a fresh process each",
        context_line(result["environment"]),
        "",
        table(
            ["measure", "median", "min..max"],
            [
                row("time (start-up included)", "time_s", ".1f", "s"),
                row("peak RSS of the process", "rss_peak_mib", ",.0f", "MiB"),
                row("  per host", "bytes_per_host", ",.0f", "B"),
            ],
        ),
        "\nno target; 156156c took 3.66-4.3 GB and ~40 s at 583,000 hosts.",
    ]
    lines += [f"WRONG: {problem}" for problem in result["problems"]]
    return "\n".join(lines)
