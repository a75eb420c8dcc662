"""Shared fixtures: tiny models built once per session, the app loaded through the real registry."""
from __future__ import annotations

import os

import pytest

# Tests never download weights and never inherit a developer's server settings.
os.environ["HF_HUB_OFFLINE"] = "1"
for _name in [n for n in os.environ if n.startswith("GUIDEPOST_") or n == "PROMETHEUS_MULTIPROC_DIR"]:
    del os.environ[_name]

from PIL import Image  # noqa: E402

from guidepost import tiny  # noqa: E402
from guidepost_tools.photos import sample_photo  # noqa: E402
from tests.helpers import encode, started_app  # noqa: E402


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """A model cache holding the tiny CLIP and LLaVA, built once for the whole session."""
    cache = tmp_path_factory.mktemp("model_cache")
    tiny.ensure_built("tiny-clip", cache)
    tiny.ensure_built("tiny-llava", cache)
    return cache


@pytest.fixture(scope="session")
def make_app(model_cache):
    """Factory for apps on the tiny preset, loaded synchronously, with extra settings."""
    def _make(**overrides):
        return started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "eager", **overrides})
    return _make


@pytest.fixture(scope="session")
def app(make_app):
    """The tiny-preset app shared by read-only API tests."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph (scikit-image's astronaut, 512x512)."""
    return sample_photo("astronaut")


@pytest.fixture(scope="session")
def street_photo() -> Image.Image:
    """A real 4:3-ish photograph (scikit-image's coffee, 600x400)."""
    return sample_photo("coffee")


@pytest.fixture(scope="session")
def jpeg(photo) -> bytes:
    return encode(photo, "JPEG", quality=90)


BROWSER_SKIP = "BROWSER TESTS SKIPPED"


def pytest_terminal_summary(terminalreporter):
    """Say loudly when the phone page's browser tests did not run, and how to make them run."""
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if BROWSER_SKIP in str(report.longrepr)]
    if skipped:
        from guidepost_tools.browser import INSTALL_HINT

        terminalreporter.write_sep("!", f"{len(skipped)} browser tests of the phone page were SKIPPED", red=True)
        for report in skipped:
            terminalreporter.write_line(f"  skipped: {report.nodeid}", red=True)
        terminalreporter.write_line(f"  Install Chromium to run them: {INSTALL_HINT} (as root; .ci/run does it)",
                                    red=True)
