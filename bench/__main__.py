"""Run the benchmarks: `python -m bench [--quick] [name ...]` (default: every bench/bench_*.py).

A benchmark is a module `bench/bench_<name>.py` whose `run(quick: bool = False) -> dict`
returns JSON-able results; a `"targets": {"what is promised": true|false}` entry says which
targets were met. Each result is written to bench/results/<name>.json and compared, number by
number, with the committed bench/baselines/<name>.json. The exit status is 1 if a benchmark
failed or a target was missed.

`--quick` runs every benchmark at a size that takes seconds, to show that each still runs and
reports (`make test` does). Its figures mean nothing: they are neither saved, compared with the
baselines nor judged against the targets, which only the full run does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# Benchmarks start the real platform with the test fixtures' servers.
sys.path.insert(0, str(ROOT / "tests"))


class BenchmarkError(Exception):
    """A benchmark that could not run or did not report as `python -m bench` expects."""


def numbers(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a nested result, by dotted path."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield prefix, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "targets":
                yield from numbers(item, f"{prefix}.{key}" if prefix else str(key))


def compare(name: str, result: dict[str, Any]) -> list[str]:
    baseline_path = BENCH / "baselines" / f"{name}.json"
    baseline = (
        dict(numbers(json.loads(baseline_path.read_text()))) if baseline_path.exists() else {}
    )
    rows = []
    for path, value in numbers(result):
        before = baseline.get(path)
        change = "" if not before else f"{(value - before) / before:+.0%}"
        shown = "" if before is None else f"{before:.6g}"
        rows.append(f"  {path:<44} {value:>12.6g} {shown:>12} {change:>6}")
    return rows


def measure(name: str, quick: bool) -> dict[str, Any]:
    """Run one benchmark and check its report."""
    try:
        module = importlib.import_module(f"bench.bench_{name}")
    except ModuleNotFoundError as error:
        if error.name != f"bench.bench_{name}":
            raise
        raise BenchmarkError(f"no benchmark {name}: bench/bench_{name}.py is missing") from error
    run = getattr(module, "run", None)
    if not callable(run):
        raise BenchmarkError(f"bench/bench_{name}.py has no run(quick: bool = False) function")
    return checked(name, run(quick=quick))


def checked(name: str, result: object) -> dict[str, Any]:
    """The result, if it reports as every benchmark must: figures and targets met or missed."""
    if not isinstance(result, dict):
        raise BenchmarkError(f"{name}: run() returned {type(result).__name__}, not a dict")
    targets = result.get("targets")
    if not isinstance(targets, dict) or not targets:
        raise BenchmarkError(f'{name}: the result has no "targets" saying what was promised')
    if not all(isinstance(met, bool) for met in targets.values()):
        raise BenchmarkError(f"{name}: every target must be true or false: {targets}")
    if not any(True for _ in numbers(result)):
        raise BenchmarkError(f"{name}: the result reports no figures")
    try:
        json.dumps(result)
    except (TypeError, ValueError) as error:
        raise BenchmarkError(f"{name}: the result cannot be saved as JSON: {error}") from error
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="check that every benchmark runs and reports"
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    failed: list[str] = []
    missed: list[str] = []
    if not args.quick:
        (BENCH / "results").mkdir(exist_ok=True)
    for name in names:
        started = time.perf_counter()
        try:
            result = measure(name, args.quick)
        except Exception as error:  # every failure is reported, and the others still run
            if not isinstance(error, BenchmarkError):
                traceback.print_exc()
            print(f"{name}: FAILED: {error}\n", flush=True)
            failed.append(name)
            continue
        seconds = time.perf_counter() - started
        if args.quick:
            print(f"{name} ({seconds:.1f}s, quick): ran and reported", flush=True)
            continue
        (BENCH / "results" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name} ({seconds:.0f}s){'':<31} {'result':>12} {'baseline':>12} {'change':>6}")
        print("\n".join(compare(name, result)))
        for target, met in result["targets"].items():
            print(f"  {'met   ' if met else 'MISSED'} {target}")
            if not met:
                missed.append(f"{name}: {target}")
        print(flush=True)
    if missed:
        print("targets missed:\n  " + "\n  ".join(missed))
    if failed:
        print("benchmarks that failed to run or report:\n  " + "\n  ".join(failed))
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
