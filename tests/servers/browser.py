"""Headless Chromium for the dashboard tests: Debian's `chromium`, driven by Playwright.

Playwright's own browser download cannot work offline, so the tests launch the system package
(`make tools` installs it). Use the `chromium_browser` fixture (one browser per test module) and
`browser_context(browser, base_url)` for a fresh profile per test; `screenshot(page, name)`
saves under test-output/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous for a loaded 2-core machine; every wait ends as soon as its condition holds.
WAIT_MS = 60_000


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if found is None:
        raise RuntimeError("Chromium is missing: `make tools` installs Debian's chromium package")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@contextmanager
def browser_context(
    browser: Browser,
    base_url: str,
    *,
    color_scheme: Literal["light", "dark"] = "light",
    width: int = 1360,
    height: int = 900,
) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=base_url,
        color_scheme=color_scheme,
        viewport={"width": width, "height": height},
    )
    context.set_default_timeout(WAIT_MS)
    try:
        yield context
    finally:
        context.close()


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
