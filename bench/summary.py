"""The one table `python -m bench all` ends with: every scenario's headline figures, APScheduler's
beside Entropy's load and dispatch figures with the ratio Entropy / APScheduler, and every
target with its verdict.

build(results) takes the scenario results of one run (as each scenario's run() returned
them) and returns a JSON-able dict: rows (figures), targets and notes; render() prints it.
Figures missing from the run (a scenario not run, or skipped) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .common import table, verdict

# Where the ratio targets apply: the sizes the issue sets them for.
LOAD_TARGET_PAIRS = 100_000
DISPATCH_TARGET_PAIRS = 20_000
APS_DISPATCH_SQLITE_JOBS = 2_000  # fewer on APScheduler's SQLite store (it runs < 1,000/s)
LOAD_TIME_MAX_RATIO = 0.5
LOAD_BYTES_MAX_RATIO = 0.25
DISPATCH_MIN_RATIO_MEMORY = 1.0
DISPATCH_MIN_RATIO_SQLITE = 20.0

FORMATS = {
    "s": ("{:,.2f}", " s"),
    "ms": ("{:,.1f}", " ms"),
    "us": ("{:,.1f}", " us"),
    "/s": ("{:,.0f}", " /s"),
    "MiB": ("{:,.0f}", " MiB"),
    "B": ("{:,.0f}", " B"),
    "%": ("{:.1%}", ""),
    "": ("{:,.1f}", ""),
}


def fmt(value: float | None, unit: str, with_unit: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    pattern, suffix = FORMATS[unit]
    return pattern.format(value) + (suffix if with_unit else "")


def ratio(entropy: float | None, peer: float | None) -> float | None:
    if entropy is None or peer is None or peer == 0 or math.isnan(peer) or math.isnan(entropy):
        return None
    return entropy / peer


class _Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def row(
        self,
        scenario: str,
        measure: str,
        unit: str,
        spread: dict[str, float] | None,
        runs: int,
        memory: float | None = None,
        sqlite: float | None = None,
    ) -> dict[str, Any] | None:
        if spread is None:
            return None
        entry = {
            "scenario": scenario,
            "measure": measure,
            "unit": unit,
            "entropy": spread,
            "runs": runs,
            "apscheduler_memory": memory,
            "ratio_memory": ratio(spread["median"], memory),
            "apscheduler_sqlite": sqlite,
            "ratio_sqlite": ratio(spread["median"], sqlite),
        }
        self.rows.append(entry)
        return entry

    def target(
        self, name: str, limit: str, got: str, met: bool | None, value: float | None = None
    ) -> None:
        self.targets.append(
            {"target": name, "limit": limit, "got": got, "value": value, "met": met}
        )


def build(results: list[dict[str, Any]]) -> dict[str, Any]:
    t = _Table()
    by_name: dict[str, dict[str, Any]] = {}
    dispatch: dict[str, dict[str, Any]] = {}
    million: dict[str, dict[str, Any]] = {}
    for result in results:
        if result.get("skipped"):
            t.notes.append(f"{result['scenario']} skipped: {result['skipped']}")
            continue
        if result["scenario"] == "dispatch":
            dispatch[result["params"].get("store", "sqlite")] = result
        elif result["scenario"] == "million":
            million[result["params"].get("store", "sqlite")] = result
        else:
            by_name[result["scenario"]] = result
    aps = _peer(by_name.get("apscheduler"))
    _load(t, by_name.get("load"), aps)
    for store in ("sqlite", "postgresql"):
        _dispatch(t, dispatch.get(store), store, aps)
    _steady(t, by_name.get("steady"))
    _refresh(t, by_name.get("refresh"))
    _sync(t, by_name.get("sync"))
    _memory(t, by_name.get("memory"))
    _engines(t, by_name.get("engines"))
    _monitoring(t, by_name.get("monitoring"))
    _ssh(t, by_name.get("ssh"))
    for store in ("sqlite", "postgresql"):
        _million(t, million.get(store))
    _own_targets(t, results)
    if aps:
        versions = by_name["apscheduler"]["params"]["versions"]
        jobs = by_name["apscheduler"]["params"]["jobs"]
        t.notes.append(
            f"APScheduler {versions.get('apscheduler', '?')} (own venv), BackgroundScheduler; "
            f"memory store: load {jobs['load-memory']:,} jobs, dispatch "
            f"{jobs['dispatch-memory']:,} jobs; SQLite store (SQLAlchemyJobStore): load "
            f"{jobs['load-sqlite']:,} jobs, dispatch {jobs['dispatch-sqlite']:,} jobs "
            "(fewer: it adds ~1 ms a job and runs < 1,000 jobs/s), so only its per-job and "
            "rate figures are shown. APScheduler persists no results."
        )
    return {"rows": t.rows, "targets": t.targets, "notes": t.notes}


def _peer(result: dict[str, Any] | None) -> dict[str, Any]:
    """APScheduler's cases: name -> {"jobs": N, "median": {key: median}}."""
    if not result:
        return {}
    return {
        name: {"jobs": case["jobs"], "median": {k: v["median"] for k, v in case["summary"].items()}}
        for name, case in result["cases"].items()
        if case["summary"]
    }


def _peer_value(aps: dict[str, Any], case: str, key: str, jobs: int | None = None) -> float | None:
    """A peer median, or None when that case is missing or (jobs given) ran at another size."""
    got = aps.get(case)
    if not got or (jobs is not None and got["jobs"] != jobs):
        return None
    return got["median"].get(key)


def _load(t: _Table, result: dict[str, Any] | None, aps: dict[str, Any]) -> None:
    if not result:
        return
    runs = result["params"]["runs"]
    for size in result["sizes"].values():
        n, s = size["pairs"], size["summary"]
        name = f"load {n:,} pairs"

        def mem(key: str, n: int = n) -> float | None:
            return _peer_value(aps, "load-memory", key, n)

        def sql(key: str, n: int = n) -> float | None:
            """The SQLite store's per-job figure, beside the size the memory store ran at."""
            at = aps.get("load-memory", {}).get("jobs")
            return _peer_value(aps, "load-sqlite", key) if at == n else None

        t.row(
            name, "time: validate + first sync + time table", "s", s["time_s"], runs, mem("add_s")
        )
        t.row(
            name,
            "  time per pair (APScheduler: per add_job)",
            "us",
            s["us_per_pair"],
            runs,
            mem("us_per_job"),
            sql("us_per_job"),
        )
        t.row(name, "peak RSS of the process", "MiB", s["rss_peak_mib"], runs, mem("rss_peak_mib"))
        per_pair = t.row(
            name,
            "bytes per pair held (RSS after - before)",
            "B",
            s["bytes_per_pair"],
            runs,
            mem("bytes_per_job"),
            sql("bytes_per_job"),
        )
        t.row(
            name,
            "  bytes per pair after gc.collect + malloc_trim",
            "B",
            s["trimmed_bytes_per_pair"],
            runs,
            mem("trimmed_bytes_per_job"),
            sql("trimmed_bytes_per_job"),
        )
        if n == LOAD_TARGET_PAIRS or (
            n == aps.get("load-memory", {}).get("jobs")
            and LOAD_TARGET_PAIRS not in [z["pairs"] for z in result["sizes"].values()]
        ):
            _load_targets(t, n, s, per_pair, mem("add_s"))


def _load_targets(
    t: _Table,
    n: int,
    s: dict[str, dict[str, float]],
    per_pair: dict[str, Any] | None,
    peer_add_s: float | None,
) -> None:
    """The ratio targets at 100,000 pairs; at another size (--quick) the ratios, no verdict."""
    sized = n == LOAD_TARGET_PAIRS
    time_ratio = ratio(s["time_s"]["median"], peer_add_s)
    bytes_ratio = per_pair["ratio_memory"] if per_pair else None
    t.target(
        f"load {n:,}: time / APScheduler memory store add time",
        f"<= {LOAD_TIME_MAX_RATIO:g}x",
        _x(time_ratio),
        (time_ratio <= LOAD_TIME_MAX_RATIO) if sized and time_ratio is not None else None,
        time_ratio,
    )
    t.target(
        f"load {n:,}: bytes per pair / APScheduler memory store bytes per job",
        f"<= {LOAD_BYTES_MAX_RATIO:g}x",
        _x(bytes_ratio),
        (bytes_ratio <= LOAD_BYTES_MAX_RATIO) if sized and bytes_ratio is not None else None,
        bytes_ratio,
    )


def _dispatch(t: _Table, result: dict[str, Any] | None, store: str, aps: dict[str, Any]) -> None:
    if not result:
        return
    p, s = result["params"], result["summary"]
    runs, n = p["runs"], p["pairs"]
    name = f"dispatch {n:,}, {'SQLite' if store == 'sqlite' else 'PostgreSQL'} state"

    def both(key: str) -> tuple[float | None, float | None]:
        return (
            _peer_value(aps, "dispatch-memory", key, n),
            _peer_value(aps, "dispatch-sqlite", key),
        )

    rate = t.row(
        name, "audits/s, every result persisted", "/s", s["audits_per_s"], runs, *both("jobs_per_s")
    )
    t.row(name, "lateness p50", "ms", s["lateness_p50_ms"], runs, *both("p50_ms"))
    t.row(name, "lateness p99", "ms", s["lateness_p99_ms"], runs, *both("p99_ms"))
    t.row(name, "process CPU per audit", "us", s["cpu_us_per_audit"], runs, *both("cpu_us_per_job"))
    if store != "sqlite" or rate is None:
        return
    sized = n == DISPATCH_TARGET_PAIRS and not p.get("profiled")
    memory_ratio, sqlite_ratio = rate["ratio_memory"], rate["ratio_sqlite"]
    sqlite_jobs = aps.get("dispatch-sqlite", {}).get("jobs")
    t.target(
        "dispatch 20,000, SQLite: audits/s / APScheduler memory store jobs/s",
        f">= {DISPATCH_MIN_RATIO_MEMORY:g}x",
        _x(memory_ratio),
        (memory_ratio >= DISPATCH_MIN_RATIO_MEMORY) if sized and memory_ratio is not None else None,
        memory_ratio,
    )
    t.target(
        "dispatch 20,000, SQLite: audits/s / APScheduler SQLite store jobs/s",
        f">= {DISPATCH_MIN_RATIO_SQLITE:g}x",
        _x(sqlite_ratio),
        (sqlite_ratio >= DISPATCH_MIN_RATIO_SQLITE)
        if sized and sqlite_ratio is not None and sqlite_jobs == APS_DISPATCH_SQLITE_JOBS
        else None,
        sqlite_ratio,
    )


def _steady(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    p, s = result["params"], result["summary"]
    name = f"steady {p['pairs']:,} pairs, {p['rate']:,.0f}/s for {p['seconds']:g} s"
    runs = p["runs"]
    t.row(name, "due in the window that ran", "%", s["kept_up"], runs)
    t.row(name, "lateness p50", "ms", s["lateness_p50_ms"], runs)
    t.row(name, "lateness p99", "ms", s["lateness_p99_ms"], runs)
    t.row(name, "lateness max", "ms", s["lateness_max_ms"], runs)
    t.row(name, "engine CPU seconds in the window", "s", s["cpu_s"], runs)
    t.row(name, "  engine cores busy (CPU s / s)", "", s["cpu_cores"], runs)


def _refresh(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    p, s = result["params"], result["summary"]
    name = f"refresh {p['pairs']:,} pairs"
    labels = {
        "no change": "refresh, nothing changed",
        "interval": "refresh, 1% of pairs re-timed (one schedule file)",
        "hosts +1%": "refresh, 1% more hosts",
    }
    for step, label in labels.items():
        t.row(name, label, "s", s[step]["total_s"], p["runs"])


def _sync(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    p, s = result["params"], result["summary"]
    name = f"sync {p['pairs']:,} pairs"
    t.row(name, "first sync (load + insert every pair)", "s", s["first_total"], p["runs"])
    t.row(name, "re-sync, nothing changed", "s", s["resync_total"], p["runs"])


def _memory(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    p, s = result["params"], result["summary"]
    name = f"memory {p['pairs']:,} pairs (restart)"
    t.row(name, "bytes per pair held after refresh", "B", s["bytes_per_pair"], p["runs"])
    t.row(name, "refresh time (rows exist)", "s", s["refresh_s"], p["runs"])


def _engines(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    pairs = result["params"]["pairs"]
    for r in result["runs"]:
        name = f"engines {pairs:,} pairs, {r['engines']} on PostgreSQL"
        for key, measure, unit in (
            ("audits_per_s", "audits/s", "/s"),
            ("duplicates", "duplicate results", ""),
            ("lateness_p99_ms", "lateness p99 (all due at once)", "ms"),
        ):
            value = float(r[key])
            t.row(name, measure, unit, {"median": value, "min": value, "max": value}, 1)


def _monitoring(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    runs = result["params"]["runs"]
    for case in ("nothing configured", "record, + flapping", "repair hold, 10 dts"):
        t.row("monitoring, per result", case, "us", result["summary"][case], runs)


def _ssh(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    labels = {"a": "(a) kind: ssh, pooled", "b": "(b) ssh per audit", "c": "(c) Ansible ad-hoc"}
    for name, label in labels.items():
        case = result["cases"].get(name)
        if case:
            for key, measure, unit in (
                ("audits_per_s", f"{label}: audits/s", "/s"),
                ("cpu_us_per_audit", f"{label}: engine CPU per audit", "us"),
            ):
                value = float(case[key])
                t.row("ssh, 300 hosts on local sshd", measure, unit,
                      {"median": value, "min": value, "max": value}, 1)  # fmt: skip


# Each scenario's own targets: (scenario, key) -> (what, unit as in FORMATS).
OWN_TARGETS = {
    ("dispatch", "audits_per_s"): ("dispatch 20,000, SQLite: audits/s", "/s"),
    ("steady", "lateness_p99_ms"): ("steady 100,000 at 1,000/s: lateness p99", "ms"),
    ("steady", "kept_up"): ("steady 100,000 at 1,000/s: due audits that ran", "%"),
    ("sync", "first_total"): ("sync 100,000: first sync, load + sync", "s"),
    ("sync", "resync_total"): ("sync 100,000: re-sync, nothing changed", "s"),
    ("memory", "bytes_per_pair"): ("memory 1,000,000, restart: bytes per pair", "B"),
    ("engines", "audits_per_s_4_engines"): ("engines 100,000, 4 on PostgreSQL: audits/s", "/s"),
    ("ssh", "a_vs_b"): ("ssh: kind ssh / ssh per audit, audits/s", ""),
    ("ssh", "a_vs_c"): ("ssh: kind ssh / Ansible ad-hoc, audits/s", ""),
    ("ssh", "idle_kib"): ("ssh: RSS per idle connection, 1,000 held (KiB)", ""),
    ("million", "first_start_s"): ("million: first start, 1,000,000 pairs", "s"),
    ("million", "first_start_peak_mib"): ("million: peak RSS over the first start", "MiB"),
    ("million", "one file_s"): ("million: one schedule file changed, applied", "s"),
    ("million", "one file_peak_over_mib"): ("million: peak RSS over that refresh", "MiB"),
    ("api", "host query p99"): ("api 100,000: GET /v1/audits?host=H, p99", "s"),
    ("api", "metrics p99"): ("api 100,000: GET /metrics, full scrape, p99", "s"),
}


def _million(t: _Table, result: dict[str, Any] | None) -> None:
    if not result:
        return
    p, s = result["params"], result["summary"]
    name = f"million {p['pairs']:,} pairs, {p['store']}"
    for key, measure, unit in (
        ("first_start_s", "first start: validate + sync + time table", "s"),
        ("first_start_peak_mib", "first start: peak RSS", "MiB"),
        ("one file_s", "refresh, one schedule file changed (1% of pairs)", "s"),
        ("one file_peak_over_mib", "  peak RSS over steady state", "MiB"),
        ("no change_s", "refresh, nothing changed", "s"),
        ("host gone_s", "refresh, one host removed", "s"),
        ("full re-sync_s", "full re-sync (in a child process)", "s"),
        ("full re-sync_peak_over_mib", "  engine's peak RSS over steady state", "MiB"),
        ("child_peak_mib", "  the child's peak RSS", "MiB"),
    ):
        t.row(name, measure, unit, s.get(key), p["runs"])


def _own_targets(t: _Table, results: list[dict[str, Any]]) -> None:
    """Each scenario's own targets (dispatch, steady, sync, memory), as they judged them."""
    for result in results:
        for key, target in result.get("targets", {}).items():
            what, unit = OWN_TARGETS.get((result["scenario"], key), (key, ""))
            got = target.get("median", target.get("median_s"))
            if "min" in target:
                limit = f">= {fmt(target['min'], unit)}"
            elif "max" in target:
                limit = f"<= {fmt(target['max'], unit)}"
            else:
                limit = f"< {fmt(target['limit_s'], unit)}"
            t.target(what, limit, fmt(got, unit), target["met"], got)


def _x(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"


def render(summary: dict[str, Any], title: str = "") -> str:
    header = [
        "scenario / measure",
        "Entropy",
        "min..max",
        "runs",
        "APScheduler memory",
        "E/APS",
        "APScheduler SQLite",
        "E/APS",
    ]
    rows = []
    last = None
    for r in summary["rows"]:
        unit, s = r["unit"], r["entropy"]
        if r["scenario"] != last:
            rows.append([f"{r['scenario']}:"] + [""] * (len(header) - 1))
        last = r["scenario"]
        rows.append(
            [
                "  " + r["measure"],
                fmt(s["median"], unit),
                f"{fmt(s['min'], unit, False)}..{fmt(s['max'], unit, False)}",
                str(r["runs"]),
                fmt(r["apscheduler_memory"], unit),
                _x(r["ratio_memory"]),
                fmt(r["apscheduler_sqlite"], unit),
                _x(r["ratio_sqlite"]),
            ]
        )
    targets = [[x["target"], x["limit"], x["got"], verdict(x["met"])] for x in summary["targets"]]
    lines = [title] if title else []
    lines += [
        table(header, rows),
        "",
        table(["target", "limit", "got", "verdict"], targets),
    ]
    for note in summary["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    """The same table in Markdown, for docs/performance.md."""
    cell: Callable[[Any], str] = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = [
        "| scenario: measure | Entropy (median) | min..max | runs | APScheduler memory | "
        "E/APS | APScheduler SQLite | E/APS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["rows"]:
        unit, s = r["unit"], r["entropy"]
        lines.append(
            "| "
            + " | ".join(
                cell(c)
                for c in (
                    f"{r['scenario']}: {r['measure'].strip()}",
                    fmt(s["median"], unit),
                    f"{fmt(s['min'], unit, False)}..{fmt(s['max'], unit, False)}",
                    r["runs"],
                    fmt(r["apscheduler_memory"], unit),
                    _x(r["ratio_memory"]),
                    fmt(r["apscheduler_sqlite"], unit),
                    _x(r["ratio_sqlite"]),
                )
            )
            + " |"
        )
    lines += ["", "| target | limit | got | verdict |", "| --- | ---: | ---: | --- |"]
    for x in summary["targets"]:
        lines.append(
            f"| {cell(x['target'])} | {cell(x['limit'])} | {cell(x['got'])} | {verdict(x['met'])} |"
        )
    return "\n".join(lines)
