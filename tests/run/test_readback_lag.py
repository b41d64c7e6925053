"""The read-back waits for eventual consistency before calling a row unverified.

With every read of a just-written user showing its state before the write for about a
second (``read_lag`` 1.0), every applied row still ends ``Verified`` Yes, and the report's
Summary says how long the read-back waited. With ``--verify-wait 0`` it does not wait.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl

from tests.run.runkit import Tenant, onboarding_rows, write_csv
from tests.run.test_apply import rows_sheet


def summary(path: Path) -> dict[str, object]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {str(r[0]): r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    finally:
        book.close()


def lag_on(tenant: Tenant, seconds: float) -> None:
    """Reads of a user written less than ``seconds`` (real time) ago show the old state."""
    options = tenant.sim.options
    options.read_lag = 1.0
    options.read_lag_window = seconds * options.time_scale


def test_applied_rows_are_verified_through_read_lag(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows)
    lag_on(tenant, 1.0)
    result = tenant.cli("apply", str(sheet), "--yes", "--output", str(tmp_path / "run.xlsx"))
    assert result.returncode == 0, result.stderr
    report = rows_sheet(tmp_path / "run.xlsx")
    assert {r["Status"] for r in report} == {"Applied"}
    assert {r["Verified"] for r in report} == {"Yes"}, [
        (r["UserPrincipalName"], r["Detail"]) for r in report if r["Verified"] != "Yes"
    ]
    facts = summary(tmp_path / "run.xlsx")
    assert float(str(facts["Read-back waited (s)"])) > 0
    assert int(str(facts["Rows re-read (not yet as asked)"])) > 0
    assert facts["Option verify wait (s)"] in ("8.0", 8.0)


def test_without_a_wait_the_lag_shows_as_unverified(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows[:20])
    lag_on(tenant, 30.0)  # longer than the run: nothing written reads back in time
    result = tenant.cli(
        "apply", str(sheet), "--yes", "--verify-wait", "0", "--output", str(tmp_path / "r.xlsx")
    )
    assert result.returncode == 0, result.stderr
    report = rows_sheet(tmp_path / "r.xlsx")
    assert {r["Status"] for r in report} == {"Applied"}
    assert "No" in {r["Verified"] for r in report}
    facts = summary(tmp_path / "r.xlsx")
    assert float(str(facts["Read-back waited (s)"])) == 0


def test_wait_is_bounded_and_says_why(tenant: Tenant, tmp_path: Path) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows[:5])
    lag_on(tenant, 60.0)
    result = tenant.cli(
        "apply", str(sheet), "--yes", "--verify-wait", "1.5", "--output", str(tmp_path / "r.xlsx")
    )
    assert result.returncode == 0, result.stderr
    report = rows_sheet(tmp_path / "r.xlsx")
    unverified = [r for r in report if r["Verified"] == "No"]
    assert unverified
    assert all("--verify-wait" in r["Detail"] for r in unverified)
    waited = float(str(summary(tmp_path / "r.xlsx")["Read-back waited (s)"]))
    assert 1.0 <= waited < 5
