#!/usr/bin/env python3
"""Screenshots of every page, at phone size in Chinese and at desktop size in English,
into docs/img/ (README shows them): a small simulated alliance is run and served
(`ccx simulate --serve`'s start), then Debian's Chromium, driven by Playwright, walks the
story: the alliance dashboard; a Fuzhou resident logs in at her page and takes an offer
into the web wallet; a Xiamen kiosk shows a request; the wallet answers it; the kiosk
shows the decision.

    .venv/bin/python scripts/screenshots.py [--out docs/img]      (make screenshots)

Needs a Chromium (scripts/chromium ensure) and a font with Chinese glyphs (scripts/chromium
fonts installs Debian's fonts-noto-cjk); about a minute on 2 vCPU. The pages run on the
wall clock: screenshots are not tests.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent

# The flags a headless Chromium needs on a build machine: no sandbox as root, none of
# Chromium's own calls home (a closed network refuses them, many at a time).
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
SIZES = {"phone": (PHONE, "zh"), "desktop": (DESKTOP, "en")}
SCENARIO_BUTTON = "button.scenario"


def browser_script(action: str, *, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """scripts/chromium ``action`` (ensure: the browser's path; fonts: a Chinese font)."""
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [bash, str(ROOT / "scripts" / "chromium"), action],
        check=False,
        capture_output=capture,
        text=True,
    )


def chromium() -> str:
    found = browser_script("ensure", capture=True)
    if found.returncode:
        raise SystemExit(f"screenshots: no Chromium: {found.stderr.strip()}")
    return found.stdout.strip()


@contextmanager
def alliance(work: Path) -> Iterator[tuple[Any, list[Any]]]:
    """A small simulated alliance (two cities, no faults), served with its pages."""
    from rich.console import Console

    from simulator.run import Options, Simulation
    from simulator.serve import start_pages

    options = Options(residents=200, visits=50, cities=("xiamen", "fuzhou"), faults=False,
                      out=work, progress=False)  # fmt: skip
    simulation = Simulation(options, Console(file=sys.stderr))
    simulation.run()
    served = start_pages(simulation)
    try:
        yield simulation, served
    finally:
        simulation.stop_all()


def shoot(page: Any, out: Path, name: str) -> None:
    """What the screen shows on a phone; the whole page on a desktop."""
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=name.endswith("-desktop"))
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def walk(browser: Any, simulation: Any, served: list[Any], out: Path, size: str) -> None:
    viewport, language = SIZES[size]
    xiamen = next(one for one in served if one.city == "xiamen")
    fuzhou = next(one for one in served if one.city == "fuzhou")
    context = browser.new_context(viewport=viewport, locale="zh-CN" if language == "zh" else "en")
    context.add_init_script(f"localStorage.setItem('ccx-lang', '{language}')")
    try:
        dashboard = context.new_page()
        dashboard.goto(f"{simulation.host.url}/alliance/")
        dashboard.locator("td.readiness .ready").first.wait_for()
        shoot(dashboard, out, f"dashboard-{size}")

        wallet = context.new_page()  # the resident's page, then her web wallet (same tab)
        resident_story(wallet, fuzhou, out, size)
        wallet.locator("#web-wallet-link").click()
        wallet.locator("article.credential").first.wait_for(timeout=30_000)
        shoot(wallet, out, f"wallet-{size}")

        kiosk = context.new_page()
        kiosk.goto(f"{xiamen.url}/kiosk/")
        kiosk.locator("#signin input").first.fill(xiamen.kiosk_token)
        kiosk.locator("#signin button").first.click()
        kiosk.locator(SCENARIO_BUTTON).first.click()
        kiosk.locator("#qr img.qr").wait_for()
        shoot(kiosk, out, f"kiosk-request-{size}")
        link = kiosk.locator("#request-link").text_content() or ""

        wallet.goto(f"{fuzhou.url}/wallet/?request={quote(link, safe='')}")
        wallet.locator("#request").wait_for(state="visible", timeout=30_000)
        shoot(wallet, out, f"wallet-request-{size}")
        wallet.locator("#agree").click()
        kiosk.locator("#decision[data-outcome]").wait_for(timeout=30_000)
        shoot(kiosk, out, f"kiosk-decision-{size}")
    finally:
        context.close()


def resident_story(page: Any, home: Any, out: Path, size: str) -> None:
    """Log in at the resident page through the development identity provider, show the
    score; make an offer for this device."""
    page.goto(f"{home.url}/me/")
    page.locator("#login").click()
    page.fill("input[name=subject]", home.resident)
    page.locator("button[name=login][value=yes]").click()
    page.locator("#score-value").wait_for()
    shoot(page, out, f"resident-{size}")
    page.locator("#make-offer").click()
    page.locator("#offer img.qr").wait_for()
    page.locator("#offer").scroll_into_view_if_needed()
    shoot(page, out, f"resident-offer-{size}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img",
                        help="where the PNG files go (default docs/img)")  # fmt: skip
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    if browser_script("fonts").returncode:
        print("screenshots: no font with Chinese glyphs; the Chinese text shows as boxes",
              file=sys.stderr)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = chromium()
    with (
        tempfile.TemporaryDirectory() as work,
        alliance(Path(work) / "simulation") as (simulation, served),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            for size in SIZES:
                walk(browser, simulation, served, args.out, size)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
