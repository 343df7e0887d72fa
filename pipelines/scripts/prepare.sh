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
# BuildKit runs in a container of its own image, pinned like every other (the digest of v0.25.1's
# index as public builders pass it in --driver-opt; docs/runbook.md, "Image pins").
docker buildx create --name pipeline --driver docker-container --use \
  --driver-opt image=moby/buildkit:v0.25.1@sha256:79cc6476ab1a3371c9afd8b44e7c55610057c43e18d9b39b68e2b0c2475cc1b6 \
  >/dev/null
docker buildx build --platform linux/amd64 \
  --cache-from "$cache" "${cache_to[@]}" \
  --build-context psa=tools/psa \
  --load --tag gitops-tools pipelines/tools
