"""Where the platform keeps its state: `open_store` picks the backend the settings name."""

from __future__ import annotations

from agent_platform.settings import Settings
from agent_platform.store.base import Store, StoreError


class BackendNotAvailable(Exception):
    """The settings select a backend this build cannot open."""


async def open_store(settings: Settings) -> Store:
    if settings.store == "sqlite":
        from agent_platform.store.sqlite import SqliteStore

        return await SqliteStore.open(settings.sqlite_path)
    if settings.store == "firestore":
        from agent_platform.store.firestore import FirestoreStore

        return FirestoreStore.open(settings.gcp_project)
    raise BackendNotAvailable(
        f"AGENT_PLATFORM_STORE={settings.store} is not available in this build; "
        "use AGENT_PLATFORM_STORE=sqlite"
    )


__all__ = ["BackendNotAvailable", "Store", "StoreError", "open_store"]
