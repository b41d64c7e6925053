"""One run at a time per tenant, as in the command line: a run refused is run again later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from batch.run.journal import tenant_lock
from batch.simulator import SimulatorOptions, start_simulator
from tests.run.runkit import onboarding_rows, write_csv
from tests.web.webkit import Server, sign_in, sign_out


def test_a_run_refused_while_another_writes_can_be_run_again(tmp_path: Path, page: Any) -> None:
    sheet = write_csv(tmp_path / "hires.csv", *onboarding_rows())
    with start_simulator(tmp_path / "sim", SimulatorOptions()) as sim:
        env = sim.environment()
        home = tmp_path / "home"
        server = Server(home, env)
        try:
            sign_in(page, server.url, "hr.coordinator")
            page.get_by_label("Sheet").set_input_files(sheet)
            page.get_by_role("button", name="Check sheet").click()
            page.get_by_role("button", name="Submit for approval").click()
            submission = page.url
            sign_out(page)
            sign_in(page, server.base + "/signin", "it.admin")
            page.goto(submission)
            # another run (the command line's, say) is writing to the tenant
            with tenant_lock(home, sim.tenant_id, "another-run"):
                page.get_by_role("button", name="Approve and apply").click()
                expect(page.get_by_text("The run failed: Another run")).to_be_visible()
            page.get_by_role("button", name="Run again").click()
            expect(page.get_by_role("link", name="Download report")).to_be_visible()
            statuses = page.locator("table.rows tbody tr td:nth-child(3)").all_inner_texts()
            assert statuses and set(statuses) == {"Applied"}
        finally:
            server.stop()
