#!/usr/bin/env bash
# Ask Artifact Registry for the digest each commit tag points at and write it to digests/APP:
# the pin records what the registry holds, not what the builder believes it pushed.
# usage: read-digests.sh REGISTRY TAG APP...
set -euo pipefail
registry=${1:?usage: read-digests.sh REGISTRY TAG APP...} tag=${2:?missing TAG}
shift 2
mkdir -p digests
for app in "$@"; do
  gcloud artifacts docker images describe "${registry}/${app}:${tag}" \
    --format='value(image_summary.digest)' >"digests/${app}"
  echo "${app}: $(cat "digests/${app}")"
done
