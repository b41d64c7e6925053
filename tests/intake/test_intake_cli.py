"""The validate and template commands, end to end against the built-in simulated tenant."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from batch.cli import cli

HEADER = [
    "UserPrincipalName",
    "AddLicenses",
    "UsageLocation",
    "EffectiveDate",
    "Department",
    "EmployeeId",
]


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    return path


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_validate_a_clean_sheet_exits_0(tmp_path: Path) -> None:
    source = _csv(
        tmp_path / "hires.csv",
        [
            ["ada@contoso.com", "SPE_E3", "GB", "2025-01-02", "=cmd|' /C calc'!A0", "00123"],
            ["bob@contoso.com", "Office 365 E3", "Germany", "", "NA", "007"],
        ],
    )
    output = tmp_path / "checked.xlsx"
    result = _invoke("validate", str(source), "--output", str(output))
    assert result.exit_code == 0, result.output + result.stderr
    assert "Tenant: the built-in SIMULATED tenant" in result.stderr
    assert "Rows read: 2 (hires.csv, UTF-8, comma-separated)" in result.stdout
    assert "ready: 2, invalid: 0, deferred: 0, skipped: 0" in result.stdout
    assert f"Workbook: {output}" in result.stdout
    book = openpyxl.load_workbook(output)
    assert book.sheetnames == ["Summary", "Problems", "Rows"]
    rows = list(book["Rows"].iter_rows(values_only=True))
    assert rows[0] == (*HEADER, "Row", "Status", "Detail")
    assert rows[1][:6] == (
        "ada@contoso.com",
        "SPE_E3",
        "GB",
        "2025-01-02",
        "=cmd|' /C calc'!A0",
        "00123",
    )
    assert rows[1][6:8] == (2, "Ready")
    assert book["Rows"]["E2"].data_type == "s"  # the formula-looking cell stayed text
    with zipfile.ZipFile(output) as archive:
        assert "<f>" not in archive.read("xl/worksheets/sheet2.xml").decode()
    problems = list(book["Problems"].iter_rows(values_only=True))
    assert problems == [
        ("Row", "Column", "Value", "Rule", "Message", "Severity"),
        (3, "UsageLocation", "Germany", "usage-location-name", "'Germany' read as DE.", "info"),
    ]


def test_validate_reports_bad_rows_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _csv(
        tmp_path / "hires.csv",
        [
            ["ada@contoso.com", "SPE_E3", "GB", "", "", ""],
            [
                "bob@contoso.com",
                "MCOPSTNC",
                "US",
                "",
                "",
                "",
            ],  # Company-only in the simulated tenant
            ["eve@contoso.com", "VISIOCLIENT", "US", "", "", ""],  # suspended subscription
            ["dan@contoso.com", "AAD_PREMIUM", "US", "", "", ""],  # not bought
            ["ann@contoso.com", "SPE_E3", "US", "2099-01-01", "", ""],
            ["not a user", "SPE_E3", "US", "", "", ""],
        ],
    )
    monkeypatch.chdir(tmp_path)
    result = _invoke("validate", str(source))
    assert result.exit_code == 3, result.output + result.stderr
    assert "ready: 1, invalid: 4, deferred: 1, skipped: 0" in result.stdout
    for rule in (
        "company-license: 1",
        "license-not-enabled: 1",
        "license-not-in-tenant: 1",
        "invalid-upn: 1",
        "future-date: 1",
    ):
        assert rule in result.stdout
    written = sorted(tmp_path.glob("hires-validate-*.xlsx"))
    assert len(written) == 1
    statuses = [
        r[7]
        for r in openpyxl.load_workbook(written[0])["Rows"].iter_rows(min_row=2, values_only=True)
    ]
    assert statuses == ["Ready", "Invalid", "Invalid", "Invalid", "Deferred", "Invalid"]
    # a second run never overwrites the first workbook
    again = _invoke("validate", str(source), "--as-of", "2099-01-01")
    assert again.exit_code == 3
    assert "deferred: 0" in again.stdout
    assert len(list(tmp_path.glob("hires-validate-*.xlsx"))) == 2


def test_validate_refuses_to_overwrite_output(tmp_path: Path) -> None:
    source = _csv(tmp_path / "hires.csv", [["ada@contoso.com", "SPE_E3", "GB", "", "", ""]])
    output = tmp_path / "taken.xlsx"
    output.write_bytes(b"keep me")
    result = CliRunner().invoke(cli, ["validate", str(source), "--output", str(output)])
    assert result.exit_code == 1
    assert result.stderr.strip().endswith(
        f"Error: {output} already exists; choose another --output name."
    )
    assert output.read_bytes() == b"keep me"


def test_validate_bad_as_of_is_a_usage_error(tmp_path: Path) -> None:
    source = _csv(tmp_path / "hires.csv", [["ada@contoso.com", "SPE_E3", "GB", "", "", ""]])
    result = CliRunner().invoke(cli, ["validate", str(source), "--as-of", "03/04/2025"])
    assert result.exit_code == 2


def test_template_xlsx_and_csv_validate_cleanly(tmp_path: Path) -> None:
    xlsx, csv_path = tmp_path / "t.xlsx", tmp_path / "t.csv"
    result = _invoke("template", "--output", str(xlsx))
    assert result.exit_code == 0 and f"Template: {xlsx}" in result.stdout
    assert _invoke("template", "--csv", "--output", str(csv_path)).exit_code == 0
    book = openpyxl.load_workbook(xlsx)
    assert book.sheetnames == ["Users", "Lists", "Instructions"]
    licenses = [r[0] for r in book["Lists"].iter_rows(min_row=2, values_only=True) if r[0]]
    assert "SPE_E3" in licenses and "Microsoft 365 E3" in licenses
    validations = {
        str(dv.sqref): dv.formula1 for dv in book["Users"].data_validations.dataValidation
    }
    assert validations["B2:B5001"] == validations["C2:C5001"]
    assert validations["B2:B5001"].startswith("Lists!$A$2:$A$")
    assert "MCOPSTNC" not in licenses  # Company-only: not assignable to users
    assert validations["E2:E5001"] == "Lists!$E$2:$E$250"
    assert validations["H2:H5001"] == "Lists!$G$2:$G$3"
    for path in (xlsx, csv_path):
        checked = _invoke(
            "validate", str(path), "--output", str(tmp_path / f"{path.suffix[1:]}-check.xlsx")
        )
        assert checked.exit_code == 0, checked.stdout
        assert "ready: 3, invalid: 0" in checked.stdout
