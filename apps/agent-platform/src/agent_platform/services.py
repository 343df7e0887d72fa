"""The platform's parts, handed to every request; they are built in `agent_platform.api.app`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agent_platform.auth import IdentitySource
from agent_platform.bus import EventBus
from agent_platform.llm_gateway import LlmGateway
from agent_platform.metrics import Metrics
from agent_platform.scheduler import Scheduler
from agent_platform.settings import Settings
from agent_platform.store import Store
from agent_platform.workspaces import BlobStore


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    scheduler: Scheduler
    metrics: Metrics
    identity_sources: tuple[IdentitySource, ...]
    gateway: LlmGateway
    blobs: BlobStore
    # Set when the server begins to stop: open event streams end, so that it need not wait
    # for them, and their clients resume from another replica.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
