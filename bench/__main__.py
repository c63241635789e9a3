"""`python -m bench`: run Entropy's benchmarks from the repository root."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import scenarios, summary
from .common import context_line, environment, write_json
from .peers import PeerError, ensure_apscheduler

EPILOG = """\
examples:
  python -m bench all --json bench/results/all.json
                                               every scenario at full size, then one table
                                               with APScheduler's figures and the ratios
  python -m bench all --quick                  every scenario, small sizes (< 2 min)
  python -m bench all --only load,apscheduler  some scenarios, still with the table
  python -m bench load                         first start at 100000 and 1000000 pairs
  python -m bench load --pairs 100000 --runs 5
  python -m bench apscheduler                  APScheduler 3.11 (own venv) load + dispatch
  python -m bench sync                         10000 hosts x 10 audits, 3 runs
  python -m bench sync --hosts 1000 --runs 5 --json bench/results/sync.json
  python -m bench sync --runs 1 --profile bench/results/prof
  python -m bench dispatch                     20000 audits due at once, real engine
  python -m bench dispatch --store postgresql  the same on a fresh PostgreSQL schema
  python -m bench dispatch --runs 1 --profile bench/results/prof
  python -m bench steady                       100000 pairs, 1000 audits/s for 60 s
  python -m bench steady --pairs 20000 --rate 2000 --seconds 10
  python -m bench memory --runs 1              RSS per pair at 1000000 pairs
  python -m bench refresh                      refresh times at 100000 pairs
  python -m bench engines                      1, 2 and 4 engine processes on one PostgreSQL
                                               store, 100000 pairs due at once
  python -m bench engines --engines 4 --splay 20   the same at a steady 5000 audits/s
  python -m bench validate                     entropy validate on 583000 hosts: time, peak RSS
  python -m bench monitoring                   what the monitoring rules cost per result
  python -m bench api                          entropy api serve at 100000 pairs: host query,
                                               /metrics and overview, req/s and p99

Each scenario prints a table (median and min..max over the runs) and, with
--json FILE, writes the same data with the raw runs and the environment;
`all` ends with one table of every scenario's headline figures, APScheduler's
beside Entropy's with the ratio Entropy / APScheduler, and every target's
verdict, and its --json FILE holds that table too ("table"). Each run uses
a fresh fleet, a fresh state store and fresh interpreters. APScheduler runs
in bench/.venv-apscheduler, created on first use (needs PyPI). Where a
target is set (at the size it is set for), the median is checked against
it: PASS or MISS; at other sizes, "-".
Exit status: 0 done, 1 a sanity check failed (wrong row counts, a stalled
engine, results not persisted), 3 a target was missed (with `all`: a ratio
target too) and --strict was given.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Entropy benchmarks. Run from the repository root with the project's venv.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="SCENARIO", required=True)
    for name in scenarios.SCENARIOS:
        module = scenarios.load(name)
        sub = commands.add_parser(
            name,
            help=module.SUMMARY,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        _common(sub)
    every = commands.add_parser(
        "all",
        help="run every scenario (" + ", ".join(scenarios.SCENARIOS) + ") at its default size",
        description="Run every scenario in turn, each with its defaults or, with --quick, "
        "with small sizes for a smoke run; then print one table of the headline figures, "
        "APScheduler's beside Entropy's with the ratios, and the targets. At full size this "
        "takes about 17 minutes on 2 cores.",
    )
    every.add_argument(
        "--quick", action="store_true", help="small sizes, one run each: under 2 minutes"
    )
    every.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated scenarios to run (default: all of them)",
    )
    _common(every)
    again = commands.add_parser(
        "table",
        help="print the summary table of an earlier `all --json FILE` again",
        description="Rebuild the summary table from the scenario results in FILE (written "
        "by `python -m bench all --json FILE`), as text or as Markdown.",
    )
    again.add_argument("file", metavar="FILE")
    again.add_argument("--markdown", action="store_true", help="Markdown, for docs")
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")


def run_all(quick: bool, only: str | None = None) -> dict[str, Any]:
    """Every scenario (each of its VARIANTS), then the summary table; the data for --json."""
    names = list(scenarios.SCENARIOS)
    if only:
        names = [name.strip() for name in only.split(",") if name.strip()]
        unknown = sorted(set(names) - set(scenarios.SCENARIOS))
        if unknown:
            raise SystemExit(
                f"--only: no scenario {', '.join(unknown)} ({', '.join(scenarios.SCENARIOS)})"
            )
    if "apscheduler" in names:
        # Made (once) before the clock starts: a download is not a benchmark.
        try:
            ensure_apscheduler()
        except PeerError as exc:
            raise SystemExit(f"apscheduler: {exc}") from exc
    started = time.perf_counter()
    results = []
    for name in names:
        module = scenarios.load(name)
        for variant in getattr(module, "VARIANTS", ((),)):
            sub = argparse.ArgumentParser()
            module.add_arguments(sub)
            args = sub.parse_args(list(variant))
            if quick:
                for key, value in module.QUICK.items():
                    setattr(args, key, value)
            began = time.perf_counter()
            result = module.run(args)
            result["wall_s"] = time.perf_counter() - began
            print(module.render(result), end="\n\n", flush=True)
            results.append(result)
    wall = time.perf_counter() - started
    env = environment()
    table = summary.build(results)
    title = f"bench all{' --quick' if quick else ''}: {wall:.0f} s; " + context_line(env)
    print(summary.render(table, title), flush=True)
    return {
        "quick": quick,
        "wall_s": wall,
        "environment": env,
        "table": table,
        "table_text": summary.render(table, title),
        "table_markdown": summary.markdown(table),
        "scenarios": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "table":
        data = json.loads(Path(args.file).read_text())
        table = summary.build(data["scenarios"])
        if args.markdown:
            print(summary.markdown(table))
            for note in table["notes"]:
                print(f"\n{note}")
        else:
            title = f"bench all{' --quick' if data.get('quick') else ''}: {data['wall_s']:.0f} s; "
            print(summary.render(table, title + context_line(data["environment"])))
        return 0
    if args.command == "all":
        data: Any = run_all(args.quick, args.only)
        results = data["scenarios"]
    else:
        module = scenarios.load(args.command)
        result = module.run(args)
        print(module.render(result), flush=True)
        results, data = [result], result
    if args.json:
        write_json(args.json, data)
        print(f"\nwrote {args.json}")
    if not all(r["ok"] for r in results):
        return 1
    missed = any(r["targets_met"] is False for r in results)
    if args.command == "all":
        missed = missed or any(t["met"] is False for t in data["table"]["targets"])
    if args.strict and missed:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
