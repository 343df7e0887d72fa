"""The web dashboard: a page of plain ES modules served by the API, and the file endpoints it uses.

`mount_dashboard(app)` serves the page; `WorkspaceFiles(blobs, max_bytes=...)` is the router of
an agent's workspace files for its owner.
"""

from agent_platform.dashboard.pages import mount_dashboard
from agent_platform.dashboard.workspace_files import WorkspaceFiles

__all__ = ["WorkspaceFiles", "mount_dashboard"]
