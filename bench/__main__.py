# `python -m bench [--only NAME] [--quick]`: run the scenarios, write bench-results/ and BENCHMARKS.md.
from __future__ import annotations

import argparse
import importlib
import sys

from bench.harness import Scenario, run_scenarios, write_results

# Each module holds SCENARIOS: list[Scenario]; a module not written yet is skipped.
SCENARIO_MODULES = (
    "bench.intake",
    "bench.shards",
    "bench.webhook",
    "bench.tallies",
    "bench.integrity",
    "bench.journey",
)


def load_scenarios() -> list[Scenario]:
    scenarios: list[Scenario] = []
    for name in SCENARIO_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        scenarios.extend(module.SCENARIOS)
    return scenarios


def main(argv: list[str] | None = None) -> int:
    scenarios = load_scenarios()
    parser = argparse.ArgumentParser(prog="python -m bench", description="wxsurvey benchmarks")
    parser.add_argument("--only", action="append", help="a scenario name or prefix (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small sizes (checks the harness)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(s.name for s in scenarios))
        return 0
    known = {s.name for s in scenarios}
    for only in args.only or []:
        if not any(n == only or n.startswith(only + ".") for n in known):
            parser.error(f"no scenario named {only!r}; known: {', '.join(sorted(known))}")
    results = run_scenarios(scenarios, quick=args.quick, only=args.only)
    path = write_results(results, quick=args.quick)
    print(f"[bench] wrote {path} and BENCHMARKS.md", file=sys.stderr)
    missed = [r.name for r in results if r.ok is False]
    if missed:
        print(f"[bench] targets missed: {', '.join(missed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
