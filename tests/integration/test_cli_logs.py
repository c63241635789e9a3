"""--log-format json: every line an engine writes parses as JSON, for a log shipper."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
from pathlib import Path

from entropy.service.logs import JsonLines
from fleets import write_fleet
from processes import ENTROPY

HOST = {"web-1.test": {"ip_address": "127.0.0.1", "host_type": "web"}}


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_json_log_line_has_time_level_logger_message_and_the_extra_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    log = logging.getLogger("entropy.test_json_lines")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("claim of %d rows failed", 3, extra={"engine_id": "e-1", "rows": 3})
        try:
            raise ValueError("no such column: lease_until")
        except ValueError:
            log.exception("record failed")
    finally:
        log.removeHandler(handler)
    first, second = _lines(out.getvalue())
    assert set(first) == {"time", "level", "logger", "message", "engine_id", "rows"}
    assert (first["level"], first["logger"]) == ("WARNING", "entropy.test_json_lines")
    assert (first["message"], first["engine_id"], first["rows"]) == ("claim of 3 rows failed",
                                                                     "e-1", 3)  # fmt: skip
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["level"] == "ERROR" and "ValueError: no such column" in second["exc_info"]


def test_an_engine_with_json_logs_and_json_results_writes_only_json_lines(tmp_path: Path) -> None:
    fleet = write_fleet("dir", tmp_path / "fleet", hosts=HOST,
        scripts={"ok": {"kind": "command", "command": ["true"]}},
        schedules={"a.yaml": {"web": {"audits": {"ok": {"run_every": "1s"}}}}},
    )  # fmt: skip
    engine = subprocess.Popen(
        [*ENTROPY, "--log-format", "json", "--backend", f"dir:{fleet}", "engine", "run", "--json",
         "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = engine.stdout.readline()  # type: ignore[union-attr]  # blocks until a result
        engine.send_signal(signal.SIGTERM)
        out, err = engine.communicate(timeout=60)
    finally:
        engine.kill()
    assert engine.returncode == 0, err
    results = _lines(first + out)
    assert results and {r["outcome"] for r in results} == {"ok"}
    done = subprocess.CompletedProcess(engine.args, 0, first + out, err)
    logs = _lines(done.stderr)  # every line, or this fails
    assert all({"time", "level", "logger", "message"} <= set(line) for line in logs)
    said = [line["message"] for line in logs if line["logger"] == "entropy.cli"]
    assert said[0].startswith("engine ") and said[0].endswith("; Ctrl-C to stop")
    assert said[-1] == f"engine stopped; {len(results)} results recorded"
    assert any(line["logger"] == "entropy.scheduler" for line in logs)  # -v: INFO


def test_after_the_command_too_and_an_error_is_a_json_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = subprocess.run([*ENTROPY, "status", "--backend", f"dir:{missing}", "--log-format",
                           "json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    (line,) = _lines(done.stderr)
    assert line["level"] == "ERROR" and str(missing) in line["message"]
    text = subprocess.run([*ENTROPY, "status", "--backend", f"dir:{missing}"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert text.stderr.startswith("entropy: error: ") and str(missing) in text.stderr
