"""Probes and metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent_platform.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(services: ServicesDep) -> dict[str, object]:
    """The process is up; the details say where runs execute and how they are confined."""
    settings = services.settings
    details: dict[str, str] = {"executor": settings.executor}
    if settings.executor == "local":
        details["local_sandbox"] = settings.local_sandbox
    return {"status": "ok", "details": details}


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(services: ServicesDep) -> dict[str, str]:
    """The store answers and runs are being scheduled."""
    try:
        await services.store.ping()
    except Exception as error:
        raise HTTPException(503, f"the store does not answer: {error}") from error
    if not services.scheduler.started:
        raise HTTPException(503, "the run scheduler is not running")
    return {"status": "ready"}


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics."""
    services.metrics.subscribers.set(services.bus.subscriber_count())
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
