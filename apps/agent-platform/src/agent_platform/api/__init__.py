"""The HTTP surface of the platform: `create_app(settings)` builds it."""

from agent_platform.api.app import create_app

__all__ = ["create_app"]
