"""The status page in a real browser: Playwright driving Debian's Chromium (no browser
download) against the app on a real uvicorn. Saves artifacts/status-page.png (desktop)
and artifacts/status-page-phone.png.

Without /usr/bin/chromium (or the playwright package) the test skips on a developer's
machine and fails in CI (CI=true), where .ci/run installs Chromium first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import pytest
from test_web_support import PAGE, SCRIPT, Clock, scenario, serve

from cambio.status.web import status_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORANGE = "rgb(225, 111, 36)"  # --partial in base.html
RED = "rgb(207, 34, 46)"  # --major


def _missing(what: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI: .ci/run should have installed it")
    pytest.skip(f"{what} is missing (apt-get install chromium; pip install playwright)")


def test_the_page_renders_in_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        _missing(str(CHROMIUM))
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("the playwright package")
    sc = scenario(tmp_path)
    xbt = sc.component("market:XXBTZUSD")["id"]
    ARTIFACTS.mkdir(exist_ok=True)
    app = status_app(sc.store, PAGE, Clock(), subscribe=lambda *_: None)
    with serve(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(url)
            expect(page.locator("#status")).to_have_text("Partial System Outage")

            # every component, with its status and 90 bars
            for comp in sc.store.components():
                ident = f"#group-{comp['id']}" if comp["is_group"] else f"#component-{comp['id']}"
                expect(page.locator(ident)).to_be_visible()
                expect(page.locator(ident)).to_contain_text(str(comp["name"]))
            row = page.locator(f"#component-{xbt}")
            expect(row).to_contain_text("Partial outage")
            expect(row).to_contain_text("99.92 % uptime")
            bars = row.locator(".bars span")
            expect(bars).to_have_count(90)
            colour = "(el) => getComputedStyle(el).backgroundColor"
            assert bars.nth(89).evaluate(colour) == ORANGE  # today: cancel-only
            assert bars.nth(86).evaluate(colour) == RED  # 3 days ago: 60 min down

            # the incident's timeline, newest first, operator text shown as text
            card = page.locator(f"#incident-{sc.open_incident}")
            expect(card).to_be_visible()
            expect(card.locator(".next")).to_have_text("Next update by 12:20 UTC")
            steps = card.locator("ol.timeline > li")
            expect(steps).to_have_count(2)
            expect(steps.nth(0)).to_contain_text("Identified")
            expect(steps.nth(0).locator(".auto")).to_have_text("automatic update")
            expect(steps.nth(1)).to_contain_text("Investigating")
            expect(steps.nth(1).locator(".body")).to_contain_text(SCRIPT)
            expect(steps.nth(1).locator(".auto")).to_have_count(0)
            expect(page.locator(f"#maintenance-{sc.active_maintenance}")).to_contain_text(
                "Wallet upgrade"
            )
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)

            # groups fold: a click hides the children, another shows them
            group = page.locator(f"#group-{sc.component('group:trading')['id']}")
            group.locator("summary").click()
            expect(row).to_be_hidden()
            group.locator("summary").click()
            expect(row).to_be_visible()

            # the incident's own page
            card.locator("h3 a").click()
            page.wait_for_url(f"**/incidents/{sc.open_incident}")
            expect(page.locator("ol.timeline > li")).to_have_count(2)

            # a phone: one column, no sideways scrolling, the last 30 days of bars
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(url)
            width: Any = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390
            shown = phone.locator(f"#component-{xbt} .bars span:visible")
            expect(shown).to_have_count(30)
            phone.screenshot(path=str(ARTIFACTS / "status-page-phone.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000
