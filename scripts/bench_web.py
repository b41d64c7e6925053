"""Benchmark the web app as a person uses it in a browser, and print the figures.

    python scripts/bench_web.py

Drives ``m365batch serve`` with Playwright on Debian's chromium (``M365BATCH_CHROMIUM`` or
``chromium`` on the PATH) at 1280x800:

- upload-to-plan: from pressing ``Check sheet`` to the ``Plan`` heading shown, for the
  36-row sample on the sample tenant and for a 5,000-row sheet on a generated tenant of
  6,000 users (median of 3 each);
- page weight: the bytes of HTML, CSS and JS each page loads (aim: under 100 KB).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from batch.simulator import SimulatorOptions, start_simulator
from batch.simulator.seed import generate_tenant

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "onboarding.xlsx"
FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"


@contextmanager
def serve(home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``m365batch serve`` in a subprocess; yields the address it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", "serve", "--port", "0"],
        env={**os.environ, "M365BATCH_HOME": str(home), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Open "):
                yield line[5:].strip()
                break
        else:
            raise SystemExit("serve did not print its address")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class Weigher:
    """Bytes of HTML, CSS and JS the page loads, per page."""

    def __init__(self, page: Any) -> None:
        self.loaded: list[tuple[str, int]] = []
        page.on("response", self._seen)

    def _seen(self, response: Any) -> None:
        kind = response.request.resource_type
        if kind in ("document", "stylesheet", "script") and response.status == 200:
            try:
                self.loaded.append((kind, len(response.body())))
            except Exception:  # a document replaced by a redirect has no body
                return

    def take(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for kind, size in self.loaded:
            found[kind] = found.get(kind, 0) + size
        self.loaded.clear()
        return found


def sign_in(page: Any, url: str, who: str) -> None:
    page.goto(url)
    page.get_by_role("button", name=re.compile(re.escape(who) + "@")).click()
    page.get_by_role("link", name="Runs").wait_for()


def check(page: Any, base: str, sheet: Path) -> float:
    """Seconds from pressing Check sheet to the Plan heading shown."""
    page.goto(base + "/")
    page.get_by_label("Sheet").set_input_files(sheet)
    started = time.perf_counter()
    page.get_by_role("button", name="Check sheet").click()
    page.get_by_role("heading", name="Plan").wait_for(timeout=600_000)
    return time.perf_counter() - started


def weigh(page: Any, weigher: Weigher, name: str, weights: dict[str, dict[str, int]]) -> None:
    page.wait_for_load_state("networkidle")
    weights[name] = weigher.take()


def sample_flow(browser: Any, folder: Path) -> tuple[list[float], dict[str, dict[str, int]]]:
    """The 36-row sample on the sample tenant: timings, and every page weighed."""
    weights: dict[str, dict[str, int]] = {}
    with serve(folder / "home-sample") as url:
        base = url.split("/start")[0]
        page = browser.new_context(viewport={"width": 1280, "height": 800}, **_trust).new_page()
        weigher = Weigher(page)
        sign_in(page, url, "hr.coordinator")
        weigher.take()
        page.goto(base + "/")
        weigh(page, weigher, "upload", weights)
        times = [check(page, base, SAMPLE) for _ in range(3)]
        weigher.take()
        page.reload()
        weigh(page, weigher, "check (36 rows)", weights)
        page.get_by_role("button", name="Submit for approval").click()
        submission = page.url
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, base + "/signin", "it.admin")
        weigher.take()
        page.goto(base + "/approvals")
        weigh(page, weigher, "approvals", weights)
        page.goto(submission)
        weigh(page, weigher, "approve (36 rows)", weights)
        page.get_by_role("button", name="Approve and apply").click()
        page.get_by_role("link", name="Download report").wait_for(timeout=120_000)
        weigher.take()
        page.reload()
        weigh(page, weigher, "run results (36 rows)", weights)
        page.goto(base + "/runs")
        weigh(page, weigher, "runs", weights)
    return times, weights


def big_flow(browser: Any, folder: Path, rows: int) -> tuple[list[float], dict[str, int]]:
    """A ``rows``-row sheet on a generated tenant: timings and the check page's weight."""
    tenant = generate_tenant(users=rows + 1000, seed=1)
    for sku in tenant["skus"]:
        if sku["skuId"] == FLOW_FREE:
            sku["prepaidUnits"]["enabled"] = rows * 3
    seed = folder / "seed.json"
    seed.write_text(json.dumps(tenant), encoding="utf-8")
    sheet = folder / f"hires-{rows}.csv"
    with sheet.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["UserPrincipalName", "AddLicenses", "UsageLocation"])
        writer.writerows(
            [u["userPrincipalName"], "FLOW_FREE", "GB"] for u in tenant["users"][:rows]
        )
    with start_simulator(folder / "sim", SimulatorOptions(), seed_path=seed) as sim:
        env = sim.environment()
        with serve(folder / "home-big", env) as url:
            page = browser.new_context(viewport={"width": 1280, "height": 800}, **_trust).new_page()
            weigher = Weigher(page)
            sign_in(page, url, "hr.coordinator")
            times = [check(page, url.rstrip("/"), sheet) for _ in range(3)]
            weigher.take()
            page.reload()
            page.wait_for_load_state("networkidle")
            return times, weigher.take()


_trust = {"ignore_https_errors": True}


def main() -> None:
    chromium = os.environ.get("M365BATCH_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        small, weights = sample_flow(browser, Path(tmp))
        big, big_weight = big_flow(browser, Path(tmp), 5000)
        weights["check (5,000 rows)"] = big_weight
        browser.close()
    print("upload-to-plan (press Check sheet -> Plan shown), median of 3:")
    print(f"  36-row sample:     {statistics.median(small):6.2f} s  (runs: {_list(small)})")
    print(f"  5,000-row sheet:   {statistics.median(big):6.2f} s  (runs: {_list(big)})")
    print("page weight (HTML + CSS + JS, bytes):")
    for name, parts in weights.items():
        total = sum(parts.values())
        detail = ", ".join(f"{k} {v:,}" for k, v in sorted(parts.items()))
        flag = "" if total < 100_000 else "  OVER 100 KB"
        print(f"  {name:24} {total:9,}  ({detail}){flag}")


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
