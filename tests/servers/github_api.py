"""A local server speaking the slice of GitHub's REST API the pipelines use.

Issue comments (listed page by page with a `Link` header, created, edited), pull requests
(opened, listed by head) and a GitHub App's installation tokens (issued for a JWT signed with
the App's key). It keeps its state in memory, requires the bearer token it was started with
(the installation token it issues), and records every request so tests can say what reached
GitHub.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_COMMENTS = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")
_COMMENT = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$")
_PULLS = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$")
_ACCESS_TOKENS = re.compile(r"^/app/installations/(\d+)/access_tokens$")


@dataclass(frozen=True)
class App:
    """The GitHub App the server knows: its id, installation and public key."""

    id: str
    installation_id: str
    public_key: rsa.RSAPublicKey


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str
    body: Any


@dataclass
class GitHubState:
    token: str
    page_size: int = 30
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    app: App | None = None
    # The repositories and permissions of every installation token issued, in order.
    issued: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_comment(self, number: int, body: str) -> dict[str, Any]:
        with self.lock:
            self.next_id += 1
            comment = {"id": self.next_id, "body": body, "user": {"login": "someone"}}
            self.comments.setdefault(number, []).append(comment)
            return comment


@dataclass
class GitHubServer:
    url: str
    state: GitHubState


def _handler(state: GitHubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the recorded requests are the log."""

        def _reply(self, status: int, payload: Any, link: str = "") -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if link:
                self.send_header("Link", link)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            authorization = self.headers.get("Authorization", "")
            state.requests.append(Recorded(method, split.path, authorization, body))
            if (match := _ACCESS_TOKENS.match(split.path)) and method == "POST":
                self._issue_token(match.group(1), authorization, body)
                return
            if authorization != f"Bearer {state.token}":
                self._reply(401, {"message": "Bad credentials"})
                return
            query = {key: values[0] for key, values in parse_qs(split.query).items()}
            self._route(method, split.path, query, body)

        def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            if (match := _COMMENTS.match(path)) and method == "GET":
                self._list_comments(path, int(match.group(3)), query)
            elif (match := _COMMENTS.match(path)) and method == "POST":
                self._reply(201, state.add_comment(int(match.group(3)), body["body"]))
            elif (match := _COMMENT.match(path)) and method == "PATCH":
                self._edit_comment(int(match.group(3)), body["body"])
            elif (match := _PULLS.match(path)) and method == "POST":
                self._open_pull(match.group(1), body)
            elif _PULLS.match(path) and method == "GET":
                self._reply(200, [p for p in state.pulls if p["head_label"] == query.get("head")])
            else:
                self._reply(404, {"message": "Not Found"})

        def _issue_token(self, installation: str, authorization: str, body: Any) -> None:
            app = state.app
            if app is None or installation != app.installation_id:
                self._reply(404, {"message": "Not Found"})
                return
            if not _valid_app_jwt(authorization.removeprefix("Bearer "), app):
                self._reply(401, {"message": "A JSON web token could not be decoded"})
                return
            state.issued.append(body or {})
            self._reply(201, {"token": state.token, "permissions": (body or {}).get("permissions")})

        def _list_comments(self, path: str, number: int, query: dict[str, str]) -> None:
            size = min(int(query.get("per_page", 30)), state.page_size)
            page = int(query.get("page", 1))
            everything = state.comments.get(number, [])
            chunk = everything[(page - 1) * size : page * size]
            link = ""
            if page * size < len(everything):
                host = self.headers["Host"]
                link = f'<http://{host}{path}?per_page={size}&page={page + 1}>; rel="next"'
            self._reply(200, chunk, link)

        def _edit_comment(self, comment_id: int, text: str) -> None:
            for comments in state.comments.values():
                for comment in comments:
                    if comment["id"] == comment_id:
                        comment["body"] = text
                        self._reply(200, comment)
                        return
            self._reply(404, {"message": "Not Found"})

        def _open_pull(self, owner: str, body: dict[str, Any]) -> None:
            label = f"{owner}:{body['head']}"
            if any(p["head_label"] == label for p in state.pulls):
                message = f"A pull request already exists for {label}."
                self._reply(422, {"message": "Validation Failed", "errors": [{"message": message}]})
                return
            number = len(state.pulls) + 1
            pull = {
                **body,
                "number": number,
                "head_label": label,
                "html_url": f"https://github.com/{owner}/pull/{number}",
            }
            state.pulls.append(pull)
            self._reply(201, pull)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _valid_app_jwt(jwt: str, app: App) -> bool:
    """GitHub's checks: RS256 by the App's key, issued by the App, at most ten minutes long."""
    try:
        header, payload, signature = jwt.split(".")
        app.public_key.verify(
            _unb64(signature),
            f"{header}.{payload}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        claims = json.loads(_unb64(payload))
    except (ValueError, InvalidSignature):
        return False
    now = time.time()
    return (
        json.loads(_unb64(header)).get("alg") == "RS256"
        and str(claims.get("iss")) == app.id
        and claims["iat"] <= now < claims["exp"]
        and claims["exp"] - claims["iat"] <= 600
    )


@contextmanager
def github_api(token: str, page_size: int = 30, app: App | None = None) -> Iterator[GitHubServer]:
    """Serve the API on a free loopback port for the duration of the block."""
    state = GitHubState(token=token, page_size=page_size, app=app)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield GitHubServer(f"http://127.0.0.1:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
