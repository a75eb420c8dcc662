"""The README's picture of the phone page: gunicorn on the tiny preset, a photo taken, the answer on screen.

    .venv/bin/python docs/screenshot.py            # writes docs/phone-page.png (390x844, a phone's viewport)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guidepost import tiny  # noqa: E402
from guidepost_tools import browser  # noqa: E402
from guidepost_tools.loadtest.server import LocalServer  # noqa: E402
from guidepost_tools.photos import jpeg_bytes, sample_photo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "phone-page.png")
    args = parser.parse_args()
    reason = browser.missing()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for name in ("tiny-clip", "tiny-llava"):
            tiny.ensure_built(name, scratch / "cache")
        photo = scratch / "coffee.jpg"
        photo.write_bytes(jpeg_bytes(sample_photo("coffee")))
        env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(scratch / "cache")}
        with LocalServer(env, scratch / "server.log") as server:
            driver = browser.chromium(scratch / "profile")
            try:
                shoot(driver, server.url, photo, args.output)
            finally:
                driver.quit()
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KB)")


def shoot(driver, url: str, photo: Path, output: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    phone = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    driver.get(f"{url}/")
    driver.find_element(By.ID, "question").send_keys("Is it safe to walk ahead?")
    driver.find_element(By.ID, "photo").send_keys(str(photo))
    WebDriverWait(driver, 120).until(lambda d: d.find_element(By.ID, "status").text.startswith("Done"))
    driver.execute_script("document.activeElement.blur()")
    output.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(output))


if __name__ == "__main__":
    main()
