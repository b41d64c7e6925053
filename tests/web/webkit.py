"""Helpers for the browser tests: a ``m365batch serve`` process and a person at a browser."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SHEET = ROOT / "samples" / "onboarding.xlsx"
#: screenshots the tests take, to look at (ignored by git)
SHOTS = Path(os.environ.get("M365BATCH_SHOTS", ROOT / "tests" / "web" / "screenshots"))


def chromium_path() -> str:
    """Debian's chromium (Playwright's own download is not used)."""
    path = os.environ.get("M365BATCH_CHROMIUM") or shutil.which("chromium")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed")
    return path


def wait_for(check: Callable[[], Any], *, timeout: float = 60, what: str = "") -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


class Server:
    """``m365batch serve --port 0`` in a subprocess; ``url`` is the address it printed."""

    def __init__(self, home: Path, env: Mapping[str, str] | None = None) -> None:
        self.home = home
        self.env = {**os.environ, "M365BATCH_HOME": str(home), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batch", "serve", "--port", "0"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()

        def opened() -> str | None:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"serve exited {self.proc.returncode}: {err}")
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return None
            return line.strip() if line.startswith("Open ") else None

        self.url = wait_for(opened, timeout=60, what="serve to print its address")[5:]
        self.base = re.sub(r"^(https?://[^/]+)/.*$", r"\1", self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def sign_in(page: Any, url: str, who: str) -> None:
    """Open ``url`` and pick the account whose name starts with ``who`` (hr.coordinator@...)."""
    page.goto(url)
    page.get_by_role("button", name=re.compile(re.escape(who) + "@")).click()
    page.get_by_role("link", name="Runs").wait_for()


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def statuses_of_rows_sheet(path: Path) -> dict[int, str]:
    """Row number -> Status, from a report workbook's ``Rows`` sheet."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book["Rows"].iter_rows(values_only=True))
    finally:
        book.close()
    header = list(rows[0])
    row_at, status_at = header.index("Row"), header.index("Status")
    return {int(r[row_at]): str(r[status_at]) for r in rows[1:] if r[row_at] is not None}
