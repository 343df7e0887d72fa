#!/usr/bin/env bash
# Open (or refresh) the PR that promotes dev's image digests to prod.
# usage: promote.sh REMOTE BASE_BRANCH REPO API_URL
# The branch is named after dev's current pin, so running this twice for the same images
# updates one PR instead of opening another.
set -euo pipefail
remote=${1:?usage: promote.sh REMOTE BASE_BRANCH REPO API_URL} base=${2:?} repo=${3:?}
api_url=${4:?}

export GIT_ASKPASS
GIT_ASKPASS="$(cd "$(dirname "$0")" && pwd)/git-askpass.sh"
export GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME="agent-platform-bot" GIT_AUTHOR_EMAIL="agent-platform-bot@users.noreply.github.com"
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --branch "$base" "$remote" "$work/repo"
cd "$work/repo"

gitops promote dev prod
git add overlays/prod
if git diff --cached --quiet; then
  echo "prod already runs dev's images; nothing to promote"
  exit 0
fi
pin=$(git log -1 --format=%h -- overlays/dev)
branch="promote/dev-${pin}"
git commit --quiet -m "Promote dev's images (pinned in ${pin}) to prod" \
  -m "$(git diff HEAD~1 -- overlays/prod | grep '^[-+] *digest:' || true)"
git push --quiet --force origin "HEAD:refs/heads/${branch}"
git diff HEAD~1 -- overlays/prod >"$work/body.md"
gitops pr-open --api-url "$api_url" --repo "$repo" --head "$branch" --base "$base" \
  --title "Promote dev's images to prod (${pin})" --body-file "$work/body.md"
