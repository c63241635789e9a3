"""Driving real `entropy` processes from tests: run a command, start an engine, poll."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENTROPY = [sys.executable, "-m", "entropy"]


def entropy(fleet: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run `entropy --backend dir:FLEET ARGS` (with --json among them); its parsed output."""
    done = subprocess.run([*ENTROPY, "--backend", f"dir:{fleet}", *args],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_engine(fleet: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*ENTROPY, "--backend", f"dir:{fleet}", "engine", "run", "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_for(condition: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll condition every `every` s until it gives something true; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
