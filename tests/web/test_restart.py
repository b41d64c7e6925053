"""The progress bar moves while a run writes; a restart in the middle leaves it resumable."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from batch.simulator import SimulatorOptions, load_sample, start_simulator
from tests.web.webkit import Server, shot, sign_in, sign_out, wait_for


def _relocations(path: Path, count: int) -> dict[str, str]:
    """A sheet moving ``count`` users to another country: one write each."""
    users = [u for u in load_sample()["users"] if u["accountEnabled"] and u.get("usageLocation")]
    wanted = {
        u["userPrincipalName"]: "IE" if u["usageLocation"] != "IE" else "FR" for u in users[:count]
    }
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["UserPrincipalName", "UsageLocation"])
        writer.writerows(wanted.items())
    return wanted


def _progress(page: Any) -> tuple[float, float]:
    bar = page.get_by_role("progressbar")
    return float(bar.get_attribute("value") or 0), float(bar.get_attribute("max") or 0)


def test_progress_moves_and_a_restart_mid_run_leaves_it_resumable(
    tmp_path: Path, page: Any
) -> None:
    sheet = tmp_path / "relocations.csv"
    wanted = _relocations(sheet, 150)
    # each write takes 100 ms in the tenant: four batches of 20 in flight, then the rest
    with start_simulator(tmp_path / "sim", SimulatorOptions(item_latency_ms=100)) as sim:
        env = sim.environment()
        home = tmp_path / "home"
        # the server dies (SIGKILL) when the 100th write's outcome is journaled
        first = Server(home, {**env, "M365BATCH_CRASH_AT": "journal.done:100"})
        try:
            sign_in(page, first.url, "hr.coordinator")
            page.get_by_label("Sheet").set_input_files(sheet)
            page.get_by_role("button", name="Check sheet").click()
            page.get_by_role("button", name="Submit for approval").click()
            submission = page.url.removeprefix(first.base)
            sign_out(page)
            sign_in(page, first.base + "/signin", "it.admin")
            page.goto(first.base + submission)
            page.get_by_role("button", name="Approve and apply").click()
            wait_for(lambda: 0 < _progress(page)[0] < _progress(page)[1], what="progress")
            shot(page, "7-progress")
            wait_for(lambda: first.proc.poll() is not None, what="the server to be killed")
        finally:
            first.stop()

        second = Server(home, env)
        try:
            page.goto(second.base + submission)  # still signed in: the session key is kept
            expect(page.get_by_text("Interrupted", exact=False).first).to_be_visible()
            shot(page, "8-interrupted")
            page.get_by_role("button", name="Resume this run").click()
            expect(page.get_by_role("link", name="Download report")).to_be_visible(timeout=120_000)
            statuses = page.locator("table.rows tbody tr td:nth-child(3)").all_inner_texts()
            assert len(statuses) == 150 and set(statuses) == {"Applied"}
            for upn, country in wanted.items():
                assert sim.store.user(upn)["usageLocation"] == country
        finally:
            second.stop()
