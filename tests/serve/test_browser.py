"""The page in a real browser: Debian's headless Chromium driven by Playwright (never its own
downloaded browser) uploads a real knee X-ray and must show the probability and the heat-map.

``make test`` installs chromium when it is missing, so this test fails (not skips) without it;
it skips only when the real X-rays in ../shared/data are absent.
"""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

CHROMIUM = "chromium"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which(CHROMIUM)
    assert path, "chromium is not installed: run `make test` (installs Debian's chromium)"
    return path


def test_page_shows_probability_decision_and_toggleable_heatmap(
    live_server, real_data, chromium_path, tmp_path
):
    from playwright.sync_api import sync_playwright

    xray = sorted((real_data / "osteoporosis").glob("*.jpg"))[0]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            external = []
            page.on(
                "request",
                lambda r: external.append(r.url) if not r.url.startswith(live_server) else None,
            )
            page.goto(live_server + "/")
            assert "not a diagnosis" in page.locator("#notice").inner_text()
            page.wait_for_function(
                "document.getElementById('model-name').textContent.includes('cnn3')"
            )
            assert "version" in page.locator("#model-name").inner_text()
            page.set_input_files("#choose", str(xray))
            card = page.locator(".card.done")
            card.wait_for(timeout=60_000)
            assert card.locator(".filename").inner_text() == xray.name
            probability = card.locator(".probability").inner_text()
            assert probability.startswith("P(osteoporosis) = ")
            assert 0.0 <= float(probability.split("=")[1]) <= 1.0
            decision = card.locator(".decision").inner_text()
            assert "Screening result:" in decision and "threshold" in decision
            heat = card.locator("img.heat")
            assert heat.evaluate("img => img.complete && img.naturalWidth > 0")
            assert card.locator("img.xray").evaluate("img => img.naturalWidth > 0")
            assert heat.is_visible()
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            card.locator(".show-heat").uncheck()
            assert not heat.is_visible()
            card.locator(".show-heat").check()
            assert heat.is_visible()
            assert external == []  # no CDN, no web font, nothing beyond the service
        finally:
            browser.close()
    assert (tmp_path / "page.png").stat().st_size > 10_000
