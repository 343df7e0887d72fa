#!/usr/bin/env bash
# First step of every pipeline, run as root in the docker builder: let the tools image's
# non-root user write the workspace, then build that image (linux/amd64, layers cached in
# Artifact Registry) and load it into the worker's Docker as `gitops-tools`.
# usage: prepare.sh REGISTRY
set -euo pipefail
registry=${1:?usage: prepare.sh REGISTRY}
chmod -R a+rwX /workspace /builder/home
docker buildx create --name pipeline --driver docker-container --use >/dev/null
cache="type=registry,ref=${registry}/build-cache:gitops-tools"
docker buildx build --platform linux/amd64 \
  --cache-from "$cache" --cache-to "${cache},mode=max" \
  --load --tag gitops-tools pipelines/tools
