#!/usr/bin/env bash
# git asks for HTTPS credentials through this program (GIT_ASKPASS). The token stays in the
# environment ($GITHUB_TOKEN, from Secret Manager in Cloud Build): it is never part of a command
# line, a remote URL or a git config file.
case "${1:-}" in
Username*) printf '%s\n' "x-access-token" ;;
*) printf '%s\n' "${GITHUB_TOKEN:?GITHUB_TOKEN is not set: give the step secretEnv GITHUB_TOKEN}" ;;
esac
