"""Small run cases: a header-only sheet, a closed standard output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batch.run.journal import list_runs
from tests.run.runkit import Tenant, onboarding_rows, report_rows, write_csv

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


def test_rows_asking_for_nothing_new_are_nochange_not_skipped(
    tenant: Tenant, tmp_path: Path
) -> None:
    """An export applied back with --exact (disabled accounts included) and an offboarding
    applied twice (what is left is inherited from groups) ask for nothing not already so."""
    exported = tenant.cli("export", "--output", str(tmp_path / "export.xlsx"))
    assert exported.returncode == 0, exported.stderr
    writes = tenant.sim.counters["writes"]
    restored = tenant.cli(
        "apply",
        str(tmp_path / "export.xlsx"),
        "--exact",
        "--yes",
        "--output",
        str(tmp_path / "e.xlsx"),
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    statuses = {row["Status"] for row in report_rows(tmp_path / "e.xlsx")}
    assert statuses == {"NoChange"}, statuses
    assert tenant.sim.counters["writes"] == writes

    offboarding = Path(__file__).resolve().parents[2] / "samples" / "offboarding.csv"
    for n in (1, 2):
        run = tenant.cli(
            "apply", str(offboarding), "--yes", "--output", str(tmp_path / f"o{n}.xlsx")
        )
        assert run.returncode in (0, 3), run.stdout + run.stderr
    second = report_rows(tmp_path / "o2.xlsx")
    inherited = [r for r in second if "cannot be removed" in r.get("Detail", "")]
    assert inherited and {r["Status"] for r in inherited} == {"NoChange"}
