#!/usr/bin/env bash
# Open (or refresh) the PR that promotes dev's image digests to prod, and prod's Application to
# the commit holding them: prod syncs that commit, so a change to a base reaches prod only here,
# and the PR's body shows prod's whole rendered change from the release it runs.
# usage: promote.sh REMOTE BASE_BRANCH REPO API_URL
# The branch is named after dev's current pin and main's commit, so running this twice for the
# same images and bases updates one PR instead of opening another.
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

application=apps/argocd/application-agent-platform-prod.yaml
previous=$(sed -n 's/^ *targetRevision: *//p' "$application")
if ! git cat-file -e "${previous}^{commit}" 2>/dev/null; then
  # A release merged by squash lives on in the PR's ref only.
  git fetch --quiet origin "$previous"
fi
# The commit itself: before the first promotion prod names the branch this clone commits to.
previous=$(git rev-parse --verify "${previous}^{commit}")

start=$(git rev-parse --short=12 HEAD)
gitops promote dev prod
git add overlays/prod
pin=$(git log -1 --format=%h -- overlays/dev)
if ! git diff --cached --quiet; then
  git commit --quiet -m "Promote dev's images (pinned in ${pin}) to prod" \
    -m "$(git diff HEAD~1 -- overlays/prod | grep '^[-+] *digest:' || true)"
fi
# What prod renders from: its overlay and the bases. apps/argocd only says which commit.
if git diff --quiet "$previous" HEAD -- overlays/prod apps ':!apps/argocd'; then
  echo "prod already runs dev's images and main's bases; nothing to promote"
  exit 0
fi
release=$(git rev-parse HEAD)
gitops release prod "$release"
git add "$application"
git commit --quiet -m "Release ${release:0:12} to prod" \
  -m "Prod's Application syncs the commit that holds the promoted digests, with the bases as they are there."
branch="promote/dev-${pin}-main-${start}"
git push --quiet --force origin "HEAD:refs/heads/${branch}"
{
  echo "Prod moves from \`${previous}\` to \`${release}\`: the commits below, and dev's images."
  echo
  git log --format='- %h %s' "${previous}..${release}" -- overlays/prod apps ':!apps/argocd'
  echo
  echo "What changes in prod's cluster:"
  echo
  gitops diff --base "$previous" --format markdown
} >"$work/body.md"
gitops pr-open --api-url "$api_url" --repo "$repo" --head "$branch" --base "$base" \
  --title "Promote dev's images to prod (${pin})" --body-file "$work/body.md"
