"""The browser of the page tests (issue 16): Debian's Chromium, driven by Playwright,
headless, on loopback only. `make test` finds or installs it first (scripts/chromium) and
passes its path in CCX_CHROMIUM; without one these tests fail, saying how to get it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

# The flags a browser on this machine needs: no sandbox as root, and none of Chromium's
# own calls home (the machine's closed network refuses them, many at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def chromium_path() -> str:
    path = os.environ.get("CCX_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "no Chromium for the browser tests: run them through `make test` (it installs "
            "Debian's chromium with scripts/chromium), or set CCX_CHROMIUM"
        )
    return path


# Package scope, not session: Playwright's sync API keeps an event loop running in
# this thread while it is open, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(params=["phone", "desktop"])
def viewport(request: pytest.FixtureRequest) -> dict[str, Any]:
    return PHONE if request.param == "phone" else DESKTOP
