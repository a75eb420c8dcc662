"""The phone page in a real browser (Debian's headless Chromium, selenium) against gunicorn on the tiny preset:
the warning is spoken and shown first, then the answer; the API-key prompt; keep watching; accessibility."""
from __future__ import annotations

import json
import os

import pytest
import requests
from PIL import Image

from guidepost_tools import browser
from guidepost_tools.photos import jpeg_bytes, sample_photo
from tests.conftest import BROWSER_SKIP
from tests.e2e.conftest import API_KEY
from tests.helpers import sse_events

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
WAIT_S = 90  # bounded waits on a shared 2-core machine; each ends as soon as its condition holds

# Records, in order, what the page speaks, shows in the live region and says in its status line.
RECORDER = """
window.__log = [];
const synth = window.speechSynthesis, speak = synth.speak.bind(synth);
synth.speak = (u) => { __log.push(["speak", u.text, u.lang]); try { speak(u); } catch (e) {} };
const log = (kind) => (records) => { for (const r of records) for (const n of r.addedNodes)
    if (n.nodeType === 1) __log.push([kind, n.textContent, n.className]); };
new MutationObserver(log("shown")).observe(document.getElementById("answer"), {childList: true});
const status = document.getElementById("status");
new MutationObserver(() => __log.push(["status", status.textContent])).observe(status, {childList: true});
const dialog = document.getElementById("key-dialog");
new MutationObserver(() => dialog.open && __log.push(["key-prompt"])).observe(dialog, {attributes: true});
"""
# Records each /process upload: its mode, the image's size, and the answer.
FETCH_RECORDER = """
window.__uploads = [];
const realFetch = window.fetch;
window.fetch = async (url, init) => {
  const response = await realFetch(url, init);
  if (String(url).endsWith("process") && init && init.body instanceof FormData) {
    const bitmap = await createImageBitmap(init.body.get("image"));
    const answer = response.ok ? await response.clone().json() : null;
    __uploads.push({mode: init.body.get("mode"), width: bitmap.width, height: bitmap.height, answer});
  }
  return response;
};
"""


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory):
    """A still photograph as a Y4M video, Chromium's fake camera: larger than the model's size, so it is shrunk."""
    path = tmp_path_factory.mktemp("camera") / "coffee.y4m"
    image = sample_photo("coffee", (1200, 800))
    y, cb, cr = image.convert("YCbCr").split()
    chroma = [plane.resize((600, 400), Image.Resampling.BILINEAR).tobytes() for plane in (cb, cr)]
    path.write_bytes(b"YUV4MPEG2 W1200 H800 F10:1 Ip A1:1 C420jpeg\nFRAME\n" + y.tobytes() + b"".join(chroma))
    return path


@pytest.fixture(scope="module")
def driver(tmp_path_factory, camera_file):
    reason = browser.missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the browser tests, but {reason}")
        pytest.skip(f"{BROWSER_SKIP}: {reason}")
    chromium = browser.chromium(tmp_path_factory.mktemp("profile"), args=(
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_file}"))
    yield chromium
    chromium.quit()


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "coffee.jpg"
    path.write_bytes(jpeg_bytes(sample_photo("coffee")))  # 600x400: under the model's size, sent as it is
    return path


def open_page(driver, url: str, key: str | None):
    driver.get(f"{url}/")
    driver.execute_script("localStorage.clear()" if key is None else f"localStorage.setItem('guidepost.apiKey', '{key}')")
    driver.get(f"{url}/")
    driver.execute_script(RECORDER)


def wait_for(driver, script: str, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def entries(driver, kind: str) -> list:
    return [entry[1:] for entry in driver.execute_script("return __log") if entry[0] == kind]


def take_photo(driver, path):
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "photo").send_keys(str(path))


DONE = "return __log.some(e => e[0] === 'status' && e[1].startsWith('Done'))"


def test_the_warning_is_spoken_and_shown_first_then_the_answer(driver, keyed_server, photo_file):
    # What the server says for this photo, asked directly: the hazard event's warning, the sentences, the answer.
    with open(photo_file, "rb") as image:
        streamed = requests.post(f"{keyed_server.url}/process", files={"image": image}, data={"stream": "true"},
                                 headers={"X-API-Key": API_KEY}, timeout=60)
    events = sse_events([streamed.content])
    warning = events[0][1]["warning"]
    assert events[0][0] == "hazard" and warning, "the tiny preset finds a hazard in this photo"
    sentences = [data["text"] for name, data in events if name == "sentence"]
    result = events[-1][1]["result"]

    open_page(driver, keyed_server.url, API_KEY)
    take_photo(driver, photo_file)
    wait_for(driver, DONE)
    log = driver.execute_script("return __log")
    spoken = [text for text, lang in entries(driver, "speak")]
    shown = entries(driver, "shown")
    assert spoken[0] == warning and shown[0] == [warning, "warning"]
    expected = [warning, *sentences] if sentences else [warning, result.removeprefix(warning).strip()]
    assert spoken == [text for text in expected if text] == [text for text, _ in shown]
    assert " ".join(text for text, _ in shown) == result, "the live region ends holding the whole answer"
    assert {lang for _, lang in entries(driver, "speak")} == {"en-US"}
    first_speak = log.index(["speak", warning, "en-US"])
    done = next(i for i, entry in enumerate(log) if entry[0] == "status" and entry[1].startswith("Done"))
    assert first_speak < done, "the warning is spoken before the answer is complete"


def test_the_page_asks_once_for_a_key_and_keeps_it(driver, keyed_server, photo_file):
    from selenium.webdriver.common.by import By

    open_page(driver, keyed_server.url, key=None)

    def answer_prompt(key: str) -> None:
        wait_for(driver, "return document.getElementById('key-dialog').open")
        driver.find_element(By.ID, "key").send_keys(key)
        driver.find_element(By.ID, "key-save").click()

    take_photo(driver, photo_file)
    answer_prompt("wrong-key")
    wait_for(driver, "return document.getElementById('status').textContent === 'The API key was not accepted.'")
    assert len(entries(driver, "key-prompt")) == 1, "a wrong key is not asked for again in the same request"
    take_photo(driver, photo_file)  # the wrong key was dropped: the next photo asks again
    answer_prompt(API_KEY)
    wait_for(driver, DONE)
    assert driver.execute_script("return localStorage.getItem('guidepost.apiKey')") == API_KEY
    assert len(entries(driver, "key-prompt")) == 2

    driver.get(f"{keyed_server.url}/")  # a new visit: the stored key goes with the photo, nothing is asked
    driver.execute_script(RECORDER)
    take_photo(driver, photo_file)
    wait_for(driver, DONE)
    assert entries(driver, "key-prompt") == [] and entries(driver, "speak")


def test_keep_watching_sends_small_quick_frames_and_speaks_only_new_warnings(driver, keyed_server):
    from selenium.webdriver.common.by import By

    open_page(driver, keyed_server.url, API_KEY)
    driver.execute_script(FETCH_RECORDER)
    limit = requests.get(f"{keyed_server.url}/info", headers={"X-API-Key": API_KEY}, timeout=10).json()
    every = driver.find_element(By.ID, "every")
    every.clear()
    every.send_keys("1")
    driver.find_element(By.ID, "watch").click()
    wait_for(driver, "return __uploads.length >= 3")
    driver.find_element(By.ID, "watch").click()
    assert driver.find_element(By.ID, "watch").get_attribute("aria-pressed") == "false"
    uploads = driver.execute_script("return __uploads")[:3]
    spoken = [text for text, _ in entries(driver, "speak")]
    assert all(upload["mode"] == "quick" for upload in uploads)
    assert all(max(u["width"], u["height"]) == limit["limits"]["image_max_side"] for u in uploads), uploads
    # The same hazard in the same direction, within seconds, is spoken once.
    keys, expected = set(), []
    for answer in (upload["answer"] for upload in uploads):
        key = (answer["hazards"][0], answer["directions"].get(answer["hazards"][0])) if answer["danger"] else None
        if key and key not in keys:
            keys.add(key)
            expected.append(answer["result"])
    assert uploads[0]["answer"]["danger"], "the tiny preset finds a hazard in this frame"
    assert spoken[:len(expected)] == expected and len(spoken) <= len(expected) + 1  # + a frame after the count


def test_accessibility(driver, keyed_server):
    from axe_core_python.selenium import Axe
    from selenium.webdriver.common.by import By

    open_page(driver, keyed_server.url, API_KEY)
    results = Axe().run(driver)
    assert results["violations"] == [], json.dumps(
        [{"id": v["id"], "nodes": [n["html"] for n in v["nodes"]]} for v in results["violations"]], indent=1)
    assert driver.execute_script("return document.documentElement.lang") == "en"
    photo = driver.find_element(By.ID, "photo")
    assert photo.get_attribute("accept") == "image/*" and photo.get_attribute("capture") == "environment"
    assert driver.execute_script("return document.getElementById('photo').labels[0].textContent") == "Take photo"
    for field in ("question", "lang", "every"):
        assert driver.execute_script(f"return document.getElementById('{field}').labels.length") == 1
    assert driver.find_element(By.ID, "answer").get_attribute("aria-live") == "polite"
    # The main colours, as rendered: at least WCAG AAA (7:1) for body text and the photo button.
    for element in ("body", ".take-photo", "#watch", "h1"):
        fg, bg = driver.execute_script(
            "const e = document.querySelector(arguments[0]); const s = getComputedStyle(e);"
            "let b = e, bg = s.backgroundColor;"
            "while (bg === 'rgba(0, 0, 0, 0)' && b.parentElement) { b = b.parentElement; bg = getComputedStyle(b).backgroundColor; }"
            "return [s.color, bg];", element)
        assert contrast(fg, bg) >= 7, (element, fg, bg)
    size = driver.execute_script("return getComputedStyle(document.querySelector('.take-photo')).fontSize")
    assert float(size.removesuffix("px")) >= 40, "the photo button's text is very large"


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two CSS rgb() colours."""
    def luminance(css: str) -> float:
        channels = [int(part) / 255 for part in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
