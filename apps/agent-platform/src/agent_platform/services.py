"""The platform's parts, opened together and handed to every request."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from agent_platform.auth import BearerTokens, IdentitySource, SessionCookies
from agent_platform.bus import EventBus
from agent_platform.executors import make_executor
from agent_platform.iap import open_iap
from agent_platform.metrics import Metrics
from agent_platform.scheduler import Scheduler
from agent_platform.settings import Settings
from agent_platform.store import Store, open_store


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    scheduler: Scheduler
    metrics: Metrics
    identity_sources: tuple[IdentitySource, ...]
    # Set when the server begins to stop: open event streams end, so that it need not wait
    # for them, and their clients resume from another replica.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def replica_id(settings: Settings) -> str:
    """Who holds run leases: a pod by its name; on a laptop, a restart is the same replica."""
    return f"{socket.gethostname()}:{settings.data_dir.resolve()}"


@asynccontextmanager
async def open_services(settings: Settings, metrics: Metrics) -> AsyncIterator[Services]:
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
                yield Services(
                    settings=settings,
                    store=store,
                    bus=bus,
                    scheduler=scheduler,
                    metrics=metrics,
                    identity_sources=sources if iap is None else (*sources, iap),
                )
        finally:
            await scheduler.aclose()
    finally:
        await store.aclose()
