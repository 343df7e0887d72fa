#!/usr/bin/env bash
# A step script whose build leaves the platform to the builder's default.
set -euo pipefail
docker build --tag app .
