#!/usr/bin/env bash
# The tests that need no browser, emulator or cluster, with a JUnit report for the build's
# artifacts. The environment comes from uv.lock exactly (the sync step).
set -euo pipefail
mkdir -p test-output
uv run --frozen --no-sync pytest -m "not browser and not emulator and not cluster" \
  --junitxml=test-output/junit-tests.xml
