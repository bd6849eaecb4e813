"""The dashboard in a real browser: Debian's /usr/bin/chromium, headless, driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.testing import CHROMIUM, CHROMIUM_FLAGS, dashboard_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def dashboard_url(seeded_store):
    with dashboard_server(seeded_store) as url:
        yield url


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_explorer_in_chromium(dashboard_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(dashboard_url + "/explorer", wait_until="networkidle")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        # The Pareto front is drawn as SVG markers on top of the WebGL cloud of evaluations.
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=60_000)
        front_points = page.locator(".js-plotly-plot .scatterlayer .point").count()
        assert front_points >= 1
        assert page.locator(".js-plotly-plot canvas").count() >= 1  # the evaluations (Scattergl)
        caption = page.get_by_text("evaluations within the limits").first.inner_text()
        assert "12 of 12" in caption
        page.screenshot(path=str(tmp_path / "explorer-before.png"), full_page=True)

        thumb = page.get_by_role("slider", name="max mcu-m7_ms")  # a range input: the latency limit
        thumb.focus()
        for _ in range(40):
            thumb.press("ArrowLeft")
        page.wait_for_function(
            "() => !document.body.innerText.includes('12 of 12 evaluations within the limits')", timeout=30_000)
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=30_000)
        after = page.get_by_text("evaluations within the limits").first.inner_text()
        assert "of 12 evaluations within the limits" in after and "12 of 12" not in after
        shot = tmp_path / "explorer-after.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        assert "Traceback" not in page.content()
        assert page.get_by_text("Deploy", exact=True).count() == 0  # Streamlit's button is not ours to show
        browser.close()
