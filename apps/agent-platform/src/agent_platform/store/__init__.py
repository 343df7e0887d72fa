"""Where the platform keeps its state: `open_store` picks the backend the settings name."""

from __future__ import annotations

from typing import assert_never

from agent_platform.settings import Settings
from agent_platform.store.base import Store, StoreError


async def open_store(settings: Settings) -> Store:
    if settings.store == "sqlite":
        from agent_platform.store.sqlite import SqliteStore

        return await SqliteStore.open(settings.sqlite_path)
    if settings.store == "firestore":
        from agent_platform.store.firestore import FirestoreStore

        return FirestoreStore.open(settings.gcp_project)
    # Settings reject any other value, so mypy proves every backend has a branch here.
    assert_never(settings.store)


__all__ = ["Store", "StoreError", "open_store"]
