"""The page in a real browser: Debian's headless Chromium driven by Playwright (never its own
downloaded browser) uploads a real knee X-ray and must show the probability and the heat-map;
over a knee-ROI bundle a bilateral phantom gives one line and one box per knee; with an access
token the page asks for it, says so when an upload is refused, and then works.

``make test`` installs chromium when it is missing, so these tests fail (not skip) without it;
the first skips only when the real X-rays in ../shared/data are absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.serve.conftest import TOKEN, serving

pytestmark = pytest.mark.slow

CHROMIUM = "chromium"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which(CHROMIUM)
    assert path, "chromium is not installed: run `make test` (installs Debian's chromium)"
    return path


@contextmanager
def browser_page(chromium_path: str) -> Iterator:
    """A fresh page in headless Debian chromium."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser.new_page(viewport={"width": 1000, "height": 900})
        finally:
            browser.close()


@pytest.mark.realdata
def test_page_shows_probability_decision_and_toggleable_heatmap(
    live_server, real_data, chromium_path, tmp_path
):
    xray = sorted((real_data / "osteoporosis").glob("*.jpg"))[0]
    with browser_page(chromium_path) as page:
        external = []
        page.on(
            "request",
            lambda r: external.append(r.url) if not r.url.startswith(live_server) else None,
        )
        page.goto(live_server + "/")
        assert "not a diagnosis" in page.locator("#notice").inner_text()
        expect(page.locator("#model-name")).to_contain_text("cnn3")
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
        assert card.locator("li.knee").count() == 0  # a whole-image model: no knee lines
        assert card.locator("svg.boxes rect").count() == 0
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
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_roi_page_shows_one_line_and_one_box_per_knee(
    roi_serve_bundle, bilateral_phantom, chromium_path, tmp_path
):
    path, _ = bilateral_phantom
    with serving(roi_serve_bundle) as url, browser_page(chromium_path) as page:
        page.goto(url + "/")
        expect(page.locator("#model-name")).to_contain_text("one crop per knee")
        page.set_input_files("#choose", str(path))
        card = page.locator(".card.done")
        card.wait_for(timeout=60_000)
        image_level = float(card.locator(".probability").inner_text().split("=")[1])
        knees = card.locator("li.knee")
        assert knees.count() == 2
        right, left = knees.all_inner_texts()
        assert right.startswith("right knee: P(osteoporosis) = ")
        assert left.startswith("left knee: P(osteoporosis) = ")
        per_knee = [float(text.split("=")[1].split("·")[0]) for text in (right, left)]
        assert image_level == max(per_knee)
        assert "more abnormal of 2 knee(s)" in card.locator(".basis").inner_text()
        boxes = card.locator("svg.boxes rect")
        assert boxes.count() == 2
        assert card.locator("svg.boxes rect.summary").count() == 1
        figure = card.locator(".figure").bounding_box()
        first, second = (boxes.nth(i).bounding_box() for i in range(2))
        for box in (first, second):  # drawn on the image, each a square of a visible size
            assert box["width"] == pytest.approx(box["height"], abs=2)
            assert box["width"] > 0.2 * figure["width"]
        assert first["x"] + first["width"] / 2 < figure["x"] + figure["width"] / 2
        assert second["x"] + second["width"] / 2 > figure["x"] + figure["width"] / 2
        assert card.locator("img.heat").evaluate("img => img.complete && img.naturalWidth > 0")
        page.screenshot(path=str(tmp_path / "roi-page.png"), full_page=True)
    assert (tmp_path / "roi-page.png").stat().st_size > 10_000


def test_token_prompt_refusal_message_then_upload(trained_bundle, phantom, chromium_path, tmp_path):
    with serving(trained_bundle, token=TOKEN) as url, browser_page(chromium_path) as page:
        requests = []
        page.on("request", lambda request: requests.append(request))
        page.goto(url + "/")
        form = page.locator("#token-form")
        form.wait_for(state="visible")
        assert "needs an access token" in page.locator("#status").inner_text()
        # an upload without the token is refused, and the page says what to do
        page.set_input_files("#choose", str(phantom))
        refused = page.locator(".card.failed")
        refused.wait_for(timeout=30_000)
        message = refused.locator(".error").inner_text()
        assert "needs an access token" in message and "enter it" in message
        assert form.is_visible()
        # a wrong token is named as such
        page.fill("#token", "not-the-token-of-this-service")
        page.click("#token-form button")
        expect(page.locator("#status")).to_contain_text("not accepted")
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        expect(page.locator("#model-name")).to_contain_text("cnn3")
        assert form.is_hidden()
        page.set_input_files("#choose", str(phantom))
        card = page.locator(".card.done")
        card.wait_for(timeout=60_000)
        probability = card.locator(".probability").inner_text()
        assert 0.0 <= float(probability.split("=")[1]) <= 1.0
        page.screenshot(path=str(tmp_path / "token-page.png"), full_page=True)
        # the token travels in the Authorization header only, and lives in this tab only
        predicts = [r for r in requests if "/api/v1/predict" in r.url]
        assert predicts[-1].headers.get("authorization") == f"Bearer {TOKEN}"
        assert "authorization" not in predicts[0].headers
        assert all(TOKEN not in r.url for r in requests) and TOKEN not in page.url
        assert page.evaluate("sessionStorage.getItem('osteoscan-token')") == TOKEN
        assert page.evaluate("localStorage.length") == 0
        assert page.input_value("#token") == ""
    assert (tmp_path / "token-page.png").stat().st_size > 5_000
