#!/usr/bin/env bash
# Build one app image for linux/amd64 (GKE nodes are amd64) with its layers cached in Artifact
# Registry, and push it tagged with the commit.
# usage: build-image.sh REGISTRY APP TAG
set -euo pipefail
registry=${1:?usage: build-image.sh REGISTRY APP TAG} app=${2:?missing APP} tag=${3:?missing TAG}
cache="type=registry,ref=${registry}/build-cache:${app}"
docker buildx build --platform linux/amd64 \
  --file "apps/${app}/Dockerfile" \
  --cache-from "$cache" --cache-to "${cache},mode=max" \
  --tag "${registry}/${app}:${tag}" \
  --push .
