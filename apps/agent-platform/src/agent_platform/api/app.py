"""The one place the application is assembled: every service built, every router included.

To add an endpoint, add it to its resource's module in `agent_platform.api` (or a new module,
included below); routes reach the store, bus, scheduler, gateway, blobs and settings through
`agent_platform.api.deps.ServicesDep`. To add a service, add a field to
`agent_platform.services.Services` and build it in `open_services`.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agent_platform.api import (
    agents,
    events,
    files,
    gateway,
    health,
    runner,
    runs,
    session,
    workspace,
)
from agent_platform.api.body_limit import BodyLimit
from agent_platform.api.errors import UncaughtErrors, install_error_handlers
from agent_platform.api.request_metrics import RequestMetrics
from agent_platform.api.route_limits import route_limits
from agent_platform.auth import BearerTokens, IdentitySource, SessionCookies
from agent_platform.bus import EventBus
from agent_platform.dashboard import mount_dashboard
from agent_platform.executors import make_executor
from agent_platform.iap import open_iap
from agent_platform.llm_gateway import LlmGateway
from agent_platform.metrics import Metrics
from agent_platform.scheduler import Scheduler
from agent_platform.services import Services
from agent_platform.settings import Settings
from agent_platform.store import open_store
from agent_platform.workspaces import open_blob_store

# Matched in this order: runners' event posts and the event streams first, as they are most of
# a busy platform's requests, and every route tried before the right one costs a match.
ROUTERS = (runner, events, gateway, health, session, agents, runs, files, workspace)


def replica_id(settings: Settings) -> str:
    """Who holds run leases: a pod by its name; on a laptop, a restart is the same replica."""
    return f"{socket.gethostname()}:{settings.data_dir.resolve()}"


@asynccontextmanager
async def open_services(settings: Settings, metrics: Metrics) -> AsyncIterator[Services]:
    """Open every part the routes use, and close them in reverse when the server stops."""
    blobs = open_blob_store(settings)
    store = await open_store(settings)
    try:
        bus = EventBus()
        scheduler = Scheduler(
            store=store,
            bus=bus,
            metrics=metrics,
            executor_factory=lambda on_exit: make_executor(settings, on_exit),
            max_concurrent_runs=settings.max_concurrent_runs,
            public_url=settings.public_url,
            replica_id=replica_id(settings),
            lease_seconds=settings.run_lease_seconds,
        )
        await scheduler.start()
        try:
            async with open_iap(settings, store) as iap:
                # An explicit credential first: a script's token through IAP is still its token.
                sources: tuple[IdentitySource, ...] = (BearerTokens(store), SessionCookies(store))
                gateway = LlmGateway.from_settings(settings)
                try:
                    yield Services(
                        settings=settings,
                        store=store,
                        bus=bus,
                        scheduler=scheduler,
                        metrics=metrics,
                        identity_sources=sources if iap is None else (*sources, iap),
                        gateway=gateway,
                        blobs=blobs,
                    )
                finally:
                    await gateway.aclose()
        finally:
            await scheduler.aclose()
    finally:
        await store.aclose()


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, metrics) as services:
            app.state.services = services
            yield

    app = FastAPI(
        title="AI Agent Platform",
        version="0.1.0",
        description="Create Claude agents, give them tasks, follow their runs live.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    mount_dashboard(app)
    app.add_middleware(BodyLimit, limits=route_limits(settings))
    app.add_middleware(RequestMetrics, metrics=metrics)
    # Outermost, so that a failure of any other middleware is answered in the error shape too.
    app.add_middleware(UncaughtErrors)
    return app


__all__ = ["Services", "create_app", "open_services"]
