"""HR uploads the sample sheet, sees problems and plan, submits; IT approves; results."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.web.webkit import (
    SAMPLE_SHEET,
    Server,
    shot,
    sign_in,
    sign_out,
    statuses_of_rows_sheet,
)


def _table_statuses(page: Any) -> dict[int, str]:
    table = page.locator("table.rows").last
    headers = table.locator("thead th").all_inner_texts()
    row_at, status_at = headers.index("Row"), headers.index("Status")
    found = {}
    for line in table.locator("tbody tr").all():
        cells = line.locator("td").all_inner_texts()
        found[int(cells[row_at])] = cells[status_at].strip()
    return found


def test_hr_submits_it_approves_and_the_results_match_the_cli(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    # a browser that trusts nothing extra: the simulated tenant's picker comes from serve
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.goto(server.url)
    assert page.url.startswith(server.base + "/simulated-signin?")
    expect(page.get_by_role("heading", name="Pick an account")).to_be_visible()
    shot(page, "0-pick-an-account")
    page.get_by_role("button", name=re.compile("hr.coordinator@")).click()
    page.get_by_role("link", name="Runs").wait_for()
    shot(page, "1-upload")
    page.get_by_label("Sheet").set_input_files(SAMPLE_SHEET)
    page.get_by_role("button", name="Check sheet").click()
    expect(page.get_by_role("heading", name="Problems")).to_be_visible()
    expect(page.get_by_role("heading", name="Plan")).to_be_visible()
    planned = _table_statuses(page)
    assert len(planned) == 36
    assert {"Planned", "Invalid", "Failed"} <= set(planned.values())
    shot(page, "2-check")
    with page.expect_download() as plan_download:
        page.get_by_role("link", name="Download plan").click()
    plan_book = tmp_path / "plan.xlsx"
    plan_download.value.save_as(plan_book)
    assert statuses_of_rows_sheet(plan_book) == planned
    page.get_by_role("button", name="Submit for approval").click()
    expect(page.get_by_text("Waiting for approval")).to_be_visible()
    submission = page.url
    # HR holds no Approve role: no Approvals page, and the action itself is refused
    assert page.goto(server.base + "/approvals").status == 403
    page.goto(submission)
    expect(page.get_by_role("button", name="Approve and apply")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(submission + "/approve", form={"csrf": csrf})
    assert refused.status == 403
    sign_out(page)

    sign_in(page, server.base + "/signin", "it.admin")
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    expect(page.get_by_role("cell", name="hr.coordinator@contoso.example")).to_be_visible()
    shot(page, "3-approvals")
    page.get_by_role("link", name="Open onboarding.xlsx").click()
    shot(page, "4-decide")
    page.get_by_role("button", name="Approve and apply").click()
    expect(page.get_by_role("link", name="Download report")).to_be_visible(timeout=60_000)
    shot(page, "5-run")
    done = _table_statuses(page)
    assert len(done) == 36 and "Applied" in done.values()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download report").click()
    report = tmp_path / "web-report.xlsx"
    download.value.save_as(report)
    assert statuses_of_rows_sheet(report) == done

    # the same sheet applied by the command line to a fresh simulated tenant: same statuses
    cli_report = tmp_path / "cli-report.xlsx"
    subprocess.run(
        [sys.executable, "-m", "batch", "apply", str(SAMPLE_SHEET), "--yes"]
        + ["--output", str(cli_report)],
        env={**server.env, "M365BATCH_HOME": str(tmp_path / "cli-home")},
        capture_output=True,
        timeout=180,
    )
    assert statuses_of_rows_sheet(cli_report) == done

    page.get_by_role("link", name="Runs").click()
    run_row = page.get_by_role("row", name=re.compile("hr.coordinator@.*it.admin@"))
    expect(run_row).to_have_count(1)
    shot(page, "6-runs")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(submission)
    expect(page.get_by_role("link", name="Download report")).to_be_visible()
    shot(page, "10-phone-run")
    context.close()
