"""The few GitHub REST calls the pipelines make: PR comments and opening a PR.

Standard library HTTP on purpose: the pipelines' tools image needs nothing more, and the base
URL is a parameter so tests point it at a local server.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from gitops.errors import GitopsError

DEFAULT_API_URL = "https://api.github.com"
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class GitHubError(GitopsError):
    """GitHub refused a request; the message carries its status and answer."""

    def __init__(self, method: str, url: str, status: int, answer: str) -> None:
        super().__init__(f"{method} {url} answered {status}: {answer[:500]}")
        self.status = status


@dataclass(frozen=True)
class Comment:
    id: int
    body: str


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str


class GitHub:
    """A token-authenticated client for one repository (`owner/name`)."""

    def __init__(self, api_url: str, repo: str, token: str) -> None:
        if not _REPO.fullmatch(repo):
            raise ValueError(f"{repo!r} is not a repository: write it as owner/name")
        self._base = api_url.rstrip("/")
        self._repo = repo
        self._token = token

    def comments(self, number: int) -> list[Comment]:
        """Every comment on an issue or PR, following GitHub's pagination."""
        url: str | None = f"{self._base}/repos/{self._repo}/issues/{number}/comments?per_page=100"
        found: list[Comment] = []
        while url is not None:
            page, link = self._request("GET", url)
            found.extend(Comment(int(item["id"]), str(item.get("body") or "")) for item in page)
            match = _NEXT_LINK.search(link)
            url = match.group(1) if match else None
        return found

    def create_comment(self, number: int, body: str) -> Comment:
        url = f"{self._base}/repos/{self._repo}/issues/{number}/comments"
        answer, _ = self._request("POST", url, {"body": body})
        return Comment(int(answer["id"]), str(answer["body"]))

    def update_comment(self, comment_id: int, body: str) -> Comment:
        url = f"{self._base}/repos/{self._repo}/issues/comments/{comment_id}"
        answer, _ = self._request("PATCH", url, {"body": body})
        return Comment(int(answer["id"]), str(answer["body"]))

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a PR from `head` into `base`, or return the one already open for `head`."""
        url = f"{self._base}/repos/{self._repo}/pulls"
        try:
            answer, _ = self._request(
                "POST", url, {"head": head, "base": base, "title": title, "body": body}
            )
        except GitHubError as error:
            if error.status != 422:
                raise
            owner = self._repo.split("/", 1)[0]
            existing, _ = self._request("GET", f"{url}?state=open&head={owner}:{head}")
            if not existing:
                raise
            answer = existing[0]
        return PullRequest(int(answer["number"]), str(answer["html_url"]))

    def _request(self, method: str, url: str, payload: Any = None) -> tuple[Any, str]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - https or a test's loopback
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read() or b"null"), response.headers.get("Link", "")
        except urllib.error.HTTPError as error:
            answer = error.read().decode(errors="replace")
            raise GitHubError(method, url, error.code, answer) from error
