"""One PR comment per pipeline, updated in place on every push instead of piling up.

The comment carries a hidden marker; the next run finds the comment by it and edits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gitops.pipelines.github import Comment, GitHub

DEFAULT_MARKER = "<!-- gitops diff -->"
# GitHub refuses comment bodies over 65536 characters.
MAX_BODY = 65_536
_TRUNCATED = "\n\n… (truncated: run `make diff` locally for the whole change)\n"


@dataclass(frozen=True)
class Upsert:
    """Edit the comment `comment_id`, or create one when it is None."""

    comment_id: int | None
    body: str


def body_with_marker(text: str, marker: str) -> str:
    """The comment text: the marker first (invisible when rendered), within GitHub's limit."""
    body = f"{marker}\n{text}"
    if len(body) <= MAX_BODY:
        return body
    return body[: MAX_BODY - len(_TRUNCATED)] + _TRUNCATED


def decide(existing: Sequence[Comment], text: str, marker: str) -> Upsert:
    """Update the oldest comment carrying the marker; otherwise create one."""
    body = body_with_marker(text, marker)
    for comment in existing:
        if comment.body.startswith(marker):
            return Upsert(comment.id, body)
    return Upsert(None, body)


def post(github: GitHub, number: int, text: str, marker: str = DEFAULT_MARKER) -> str:
    """Create or update the PR's comment; returns what was done, for the build log."""
    upsert = decide(github.comments(number), text, marker)
    if upsert.comment_id is None:
        created = github.create_comment(number, upsert.body)
        return f"created comment {created.id} on #{number}"
    github.update_comment(upsert.comment_id, upsert.body)
    return f"updated comment {upsert.comment_id} on #{number}"
