"""The runs page lists command-line runs too; an approver undoes a run from the web app."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.run.runkit import onboarding_rows, write_csv
from tests.web.webkit import Server, shot, sign_in, wait_for


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        env={**os.environ, "M365BATCH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_command_line_run_is_listed_and_undone_from_the_page(tmp_path: Path, page: Any) -> None:
    home = tmp_path / "home"
    sheet = write_csv(tmp_path / "hires.csv", *onboarding_rows())
    before = _cli(home, "plan", str(sheet), "--output", str(tmp_path / "before.xlsx"))
    applied = _cli(home, "apply", str(sheet), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    run_id = re.search(r"Run (\S+):", applied.stdout)
    assert run_id
    server = Server(home)
    try:
        sign_in(page, server.url, "it.admin")
        page.get_by_role("link", name="Runs").click()
        cli_row = page.get_by_role("row", name=re.compile(re.escape(run_id.group(1))))
        expect(cli_row).to_contain_text("command line")
        expect(cli_row).to_contain_text("hires.csv")
        cli_row.get_by_role("link", name=run_id.group(1)).click()
        page.get_by_role("button", name="Undo this run").click()
        undo_row = page.get_by_role("row").filter(
            has=page.get_by_role("cell", name="undo", exact=True)
        )

        def undone() -> bool:  # the undo runs in the background: reload until listed done
            try:
                page.reload()
            except PlaywrightError:  # the page was already reloading itself
                return False
            text = undo_row.inner_text() if undo_row.count() else ""
            return "finished" in text and "it.admin@contoso.example" in text

        wait_for(undone, timeout=90, what="the undo run to finish")
        expect(undo_row).to_contain_text("finished")
        expect(undo_row).to_contain_text("it.admin@contoso.example")
        shot(page, "9-runs-undo")
    finally:
        server.stop()
    # the tenant is as before the run: planning the sheet again plans every row again
    again = _cli(home, "plan", str(sheet), "--output", str(tmp_path / "again.xlsx"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[0] == before.stdout.splitlines()[0], again.stdout
    assert "Planned" in before.stdout.splitlines()[0]
