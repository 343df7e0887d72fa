#!/usr/bin/env bash
# Render and validate every environment, look for committed secrets, check the pipelines
# themselves. Each check runs even when an earlier one fails, so one build shows every problem.
set -uo pipefail
mkdir -p test-output
status=0
uv run --frozen --no-sync gitops validate --report junit=test-output/junit-validate.xml || status=1
uv run --frozen --no-sync gitops scan-secrets || status=1
uv run --frozen --no-sync gitops pipelines check || status=1
exit "$status"
