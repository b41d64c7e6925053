"""Small run cases: a header-only sheet, a closed standard output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batch.run.journal import list_runs
from tests.run.runkit import Tenant, onboarding_rows, write_csv

HEADERS, ROWS = onboarding_rows()


def test_a_header_only_sheet_is_an_input_error_and_records_no_run(
    tenant: Tenant, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "empty.csv", HEADERS, [])
    result = tenant.cli("apply", str(sheet), "--yes", "--output", str(tmp_path / "r.xlsx"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "has no data rows" in result.stderr
    assert not list_runs(tenant.home)
    assert not (tmp_path / "r.xlsx").exists()


def test_a_closed_stdout_changes_neither_the_exit_code_nor_the_report(
    tenant: Tenant, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    report = tmp_path / "r.xlsx"
    # `m365batch apply ... | head -1`: the reader goes away after the first line
    apply = subprocess.Popen(
        [sys.executable, "-m", "batch", "apply", str(sheet), "--yes", "--output", str(report)],
        env=tenant.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert apply.stdout is not None and apply.stderr is not None
    apply.stdout.readline()
    apply.stdout.close()
    stderr = apply.stderr.read().decode()
    apply.stderr.close()
    assert apply.wait(timeout=120) == 0, stderr
    assert "Error" not in stderr and "BrokenPipe" not in stderr
    assert report.is_file()
    assert list_runs(tenant.home)[0].state == "finished"
