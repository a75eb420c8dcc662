"""Debian's headless Chromium driven by selenium, for the phone page's tests and its README screenshot."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

INSTALL_HINT = "apt-get install -y chromium chromium-driver"
# Quiet and offline: no updates, no sync, no first-run pages; a fresh profile per browser.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
          "--force-device-scale-factor=1", "--lang=en-US")


def missing() -> str | None:
    """Why a browser cannot be started here (and how to get one), or None when it can."""
    absent = [name for name in ("chromium", "chromedriver") if not shutil.which(name)]
    try:
        import selenium  # noqa: F401  (the test extra)
    except ImportError:
        absent.append("selenium (pip install -e '.[test]')")
    if absent:
        return f"{', '.join(absent)} not installed; install Chromium with: {INSTALL_HINT}"
    return None


def chromium(profile: Path, *, width: int = 390, height: int = 844, args: tuple[str, ...] = ()):
    """A headless Chromium with a phone-sized window and a fresh profile folder; quit() it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", *args):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_script_timeout(60)
    return driver
