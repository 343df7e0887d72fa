"""How a warm sandbox learns its run: it waits for the platform to hand over the run id and token.

A warm pool's pod starts before its run exists, so its environment cannot hold them. The runner
listens on its pod's address and accepts exactly one handover, a `POST` of the run id and token;
then it closes the socket, so nothing can reach it a second time and no sandbox serves two runs.
Only the platform's pods may connect at all (the runs' NetworkPolicy), and a handover is worth
nothing without a token the platform issued: the runner proves it by fetching its assignment.

Standard library only: the listener is up before pydantic, httpx or the SDK would have loaded.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Final

from agent_runner import wire_names as protocol
from agent_runner.config import ConfigError

# A run id and a token fit many times over; a bigger body is not a handover.
MAX_BODY_BYTES: Final = 4096


@dataclass(frozen=True)
class Handover:
    run_id: str
    run_token: str

    def __repr__(self) -> str:
        return f"Handover(run_id={self.run_id!r}, run_token=<hidden>)"


def address(env: Mapping[str, str]) -> tuple[str, int] | None:
    """Where to await the handover, or None when the environment already names the run."""
    port = env.get(protocol.ENV_HANDOVER_PORT, "").strip()
    if not port or env.get(protocol.ENV_RUN_ID, "").strip():
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{protocol.ENV_HANDOVER_PORT}={port} is not a TCP port")
    # The pod's own IP (the downward API's status.podIP): the port is not open on loopback.
    host = env.get(protocol.ENV_HANDOVER_HOST, "").strip() or "0.0.0.0"  # noqa: S104
    return host, int(port)


def parse(body: bytes) -> Handover | None:
    """The handover in a request body, or None if the body is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {
        protocol.HANDOVER_RUN_ID,
        protocol.HANDOVER_RUN_TOKEN,
    }:
        return None
    run_id, token = data[protocol.HANDOVER_RUN_ID], data[protocol.HANDOVER_RUN_TOKEN]
    if not isinstance(run_id, str) or not isinstance(token, str):
        return None
    if not run_id.strip() or not token.strip():
        return None
    return Handover(run_id.strip(), token.strip())


class Listener(HTTPServer):
    handover: Handover | None = None


class _Handler(BaseHTTPRequestHandler):
    server: Listener

    def do_POST(self) -> None:
        if self.path != protocol.HANDOVER_PATH:
            self._answer(HTTPStatus.NOT_FOUND, "not found")
            return
        length = int(self.headers.get("content-length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            self._answer(HTTPStatus.BAD_REQUEST, "a handover is a small JSON object")
            return
        handover = parse(self.rfile.read(length))
        if handover is None:
            self._answer(
                HTTPStatus.BAD_REQUEST,
                f"expected {{{protocol.HANDOVER_RUN_ID!r}, {protocol.HANDOVER_RUN_TOKEN!r}}}",
            )
            return
        self.server.handover = handover
        self._answer(HTTPStatus.ACCEPTED, "accepted")

    def _answer(self, status: HTTPStatus, message: str) -> None:
        body = json.dumps({"detail": message}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # The default writes every request line to stderr; a handover has nothing to log.
        return


def bind(host: str, port: int) -> Listener:
    """The listening socket, bound before anything waits on it (tests connect once bound)."""
    try:
        listener = Listener((host, port), _Handler, bind_and_activate=False)
        listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.server_bind()
        listener.server_activate()
    except OSError as exc:
        raise ConfigError(f"cannot listen for the handover on {host}:{port}: {exc}") from exc
    return listener


def await_handover(listener: Listener) -> Handover:
    """Serve requests one at a time until one is a handover; then stop listening for good."""
    try:
        while listener.handover is None:
            listener.handle_request()
        return listener.handover
    finally:
        listener.server_close()
