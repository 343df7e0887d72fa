"""The web dashboard: a page of plain ES modules served by the API.

`mount_dashboard(app)` serves the page; the workspace files it shows are `agent_platform.api.files`.
"""

from agent_platform.dashboard.pages import mount_dashboard

__all__ = ["mount_dashboard"]
