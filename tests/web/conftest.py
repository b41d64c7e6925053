"""Fixtures for the browser tests: Debian's chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.webkit import Server, chromium_path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser window at 1280x800 (trusting the simulated tenant's own CA)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, ignore_https_errors=True, accept_downloads=True
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``m365batch serve`` on the built-in simulated tenant, in a fresh home."""
    running = Server(tmp_path / "home")
    yield running
    running.stop()
