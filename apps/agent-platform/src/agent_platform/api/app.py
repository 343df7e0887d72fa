"""The FastAPI application: one router per resource over the shared services.

To add a part, include its router here; routes reach the store, bus, scheduler and settings
through `agent_platform.api.deps.ServicesDep`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agent_platform.api import agents, events, health, runner, runs, session
from agent_platform.api.body_limit import BodyLimit
from agent_platform.api.errors import install_error_handlers
from agent_platform.api.request_metrics import RequestMetrics
from agent_platform.api.route_limits import route_limits
from agent_platform.dashboard import WorkspaceFiles, mount_dashboard
from agent_platform.gateway import Gateway
from agent_platform.metrics import Metrics
from agent_platform.services import Services, open_services
from agent_platform.settings import Settings
from agent_platform.workspaces import WorkspaceEndpoints, open_blob_store


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    gateway = Gateway.from_settings(settings)
    blobs = open_blob_store(settings)
    workspaces = WorkspaceEndpoints(blobs, max_bytes=settings.workspace_max_bytes)
    workspace_files = WorkspaceFiles(blobs, max_bytes=settings.workspace_max_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, metrics) as services:
            app.state.services = services
            try:
                yield
            finally:
                await gateway.aclose()

    app = FastAPI(
        title="AI Agent Platform",
        version="0.1.0",
        description="Create Claude agents, give them tasks, follow their runs live.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (health, session, agents, runs, events, runner):
        app.include_router(module.router)
    app.include_router(gateway.router)
    app.include_router(workspaces.router)
    app.include_router(workspace_files.router)
    mount_dashboard(app)
    app.add_middleware(BodyLimit, limits=route_limits(settings))
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


__all__ = ["Services", "create_app"]
