"""`entropy ARGS` in this process, through click's test runner."""

from __future__ import annotations

from click.testing import CliRunner, Result

from entropy.cli import main


def run(*args: str, code: int = 0) -> Result:
    """Run the CLI; fail the test, with its output, unless it exits with `code`."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result
