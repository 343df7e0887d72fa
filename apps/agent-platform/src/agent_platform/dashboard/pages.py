"""The dashboard's page and its static files (ES modules, CSS), served from this package.

There is no build step: the browser loads the modules as they are in `static/`. The page gets a
strict Content-Security-Policy, so nothing but this origin's own scripts can run on it.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC: Final = files("agent_platform.dashboard") / "static"
ASSETS_PATH: Final = "/ui"
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at `/` and its assets under `/ui`."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.mount(ASSETS_PATH, StaticFiles(packages=[("agent_platform.dashboard", "static")]))
