#!/usr/bin/env bash
# Build the tools image (linux/amd64, layers cached in Artifact Registry) and load it into the
# worker's Docker as `gitops-tools`, for the steps after this one.
# usage: prepare.sh REGISTRY CACHE
# CACHE is `export` for builds of main, which may write the cache every build reads, and
# `import` for pull requests, whose code is not reviewed yet and so must not write it.
set -euo pipefail
registry=${1:?usage: prepare.sh REGISTRY CACHE} mode=${2:?missing CACHE (export or import)}
cache="type=registry,ref=${registry}/build-cache:gitops-tools"
case "$mode" in
export) cache_to=(--cache-to "${cache},mode=max") ;;
import) cache_to=() ;;
*)
  echo "prepare.sh: CACHE must be export or import, got '${mode}'" >&2
  exit 2
  ;;
esac
docker buildx create --name pipeline --driver docker-container --use >/dev/null
docker buildx build --platform linux/amd64 \
  --cache-from "$cache" "${cache_to[@]}" \
  --load --tag gitops-tools pipelines/tools
