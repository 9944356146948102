"""The app in a real browser: headless Chromium (Debian's package) driven by Playwright.

Starts ``streamlit run app.py`` on a free loopback port, waits for the map to render, clicks
on the map where a new emergency station reaches uncovered residents, checks that the
covered-population metric changes to the value the siting engine gives for that point, and
saves a screenshot to ``test-output/app.png``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from live_app import CHROMIUM, CHROMIUM_LAUNCH, streamlit_server
from shipped import ANDORRA_SCENARIO

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
#: Where the test clicks: on a road in Canillo, outside the 15-minute ambulance area.
CLICK_LON, CLICK_LAT = 1.55, 42.55

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Chromium is not installed at /usr/bin/chromium "
                              "(apt-get install chromium); the browser test needs it"),
]


def _expected_after_click() -> float:
    """Covered population for BZ-12 with a station at the click point (siting engine)."""
    from covplan.planning import load_region, siting_for, standards_tables

    region = load_region(ANDORRA_SCENARIO)
    tables = standards_tables(region.scenario.standards)
    session = siting_for(region, tables, "BZ-12")
    return session.add_point(CLICK_LON, CLICK_LAT).covered_after


@pytest.fixture()
def server():
    """``streamlit run app.py`` on a free loopback port, logging to ``test-output``."""
    with streamlit_server(OUTPUT / "streamlit-server.log") as (url, _):
        yield url


def test_click_on_map_adds_station_and_changes_results(server: str) -> None:
    from playwright.sync_api import sync_playwright

    expected = _expected_after_click()
    with sync_playwright() as p:
        browser = p.chromium.launch(**CHROMIUM_LAUNCH)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1700},
                                    locale="en-GB", extra_http_headers={
                                        "Accept-Language": "en-GB,en;q=0.9"})
            page.goto(server, timeout=60_000)
            iframe = page.locator("iframe[title='streamlit_folium.st_folium']")
            iframe.wait_for(state="visible", timeout=120_000)
            frame = page.frame_locator("iframe[title='streamlit_folium.st_folium']")
            frame.locator(".leaflet-interactive").first.wait_for(timeout=60_000)
            assert "OpenStreetMap contributors" in frame.locator(
                ".leaflet-control-attribution").inner_text()
            metric = page.locator("[data-testid='stMetricValue']").first
            before = metric.inner_text()
            assert before.startswith("71,518"), before

            # centre the map on the click point (clear of the legend), then click it
            iframe.scroll_into_view_if_needed()
            map_frame = next(f for f in page.frames if "st_folium" in f.url)
            x, y = map_frame.evaluate(
                "([lat, lon]) => { window.map.setView([lat, lon], 13, {animate: false});"
                " const p = window.map.latLngToContainerPoint([lat, lon]);"
                " return [p.x, p.y]; }", [CLICK_LAT, CLICK_LON])
            page.wait_for_timeout(500)
            box = frame.locator(".leaflet-container").bounding_box()
            assert box is not None and 0 < x < box["width"] and 0 < y < box["height"]
            started = time.monotonic()
            page.mouse.click(box["x"] + x, box["y"] + y)
            page.wait_for_function(
                "before => { const m = document.querySelector("
                "\"[data-testid='stMetricValue']\"); return m && m.innerText !== before; }",
                arg=before, timeout=30_000)
            seconds = time.monotonic() - started
            after = metric.inner_text()
            shown = float(re.match(r"([\d,]+)", after).group(1).replace(",", ""))
            assert shown == pytest.approx(expected, abs=0.5)
            assert shown > 71_518
            # the candidate is listed and drawn on the map
            page.get_by_text("S1", exact=False).first.wait_for(timeout=10_000)
            page.wait_for_timeout(1500)
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "app.png"), full_page=True)
            (OUTPUT / "app-click-seconds.txt").write_text(f"{seconds:.2f}\n")
            assert seconds < 15
        finally:
            browser.close()
