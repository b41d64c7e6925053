"""What the console says after validate, plan and apply: the rows that need a person."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import openpyxl

from tests.run.runkit import Tenant, onboarding_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]
HEADERS = ["UserPrincipalName", "Department", "AddLicenses", "Country"]


def _sheet(path: Path) -> Path:
    """Two good rows and three bad ones: a short license name, a bad UPN, a bad country."""
    hires = [row[0] for row in onboarding_rows()[1][:4]]
    rows = [
        [hires[0], "Sales", "EMS", "US"],
        [hires[1], "Sales", "E3", "US"],
        ["not an address", "HR", "EMS", "US"],
        [hires[2], "IT", "EMS", "Atlantis"],
        [hires[3], "IT", "EMS", "GB"],
    ]
    return write_csv(path, HEADERS, rows)


def _attention(stdout: str) -> list[str]:
    """The lines of the 'Rows that need attention' list (without the header)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Rows that need attention"))
    return [line for line in lines[start + 2 :] if line.startswith("  ")]


def _rows_listed(stdout: str) -> list[int]:
    return [int(line.split()[0]) for line in _attention(stdout) if line.split()[0].isdigit()]


def test_validate_plan_apply_list_the_three_bad_rows(tenant: Tenant, tmp_path: Path) -> None:
    sheet = _sheet(tmp_path / "hires.csv")
    for command in (["validate"], ["plan"], ["apply", "--yes"]):
        done = tenant.cli(*command, str(sheet))
        assert done.returncode == 3, done.stderr
        assert "Rows that need attention (3):" in done.stdout, done.stdout
        assert _rows_listed(done.stdout) == [3, 4, 5], done.stdout
        text = " ".join(" ".join(line.split()) for line in _attention(done.stdout))
        assert "SPE_E3 (Microsoft 365 E3)" in text and "ENTERPRISEPACK (Office 365 E3)" in text
        assert "not an address" in text and "Atlantis" in text
        assert text.count("Invalid") == 3


def test_more_than_twenty_rows_point_at_the_report(tenant: Tenant, tmp_path: Path) -> None:
    rows = [[f"user{i}@contoso.example", "", "E5", "US"] for i in range(23)]
    sheet = write_csv(tmp_path / "many.csv", HEADERS, rows)
    done = tenant.cli("validate", str(sheet))
    assert done.returncode == 3, done.stderr
    assert "Rows that need attention (23):" in done.stdout
    assert _rows_listed(done.stdout) == list(range(2, 22))
    assert done.stdout.rstrip().splitlines()[-2].strip() == "... and 3 more in the report"
    assert all(len(line) <= 100 for line in _attention(done.stdout))


def test_migration_dry_run_says_what_the_run_does(tenant: Tenant, tmp_path: Path) -> None:
    """The sample map needs more SPE_E3 seats than are free: the dry run and the run both
    move who fits and leave the same users Deferred (NoSeats), in the same words."""
    mapping = str(ROOT / "samples" / "migration-map.csv")
    dry = tenant.cli("migrate", "--map", mapping, "--dry-run", "--output", str(tmp_path / "d.xlsx"))
    run = tenant.cli("migrate", "--map", mapping, "--yes", "--output", str(tmp_path / "r.xlsx"))
    assert dry.returncode == run.returncode == 3, dry.stdout + run.stdout
    predicted, done = _migration_rows(tmp_path / "d.xlsx"), _migration_rows(tmp_path / "r.xlsx")
    waiting = {u for u, status in predicted.items() if status == "Deferred"}
    assert waiting and waiting == {u for u, status in done.items() if status == "Deferred"}
    moved = {u for u, status in predicted.items() if status == "Planned"}
    assert moved and moved == {u for u, status in done.items() if status == "Applied"}
    need = re.search(r"need (\d+) more seats of SPE_E3 \((\d+) users wait", dry.stdout)
    assert need and f"need {need[1]} more seats of SPE_E3 ({need[2]} users wait" in run.stdout
    assert int(need[2]) == len(waiting)
    assert "run in waves" not in dry.stdout + run.stdout


def _migration_rows(path: Path) -> dict[str, str]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book["Rows"].iter_rows(values_only=True))
    finally:
        book.close()
    status = rows[0].index("Status")
    return {str(r[0]): str(r[status]) for r in rows[1:]}


def test_plan_of_the_sample_names_the_columns_the_sheet_uses(
    tenant: Tenant, tmp_path: Path
) -> None:
    """The sample sheet has a Country column with an empty cell on row 22, and row 20 clashes
    with a group's Exchange plan: the console says so by the sheet's words and the plans' names.
    """
    sheet = tmp_path / "onboarding.xlsx"
    shutil.copy(ROOT / "samples" / "onboarding.xlsx", sheet)
    done = tenant.cli("plan", str(sheet))
    assert done.returncode == 3, done.stderr
    lines = _attention(done.stdout)
    text = {int(line.split()[0]): line for line in lines if line.split()[0].isdigit()}
    whole = " ".join(" ".join(line.split()) for line in lines)
    assert "Failed" in text[22] and "the 'Country' cell is empty" in whole
    assert "UsageLocation column" not in whole
    assert "Failed" in text[20] and "Exchange Online (Plan 1)" in whole
