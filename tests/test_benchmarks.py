"""`python -m bench`, as `make test` runs it: a benchmark that cannot run fails the check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_benchmark_fails_the_quick_run_with_its_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "no_such_benchmark"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bench/bench_no_such_benchmark.py is missing" in done.stdout
