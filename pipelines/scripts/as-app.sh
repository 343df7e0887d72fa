#!/usr/bin/env bash
# Run COMMAND as the pipeline's GitHub App: trade the App's key for an installation token that
# may touch only this repository and only with PERMISSIONS, hand it to COMMAND as GITHUB_TOKEN
# (which git-askpass.sh and `gitops pr-comment`/`pr-open` read), and keep the key from it.
# usage: as-app.sh "PERMISSION..." COMMAND [ARG...]
# Environment: GITHUB_APP_KEY (secretEnv), GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID,
# GITHUB_API_URL and GITHUB_REPOSITORY (owner/name), set by the step's `env`.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo 'usage: as-app.sh "PERMISSION..." COMMAND [ARG...]' >&2
  exit 2
fi
read -r -a permissions <<<"$1"
shift
: "${GITHUB_APP_KEY:?GITHUB_APP_KEY is not set: give the step secretEnv GITHUB_APP_KEY}"
GITHUB_TOKEN=$(gitops github-token \
  --api-url "${GITHUB_API_URL:?set GITHUB_API_URL in the step env}" \
  --app-id "${GITHUB_APP_ID-}" \
  --installation-id "${GITHUB_APP_INSTALLATION_ID-}" \
  --repo "${GITHUB_REPOSITORY:?set GITHUB_REPOSITORY in the step env}" \
  "${permissions[@]}")
export GITHUB_TOKEN
unset GITHUB_APP_KEY
exec "$@"
