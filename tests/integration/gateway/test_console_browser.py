"""The console in a real browser: Debian's chromium, driven by Selenium, against the real stack.

Sign in with a key, classify an uploaded image and a video, see the predictions, find them in the history; the
models page and the API reference render from the API. Each page's screenshot lands in
``reports/console/``. The browser's log must hold no Content-Security-Policy violation: the
pages run under the policy the gateway sends (no inline script).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.integration.gateway.conftest import GatewayProcess
from visionserve.catalog import load_catalog
from visionserve.samples import base_photos
from visionserve.samples.videos import make_video
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

SHOTS = PROJECT_ROOT / "reports" / "console"
WAIT_S = 60


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless chromium (``make test`` installs chromium and chromium-driver when missing)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "chromium and chromium-driver are missing: run `make test-services`"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()  # chromedriver stops the browser's process group


def _shot(browser: webdriver.Chrome, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SHOTS / f"{name}.png"))


def _csp_violations(browser: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]


def test_sign_in_classify_and_find_it_in_the_history(
    browser: webdriver.Chrome, gateway: GatewayProcess, tmp_path: Path
) -> None:
    model = next(iter(load_catalog().models))
    photo = tmp_path / "photo.jpg"
    base_photos()[0].resize((320, 240)).save(photo, "JPEG", quality=90)
    wait = WebDriverWait(browser, WAIT_S)

    browser.get(f"{gateway.url}/ui")
    browser.find_element(By.ID, "key").send_keys("not-a-key")
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "refused"))
    key = browser.find_element(By.ID, "key")
    key.clear()
    key.send_keys(gateway.key())
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait.until(ec.visibility_of_element_located((By.ID, "page-classify")))
    _shot(browser, "sign-in-done")

    Select(browser.find_element(By.ID, "model")).select_by_value(model)
    browser.find_element(By.ID, "file").send_keys(str(photo))
    browser.find_element(By.ID, "classify").click()
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    predictions = browser.find_elements(By.CSS_SELECTOR, "#predictions li .label")
    meta = browser.find_element(By.ID, "result-meta").text
    top1 = predictions[0].text.split(" — ")[0]
    assert len(predictions) == 5 and top1
    assert meta.startswith(f"{model} v") and "not cached" in meta
    _shot(browser, "classify")

    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=history]").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#history-table tbody"), top1))
    first = browser.find_element(By.CSS_SELECTOR, "#history-table tbody tr").text
    assert model in first and top1 in first and "ok" in first
    _shot(browser, "history")

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_video("mp4", "h264", seconds=3.5, fps=10, scenes=2))
    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=classify]").click()
    browser.find_element(By.ID, "file").send_keys(str(clip))
    every = browser.find_element(By.ID, "every-seconds")
    every.clear()
    every.send_keys("1")
    browser.find_element(By.ID, "classify").click()
    wait.until(ec.visibility_of_element_located((By.ID, "video-result")))
    video_meta = browser.find_element(By.ID, "result-meta").text
    segments = browser.find_elements(By.CSS_SELECTOR, "#segments li")
    assert " 4 frames of a 3.5 s video, mean" in video_meta, video_meta
    assert segments and all(" s: " in s.text for s in segments)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#predictions li .label")) == 5
    _shot(browser, "classify-video")

    browser.find_element(By.CSS_SELECTOR, "#nav a[data-page=models]").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "models-table"), model))
    models_text = browser.find_element(By.ID, "models-table").text
    assert "ready" in models_text and "stable v" in models_text  # version labels (issue 15's releases)
    assert browser.find_elements(By.CSS_SELECTOR, "#latency-chart rect")
    _shot(browser, "models")
    assert _csp_violations(browser) == []


def test_the_api_reference_is_the_projects_own(browser: webdriver.Chrome, gateway: GatewayProcess) -> None:
    browser.get(f"{gateway.url}/")
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#operations .op")))
    text = browser.find_element(By.TAG_NAME, "body").text
    assert browser.title.startswith("visionserve gateway")
    for area in ("classification", "history", "models", "operations"):
        assert area in [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2.tag")]
    assert "POST /v1/classify" in text and "Bearer" in text
    assert "BentoML" not in browser.page_source
    _shot(browser, "api")
    assert _csp_violations(browser) == []
