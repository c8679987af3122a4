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

# the browser flags and screen sizes are the screenshots' (docs/img)
from scripts.screenshots import CHROMIUM_ARGS, DESKTOP, PHONE

__all__ = ["CHROMIUM_ARGS", "DESKTOP", "PHONE", "browser", "chromium_path", "viewport"]


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
