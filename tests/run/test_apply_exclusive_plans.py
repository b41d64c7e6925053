"""Mutually exclusive plans end to end: the sample's clashing row is refused at plan time."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from batch.cli import cli
from tests.run.runkit import SKU, Tenant, report_rows, write_csv

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "onboarding.xlsx"
UPN = "daniel.o'brien@contoso.example"  # inherits Microsoft 365 E3 from a group
CLASH = (
    "Microsoft 365 Business Basic's Exchange Online (Plan 1) cannot be on together with "
    "Exchange Online (Plan 2) from Microsoft 365 E3 (inherited from group "
    "'Licensing - Microsoft 365 E3'): add EXCHANGE_S_STANDARD to DisabledPlans, or remove "
    "the other license."
)
PLAN1 = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"


def apply(sheet: Path, output: Path) -> dict[int, dict[str, str]]:
    result = CliRunner().invoke(
        cli, ["apply", str(sheet), "--yes", "--output", str(output)], catch_exceptions=False
    )
    assert result.exit_code in (0, 3), result.output
    return {int(r["Row"]): r for r in report_rows(output)}


def test_sample_clash_is_invalid_and_never_sent(tenant: Tenant, tmp_path: Path) -> None:
    before = tenant.sim.counters["writes"]
    first = apply(SAMPLE, tmp_path / "r1.xlsx")
    writes_first = tenant.sim.counters["writes"] - before
    row = first[20]
    assert row["Email"] == UPN
    assert row["Status"] == "Failed" and row["ErrorCode"] == "MutuallyExclusiveViolation"
    assert row["Detail"] == CLASH
    assert row["Added"] == "" and row["RequestId"] == ""
    assert SKU["O365_BUSINESS_ESSENTIALS"] not in tenant.licenses(UPN)
    assert writes_first > 0

    second = apply(SAMPLE, tmp_path / "r2.xlsx")
    assert tenant.sim.counters["writes"] - before == writes_first  # nothing sent again
    assert second[20]["Status"] == "Failed"
    assert {r["Status"] for r in second.values()} <= {
        "NoChange",
        "Invalid",
        "Failed",
        "Deferred",
        "Skipped",
    }

    # the fix the message names: the row with Exchange Plan 1 disabled goes through
    fixed = write_csv(
        tmp_path / "fixed.csv",
        ["UserPrincipalName", "AddLicenses", "DisabledPlans"],
        [[UPN, "EMS; O365_BUSINESS_ESSENTIALS", "EXCHANGE_S_STANDARD"]],
    )
    third = apply(fixed, tmp_path / "r3.xlsx")
    assert third[2]["Status"] == "Applied", third[2]
    assert tenant.licenses(UPN)[SKU["O365_BUSINESS_ESSENTIALS"]] == frozenset({PLAN1})
