"""Run the benchmarks: `python -m bench [name ...]` (default: every bench/bench_*.py).

A benchmark is a module `bench/bench_<name>.py` with a `run() -> dict` function returning
JSON-able results; a `"targets": {"what is promised": true|false}` entry says which targets
were met. Each result is written to bench/results/<name>.json and compared, number by number,
with the committed bench/baselines/<name>.json. The exit status is 1 if a target was missed.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# Benchmarks start the real platform with the test fixtures' helpers.
sys.path.insert(0, str(ROOT / "tests"))


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


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    missed: list[str] = []
    (BENCH / "results").mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        if not hasattr(module, "run"):
            print(f"{name}: no run() function; run it with `python -m bench.bench_{name}`\n")
            continue
        started = time.perf_counter()
        result: dict[str, Any] = module.run()
        seconds = time.perf_counter() - started
        (BENCH / "results" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name} ({seconds:.0f}s){'':<31} {'result':>12} {'baseline':>12} {'change':>6}")
        print("\n".join(compare(name, result)))
        for target, met in result.get("targets", {}).items():
            print(f"  {'met   ' if met else 'MISSED'} {target}")
            if not met:
                missed.append(f"{name}: {target}")
        print()
    if missed:
        print("targets missed:\n  " + "\n  ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
