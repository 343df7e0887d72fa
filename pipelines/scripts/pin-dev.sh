#!/usr/bin/env bash
# Pin images in overlays/dev and push the change to BRANCH as the pipeline's bot.
# usage: pin-dev.sh REMOTE BRANCH SOURCE_COMMIT NAME=IMAGE@DIGEST...
#
# Works on a fresh clone of REMOTE (Cloud Build's workspace has no usable git history). When
# the branch moved between clone and push, the pin is redone on top of the new tip. Builds of
# two quick pushes may finish out of order: a build whose SOURCE_COMMIT is older than the one
# already pinned (recorded in the `Built-from:` trailer) pins nothing, so dev never goes back.
# An HTTPS remote's token comes from $GITHUB_TOKEN through GIT_ASKPASS, never from argv or
# git config.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: pin-dev.sh REMOTE BRANCH SOURCE_COMMIT NAME=IMAGE@DIGEST..." >&2
  exit 2
fi
remote=$1 branch=$2 source_commit=$3
shift 3
attempts=3

export GIT_ASKPASS
GIT_ASKPASS="$(cd "$(dirname "$0")" && pwd)/git-askpass.sh"
export GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME="agent-platform-bot" GIT_AUTHOR_EMAIL="agent-platform-bot@users.noreply.github.com"
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for attempt in $(seq 1 "$attempts"); do
  rm -rf "$work/repo"
  git clone --quiet --branch "$branch" "$remote" "$work/repo"
  pinned=$(git -C "$work/repo" log -1 --grep '^Built-from: ' \
    --format='%(trailers:key=Built-from,valueonly)' | tr -d '[:space:]')
  if [ -n "$pinned" ] && [ "$pinned" != "$source_commit" ] &&
    git -C "$work/repo" merge-base --is-ancestor "$source_commit" "$pinned" 2>/dev/null; then
    echo "dev already runs images of ${pinned}, which is newer than ${source_commit}; not pinning"
    exit 0
  fi
  (cd "$work/repo" && gitops set-image dev "$@")
  git -C "$work/repo" add overlays/dev
  if git -C "$work/repo" diff --cached --quiet; then
    echo "overlays/dev already pins these images; nothing to commit"
    exit 0
  fi
  git -C "$work/repo" commit --quiet \
    -m "Pin dev images built from ${source_commit:0:12}" \
    -m "$(printf '%s\n' "$@")" \
    -m "Built-from: ${source_commit}"
  if git -C "$work/repo" push --quiet origin "HEAD:refs/heads/${branch}"; then
    echo "pinned overlays/dev at $(git -C "$work/repo" rev-parse --short HEAD) on ${branch}"
    exit 0
  fi
  echo "push to ${branch} refused (attempt ${attempt}/${attempts}); pinning again on the new tip" >&2
done
echo "could not push the pin to ${branch} after ${attempts} attempts" >&2
exit 1
