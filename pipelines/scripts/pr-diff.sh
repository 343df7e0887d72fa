#!/usr/bin/env bash
# Render what the PR changes in every environment against its base branch and post it as the
# PR's single diff comment (edited in place on later pushes).
# usage: pr-diff.sh REMOTE BASE_BRANCH REPO PR_NUMBER API_URL
# Cloud Build's workspace carries no git history, so the base branch is fetched first; the
# token reaches git through GIT_ASKPASS and GitHub's API through the environment only.
set -euo pipefail
remote=${1:?usage: pr-diff.sh REMOTE BASE_BRANCH REPO PR_NUMBER API_URL} base=${2:?} repo=${3:?}
pr=${4:?} api_url=${5:?}

export GIT_ASKPASS
GIT_ASKPASS="$(cd "$(dirname "$0")" && pwd)/git-askpass.sh"
export GIT_TERMINAL_PROMPT=0

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  git init --quiet
fi
git fetch --quiet --depth 50 "$remote" "refs/heads/${base}:refs/remotes/origin/${base}"

mkdir -p test-output
# Exit 1 means an environment does not render: that is reported in the comment too, and the
# validate step fails the build for it.
status=0
gitops diff --base "origin/${base}" --format markdown --output test-output/diff.md || status=$?
if [ "$status" -ge 2 ]; then exit "$status"; fi
gitops pr-comment --api-url "$api_url" --repo "$repo" --pr "$pr" --body-file test-output/diff.md
