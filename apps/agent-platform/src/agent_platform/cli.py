"""`agent-platform`: serve the API, and the operator's chores (users, tokens, login links).

Every command reads the same settings as the server (AGENT_PLATFORM_* and `.env`); flags
override them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import signal
import socket
import sys
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from agent_platform.api import create_app
from agent_platform.auth import ADMIN_NAME, ensure_user, issue_token
from agent_platform.domain import TokenKind
from agent_platform.executors.local import bubblewrap_problem
from agent_platform.logs import configure_logging
from agent_platform.services import Services
from agent_platform.settings import Settings
from agent_platform.store import Store, StoreError, open_store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-platform", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="where local state lives (default .data)")
    parser.add_argument("--store", choices=["sqlite", "firestore"])
    parser.add_argument("--sqlite-path", type=Path, help="default <data-dir>/platform.db")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API and run agents")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True
    )
    create_user = user.add_parser("create", help="create a user")
    create_user.add_argument("name")
    create_user.add_argument("--admin", action="store_true")
    user.add_parser("list", help="list users")

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True
    )
    create_token = token.add_parser(
        "create", help="print a new API token for a user (created if missing)"
    )
    create_token.add_argument("--user", default=ADMIN_NAME, help=f"default {ADMIN_NAME}")
    create_token.add_argument("--name", default="cli", help="what the token is for")

    login = commands.add_parser("login-url", help="print a one-time login URL for a user")
    login.add_argument("--user", default=ADMIN_NAME, help=f"default {ADMIN_NAME}")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    names = ("data_dir", "store", "sqlite_path", "host", "port")
    overrides: dict[str, Any] = {
        n: getattr(args, n) for n in names if getattr(args, n, None) is not None
    }
    return Settings(**overrides)


async def _open(settings: Settings) -> Store:
    try:
        return await open_store(settings)
    except StoreError:
        raise
    except Exception as error:
        # Credentials, paths, emulators: whatever stops the store from opening, said plainly.
        raise StoreError(
            f"cannot open the {settings.store} store: {type(error).__name__}: {error}"
        ) from error


async def login_url(settings: Settings, user_name: str = ADMIN_NAME) -> str:
    store = await _open(settings)
    try:
        user = await ensure_user(store, user_name, is_admin=user_name == ADMIN_NAME)
        ttl = timedelta(seconds=settings.login_code_ttl_seconds)
        issued = await issue_token(store, user, kind=TokenKind.LOGIN, name="login link", ttl=ttl)
    finally:
        await store.aclose()
    return f"{settings.public_url}/login?code={issued.secret}"


async def _create_token(settings: Settings, user_name: str, name: str) -> str:
    store = await _open(settings)
    try:
        user = await ensure_user(store, user_name, is_admin=user_name == ADMIN_NAME)
        return (await issue_token(store, user, kind=TokenKind.API, name=name)).secret
    finally:
        await store.aclose()


async def _create_user(settings: Settings, name: str, admin: bool) -> str:
    store = await _open(settings)
    try:
        return (await ensure_user(store, name, is_admin=admin)).id
    finally:
        await store.aclose()


async def _list_users(settings: Settings) -> list[str]:
    store = await _open(settings)
    try:
        users = await store.list_users()
        return ["\t".join([u.id, u.name] + (["admin"] if u.is_admin else [])) for u in users]
    finally:
        await store.aclose()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prints_login_url(settings: Settings) -> bool:
    """Whether `serve` prints a login URL: only for the embedded store, reachable from here.

    The URL is a credential. Anywhere else (a cloud store, an address others reach) the output
    goes to shared logs, and an operator asks `agent-platform login-url` for a link instead.
    """
    return settings.print_login_url and settings.store == "sqlite" and _is_loopback(settings.host)


# After a SIGTERM, how long open requests may take to finish before they are cancelled: well
# inside Kubernetes' default 30 s grace period, so that the lifespan shutdown still runs.
GRACEFUL_SHUTDOWN_SECONDS = 10


class PlatformServer(uvicorn.Server):
    """uvicorn, ending the app's open event streams before it waits for requests to finish."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, *, handle_signals: bool) -> None:
        super().__init__(config)
        self._app = app
        self._handle_signals = handle_signals

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(self._app.state, "services", None)
        if isinstance(services, Services):
            services.stopping.set()
        await super().shutdown(sockets)

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self._handle_signals:  # the process is not the platform's: leave its signals
            yield
            return
        # uvicorn raises a SIGTERM it handled again once it has stopped, so the process would
        # die of it; a stop that completed is a success (exit 0).
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


def _settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector from stalling a busy server.

    What exists once the app is built lives as long as the process, so it is frozen out of
    every later collection. Requests allocate objects by the thousand that die young, so the
    youngest generation is collected every 10,000 allocations rather than Python's 700. With
    the defaults, a busy event flow spent over a tenth of the platform's CPU collecting, and
    each full collection stopped the event loop for up to 100 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _local_sandbox_statement(settings: Settings) -> str:
    """What confines local runs, said where whoever started the platform reads it."""
    if settings.local_sandbox == "none":
        return (
            "WARNING: AGENT_PLATFORM_LOCAL_SANDBOX=none: agents' commands run unconfined, with "
            "everything this user can read and reach"
        )
    problem = asyncio.run(bubblewrap_problem())
    if problem is not None:
        return f"Local runs will be refused: {problem}"
    return "Agents' commands run in a bubblewrap sandbox: their workspace and nothing else"


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level)
    if settings.executor == "local":
        print(_local_sandbox_statement(settings), flush=True)
    if prints_login_url(settings):
        url = asyncio.run(login_url(settings))
        print(
            f"AI Agent Platform on {settings.public_url}\n"
            f"Sign in as {ADMIN_NAME} (this link works once, for "
            f"{settings.login_code_ttl_seconds // 60} minutes): {url}\n"
            "A new link: agent-platform login-url · an API token: agent-platform token create",
            flush=True,
        )
    app = create_app(settings)
    _settle_garbage_collector()
    platform_server(app, settings.host, settings.port).run()


def platform_server(
    app: FastAPI, host: str, port: int, *, handle_signals: bool = True
) -> PlatformServer:
    """The server `serve` runs: the tests serve the app in their own loop through it too,
    leaving SIGINT and SIGTERM to the test runner (`handle_signals=False`)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        # The access log would print login codes in query strings; requests are counted in
        # /metrics instead.
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return PlatformServer(config, app, handle_signals=handle_signals)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "serve":
            serve(settings)
        elif args.command == "user" and args.action == "create":
            print(asyncio.run(_create_user(settings, args.name, args.admin)))
        elif args.command == "user":
            print("\n".join(asyncio.run(_list_users(settings))))
        elif args.command == "token":
            print(asyncio.run(_create_token(settings, args.user, args.name)))
        elif args.command == "login-url":
            print(asyncio.run(login_url(settings, args.user)))
    except StoreError as error:
        print(f"agent-platform: {error}", file=sys.stderr)
        return 2
    return 0
