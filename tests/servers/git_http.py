"""A private repository's HTTPS side, as GitHub serves it, on loopback: git's smart HTTP
protocol (Git's own `git http-backend`, fetch only) behind the basic auth in which GitHub takes a
GitHub App's installation token (user `x-access-token`, the token as password).

Anything else gets 401 and `WWW-Authenticate`, as GitHub answers a private repository.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

USER = "x-access-token"


def _handler(root: Path, token: str) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{token}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: git's own errors reach the client."""

        def _refuse(self, status: int, message: str) -> None:
            body = message.encode()
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="GitHub"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            split = urlsplit(self.path)
            if self.headers.get("Authorization") != expected:
                self._refuse(401, "Authentication failed")
                return
            if "git-receive-pack" in split.path or "git-receive-pack" in split.query:
                self._refuse(403, "Write access to repository not granted")
                return
            length = int(self.headers.get("Content-Length") or 0)
            request = self.rfile.read(length) if length else b""
            environment = {
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": split.path,
                "QUERY_STRING": split.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(length),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "REMOTE_USER": USER,
                "REMOTE_ADDR": self.client_address[0],
                "PATH": "/usr/bin:/bin",
            }
            result = subprocess.run(
                ["git", "http-backend"],
                input=request,
                env=environment,
                capture_output=True,
                check=False,
                timeout=120,
            )
            head, _, body = result.stdout.partition(b"\r\n\r\n")
            headers = [line.split(":", 1) for line in head.decode().split("\r\n") if ":" in line]
            status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "status":
                    self.send_header(name, value.strip())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

    return Handler


@contextmanager
def git_http(root: Path, token: str) -> Iterator[str]:
    """Serve the bare repositories under `root` to whoever presents `token`; yields the base URL
    (a repository `origin.git` is at `<url>/origin.git`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, token))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
