"""Other schedulers measured beside Entropy, each in a venv of its own.

A peer is never installed into the project's environment nor made one of its
dependencies: the benchmark creates its venv once (bench/.venv-apscheduler,
git-ignored) with the pinned requirements from PyPI, and runs a small driver
script there in a fresh interpreter per run; the driver imports nothing from
entropy or bench and prints one JSON object.

    python = ensure_apscheduler()          # creates the venv the first time
    got = run_apscheduler(python, ["load", "--store", "memory", "--jobs", "1000"])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APSCHEDULER_VENV = HERE.parent / ".venv-apscheduler"
APSCHEDULER_REQUIREMENTS = ("apscheduler>=3.11,<3.12", "sqlalchemy")
APSCHEDULER_DRIVER = HERE / "apscheduler_driver.py"


class PeerError(RuntimeError):
    """A peer's venv could not be made, or its driver failed; the message says how."""


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_apscheduler(venv: Path = APSCHEDULER_VENV, quiet: bool = False) -> Path:
    """The python of a venv holding APScheduler 3.11.x; creates the venv if it is missing.

    Creating it needs network access to PyPI and takes a few seconds; it is
    done once, and `python -m bench all` does it before its timed part.
    """
    python = venv_python(venv)
    if python.exists() and _driver_works(python):
        return python
    if not quiet:
        print(f"creating {venv} with {' '.join(APSCHEDULER_REQUIREMENTS)} (once) ...", flush=True)
    started = time.perf_counter()
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *APSCHEDULER_REQUIREMENTS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            raise PeerError(
                f"could not create the APScheduler venv ({' '.join(step)}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
    if not _driver_works(python):
        raise PeerError(f"{venv} was created, but the APScheduler driver does not run in it")
    if not quiet:
        print(f"created {venv} in {time.perf_counter() - started:.1f} s", flush=True)
    return python


def _driver_works(python: Path) -> bool:
    try:
        versions = run_apscheduler(python, ["versions"])
    except PeerError:
        return False
    return str(versions.get("apscheduler", "")).startswith("3.11.")


def run_apscheduler(python: Path, args: list[str], timeout: float = 1800) -> dict[str, Any]:
    """Run the APScheduler driver once (a fresh interpreter) and return the JSON it printed."""
    try:
        done = subprocess.run(
            [str(python), str(APSCHEDULER_DRIVER), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            # The driver lives outside any package: nothing of the project's may leak in.
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            cwd=HERE,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerError(f"APScheduler driver {' '.join(args)}: {exc}") from exc
    if done.returncode:
        raise PeerError(
            f"APScheduler driver {' '.join(args)} exited {done.returncode}: "
            f"{done.stderr.strip()[-2000:]}"
        )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise PeerError(
            f"APScheduler driver {' '.join(args)} printed no JSON: {done.stdout!r}"
        ) from exc


ANSIBLE_VENV = HERE.parent / ".venv-ansible"
ANSIBLE_REQUIREMENTS = ("ansible-core>=2.17,<2.18",)


def ensure_ansible(venv: Path = ANSIBLE_VENV, quiet: bool = False) -> Path:
    """The bin/ directory of a venv holding ansible-core 2.17.x; creates the venv if missing.

    As for APScheduler: made once from PyPI, never one of Entropy's
    dependencies; `ansible` and `ansible-inventory` are run from there.
    """
    bin_dir = venv_python(venv).parent
    if _ansible_works(bin_dir):
        return bin_dir
    if not quiet:
        print(f"creating {venv} with {' '.join(ANSIBLE_REQUIREMENTS)} (once) ...", flush=True)
    started = time.perf_counter()
    for step in (
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv_python(venv)), "-m", "pip", "install", "-q", *ANSIBLE_REQUIREMENTS],
    ):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            raise PeerError(
                f"could not create the Ansible venv ({' '.join(step)}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
    if not _ansible_works(bin_dir):
        raise PeerError(f"{venv} was created, but `ansible --version` does not run in it")
    if not quiet:
        print(f"created {venv} in {time.perf_counter() - started:.1f} s", flush=True)
    return bin_dir


def _ansible_works(bin_dir: Path) -> bool:
    try:
        done = subprocess.run(
            [str(bin_dir / "ansible"), "--version"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "core 2.17." in done.stdout
