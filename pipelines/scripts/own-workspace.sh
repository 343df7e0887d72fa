#!/usr/bin/env bash
# First step of every pipeline, run as root: hand the workspace and the builder's home to the
# tools image's user. Cloud Build leaves both owned by root, and a GitHub trigger's checkout
# brings a root-owned .git, which git refuses to read for any other user ("detected dubious
# ownership"); a mode change would leave that check failing, a change of owner does not.
# usage: own-workspace.sh UID
set -euo pipefail
uid=${1:?usage: own-workspace.sh UID}
case "$uid" in
'' | *[!0-9]*)
  echo "own-workspace.sh: UID must be numeric, got '${uid}'" >&2
  exit 2
  ;;
esac
# The step runs in /workspace with HOME=/builder/home, as every Cloud Build step does.
chown -R "${uid}:${uid}" . "${HOME:?HOME is not set: Cloud Build sets it to /builder/home}"
