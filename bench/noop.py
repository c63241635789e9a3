"""The audit every benchmark fleet runs: it does nothing, so only Entropy is measured."""

from __future__ import annotations

from typing import Any


def noop(host: Any, params: Any) -> None:
    return None
