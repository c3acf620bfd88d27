"""The demo page at `/`: served by the app with everything it needs (nothing from a CDN), and driven in
headless Chromium against a real `python -m service`: draw a digit, see its codes and reconstruction,
samples, an interpolation and a completion, and a photo reconstructed at its own size."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.main import STATIC
from tests.conftest import TinyPipeline
from tests.service.conftest import UNCONDITIONAL, make_client
from tools.local_server import serving

INSTALL = "apt-get install chromium chromium-driver (Debian's headless browser and its WebDriver; pip install selenium)"
# As the machine's probe started it: without the background-networking flags Chromium's own
# connections are refused many at a time here.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,2400",
]


def test_the_page_and_its_files_are_served_and_load_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in ("app.js", "style.css"):
        assert f'"static/{name}"' in page.text
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), f"{path.name} loads from outside"
    missing = client.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_api_routes_are_untouched_by_the_page(client: TestClient) -> None:
    for path in ("/health/live", "/health/ready", "/v1/models", "/v2/health/ready", "/metrics", "/docs"):
        assert client.get(path).status_code == 200, path
    assert "/" not in client.get("/openapi.json").json()["paths"]
    assert client.get("/nope").json()["error"]["code"] == "not_found"


def test_with_an_api_key_the_page_needs_it_too(tiny_pipeline: TinyPipeline) -> None:
    with make_client(tiny_pipeline, API_KEY="secret") as keyed:
        assert keyed.get("/").status_code == 401
        assert keyed.get("/", headers={"x-api-key": "secret"}).status_code == 200


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# A mark, not a skip inside a fixture: it is decided before the session's tiny models are trained.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM or not CHROMEDRIVER,
    reason=f"headless Chromium is not installed; to run the demo page's browser test: {INSTALL}",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed; {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def draw(browser, canvas_id: str, points: list[tuple[int, int]]) -> None:
    """One stroke through the points, as offsets from the canvas's centre."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = browser.find_element(By.ID, canvas_id)
    stroke = ActionChains(browser).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        for _ in range(4):  # several moves per segment, as a hand makes
            stroke = stroke.move_by_offset((x1 - x0) // 4, (y1 - y0) // 4)
    stroke.release().perform()


def shown(browser, image_id: str) -> int:
    """The natural width of a loaded image, 0 until it has loaded."""
    return browser.execute_script(
        "const img = document.getElementById(arguments[0]); return img.complete && img.src ? img.naturalWidth : 0;",
        image_id,
    )


def texts(browser, selector: str) -> list[str]:
    """The text of every match, read in one script: the page may redraw a table between two WebDriver calls
    (the end of a stroke and a click both reconstruct)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", selector
    )


@needs_chromium
def test_draw_reconstruct_sample_interpolate_and_complete_in_chromium(
    browser, tiny_pipeline: TinyPipeline, tmp_path: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with serving(MODELS_DIR=tiny_pipeline.models, INTRA_OP_THREADS=1) as (url, _):
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        models = Select(browser.find_element(By.ID, "model"))
        assert models.first_selected_option.get_attribute("value") == UNCONDITIONAL  # needs no class label

        draw(browser, "canvas-a", [(-60, -90), (60, -90), (-10, 100)])  # a 7
        browser.find_element(By.ID, "reconstruct").click()
        wait.until(lambda b: shown(b, "reconstruction") == 28 and shown(b, "input-a") == 28)
        cells = texts(browser, "#codes td")
        assert len(cells) == 49 and all(0 <= int(c) < 16 for c in cells)
        wait.until(lambda b: shown(b, "samples") > 0)  # the page samples once on load
        browser.find_element(By.ID, "seed").clear()
        browser.find_element(By.ID, "seed").send_keys("7")
        browser.find_element(By.ID, "sample").click()
        wait.until(lambda b: b.find_element(By.ID, "sample-status").text.startswith("done"))
        assert shown(browser, "samples") == 4 * 30 + 2  # 16 samples in a 4 x 4 grid

        draw(browser, "canvas-b", [(0, -100), (0, 100)])  # a 1
        browser.find_element(By.ID, "interpolate").click()
        wait.until(lambda b: shown(b, "interpolation") == 8 * 30 + 2)
        browser.find_element(By.ID, "complete").click()
        wait.until(lambda b: shown(b, "completion") > 0)
        assert browser.execute_script("return document.querySelectorAll('#masked td.masked').length") == 3 * 7
        photo = tmp_path / "photo.png"  # a size-free model: a photo at its own size, padded and cropped back
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (22, 30, 3), dtype=np.uint8)).save(photo)
        browser.execute_script("document.getElementById('upload-photo').style.display = 'block'")
        browser.find_element(By.ID, "upload-photo").send_keys(str(photo))
        wait.until(lambda b: b.find_element(By.ID, "photo-status").text.startswith(("done", "4", "5")))
        caption = browser.find_element(By.ID, "photo-caption").text
        assert re.fullmatch(r"reconstruction: 30x22 through a 8x6 code grid, PSNR \d+\.\d dB", caption), caption
        assert shown(browser, "photo-reconstruction") == 30
        screenshot = tmp_path / "demo-page.png"  # pytest keeps the last few tmp_path folders: look at it there
        browser.save_screenshot(str(screenshot))
        print(f"screenshot of the demo page: {screenshot}")

        models.select_by_value("tiny-vqvae")  # a class-conditional prior: the page sends a label
        wait.until(lambda b: "tiny-vqvae" in b.find_element(By.ID, "status").text)
        wait.until(lambda b: b.find_element(By.ID, "sample-status").text.startswith("done"))
        assert browser.find_element(By.ID, "analogy-field").get_attribute("hidden")

        models.select_by_value("tiny-cvae")  # a class-conditional decoder: the drawing as every class
        Select(browser.find_element(By.ID, "label")).select_by_value("2")
        browser.find_element(By.ID, "reconstruct").click()
        wait.until(lambda b: shown(b, "analogy") == 10 * 30 + 2)  # one row
        errors = texts(browser, ".status.error")
        assert errors == []
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(name.startswith(url) or name.startswith("blob:") for name in loaded)  # offline
