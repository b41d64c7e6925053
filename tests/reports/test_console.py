"""What the console says after validate, plan and apply: the rows that need a person."""

from __future__ import annotations

from pathlib import Path

from tests.run.runkit import Tenant, onboarding_rows, write_csv

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
