#!/usr/bin/env bash
# Give the workspace the git repository the checks expect, then install the environment from
# uv.lock exactly. Run as the tools image's user once the workspace is theirs.
#
# A GitHub trigger checks out a shallow clone of the one commit it builds; a build from an
# uploaded source has no .git at all. Without one, the delivered files are recorded in a fresh
# repository's index, so `git ls-files` (secret scan, repository tests) lists what was delivered
# and `pr-diff.sh` can fetch the base branch into it.
set -euo pipefail
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git init --quiet
  git add --all
  echo "no git checkout in the workspace: indexed the $(git ls-files | wc -l) delivered files"
fi
uv sync --frozen
