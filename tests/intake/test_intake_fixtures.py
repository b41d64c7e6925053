"""Every bad or awkward input file: it parses to the right values, or fails in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from batch.cli import cli
from batch.errors import InputError
from batch.intake.sources import read_sheet
from tests.intake.intakekit import FIXTURES

BODY = [
    ("rené@contoso.com", "SPE_E3", "FR", "00123"),
    ("nuñez@contoso.com", "Microsoft 365 E3", "ES", "0042"),
]

#: fixture -> (expected {field: column}, expected rows as (row number, cells))
PARSED: dict[str, tuple[dict[str, int], list[tuple[int, tuple[str, ...]]]]] = {
    name: ({"upn": 0, "add_licenses": 1, "usage_location": 2}, [(2, BODY[0]), (3, BODY[1])])
    for name in (
        "utf8.csv",
        "utf8-bom.csv",
        "crlf.csv",
        "cp1252.csv",
        "utf16-tab.txt",
        "utf16be-bom.csv",
        "semicolon.csv",
        "tab.tsv",
        "sep-line.csv",
    )
}
PARSED.update(
    {
        "header-only.csv": ({"upn": 0, "add_licenses": 1, "usage_location": 2}, []),
        "embedded-newline.csv": (
            {"upn": 0, "add_licenses": 1},
            [
                (2, ("ada@contoso.com", "SPE_E3", "line one\nline two")),
                (3, ("bob@contoso.com", "SPE_E3;\nVISIOCLIENT", "plain")),
            ],
        ),
        "na-values.csv": (
            {"upn": 0},
            [
                (2, ("ada@contoso.com", "NA", "None", "#N/A", "null")),
                (3, ("bob@contoso.com", "N/A", "nan", "NULL", "")),
            ],
        ),
        "leading-zeros.csv": (
            {"upn": 0, "object_id": 4},
            [
                (
                    2,
                    (
                        "ada@contoso.com",
                        "00123",
                        "1E5",
                        "12345678901234567890",
                        "{0A1B2C3D-0000-4000-8000-00000000ABCD}",
                    ),
                ),
            ],
        ),
        "blank-rows.csv": (
            {"upn": 0, "add_licenses": 1, "usage_location": 2},
            [
                (3, ("ada@contoso.com", "SPE_E3", "US", "1")),
                (6, ("bob@contoso.com", "SPE_E3", "US", "2")),
            ],
        ),
        "entra-bulk.csv": (
            {"upn": 1, "usage_location": 2},
            [
                (3, ("Ada", "ada@contoso.com", "GB", "United Kingdom")),
            ],
        ),
        "headerless-upns.csv": ({"upn": 0}, [(1, ("ada@contoso.com",)), (2, ("bob@contoso.com",))]),
        "aliases.csv": (
            {"upn": 1, "add_licenses": 2, "usage_location": 3, "start_date": 4},
            [
                (
                    2,
                    (
                        "ada.l@mail.example",
                        "ada@contoso.com",
                        "SPE_E3",
                        "Germany",
                        "2025-01-02",
                        "R&D",
                    ),
                ),
            ],
        ),
        "formula-text.csv": (
            {"upn": 0, "add_licenses": 1, "usage_location": 2},
            [
                (2, ('=HYPERLINK("http://x")', "SPE_E3", "US", "+1")),
            ],
        ),
        "extra-cells.csv": (
            {"upn": 0, "add_licenses": 1, "usage_location": 2},
            [
                (2, ("ada@contoso.com", "SPE_E3", "US", "1")),
            ],
        ),
        "typed-cells.xlsx": (
            {"upn": 0, "start_date": 3},
            [
                (
                    2,
                    (
                        "ada@contoso.com",
                        "00123",
                        "12345",
                        "2025-04-03",
                        "1.50",
                        "TRUE",
                        "00042",
                        "1.23456789012346E+19",
                    ),
                ),
            ],
        ),
        "formulas.xlsx": (
            {"upn": 0, "add_licenses": 1},
            [(2, ("ada@contoso.com", "SPE_E3", "2", "#N/A"))],
        ),
        "error-cells.xlsx": ({"upn": 0}, [(2, ("ada@contoso.com", "#N/A"))]),
        "merged.xlsx": (
            {"upn": 0, "add_licenses": 1},
            [
                (2, ("ada@contoso.com", "SPE_E3", "Sales")),
                (3, ("bob@contoso.com", "SPE_E3", "Sales")),
                (4, ("eve@contoso.com", "SPE_E3", "")),
            ],
        ),
        "hidden-first-sheet.xlsx": (
            {"upn": 0, "add_licenses": 1},
            [(2, ("ada@contoso.com", "SPE_E3"))],
        ),
        "macro.xlsm": ({"upn": 0, "add_licenses": 1}, [(2, ("ada@contoso.com", "SPE_E3"))]),
        "two-sheets.xlsx": ({"upn": 0}, [(2, ("ada@contoso.com",))]),
    }
)

#: fixture -> words the one-line error must contain
REFUSED = {
    "empty.csv": "is empty",
    "no-upn-column.csv": "row 1: no UserPrincipalName or ObjectId column",
    "duplicate-headers.csv": "columns 'UPN' (A) and 'UserPrincipalName' (C) both mean "
    "UserPrincipalName",
    "binary.csv": "holds binary data",
    "empty-sheet.xlsx": "sheet 'Users': has no header row",
    "text-renamed.xlsx": "looks like a text file",
    "old-format.xls": "old Excel 97-2003 workbook",
    "old-format-renamed.xlsx": "save it as .xlsx",
    "password-protected.xlsx": "is password-protected",
    "not-a-workbook.xlsx": "Word document",
    "truncated.xlsx": "damaged",
    "xml-bomb.xlsx": "XML bomb",
    "zip-bomb.xlsx": "zip bomb",
}


def test_there_are_enough_fixtures() -> None:
    names = {p.name for p in FIXTURES.iterdir()}
    assert set(PARSED) | set(REFUSED) <= names
    assert len(set(PARSED) | set(REFUSED)) >= 30
    # every committed fixture has an expected outcome here
    assert names - set(PARSED) - set(REFUSED) == set()


@pytest.mark.parametrize("name", sorted(PARSED))
def test_fixture_parses_to_exact_text(name: str) -> None:
    fields, rows = PARSED[name]
    sheet = read_sheet(FIXTURES / name)
    assert sheet.fields == fields
    assert [(r.row, r.values) for r in sheet.rows] == rows


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_fixture_is_refused_in_one_line(name: str) -> None:
    result = CliRunner().invoke(cli, ["validate", str(FIXTURES / name)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {name}")
    assert REFUSED[name] in lines[0]
    assert "Traceback" not in result.output and "internal error" not in result.stderr


def test_fixture_details() -> None:
    """The facts the table cannot show: encodings, delimiters, notes, sheets."""
    assert read_sheet(FIXTURES / "cp1252.csv").encoding == "Windows-1252"
    assert read_sheet(FIXTURES / "utf16-tab.txt").delimiter == "tab"
    assert read_sheet(FIXTURES / "utf8-bom.csv").headers[0] == "UserPrincipalName"  # no BOM leak
    assert read_sheet(FIXTURES / "hidden-first-sheet.xlsx").sheet_name == "Hires"
    assert read_sheet(FIXTURES / "extra-cells.csv").rows[0].extra == ("Smith", " John")
    assert "version line" in read_sheet(FIXTURES / "entra-bulk.csv").notes[0]
    # --sheet finds a hidden sheet too (any case); this one has no user column
    with pytest.raises(InputError, match="sheet 'Lookup', row 1: no UserPrincipalName"):
        read_sheet(FIXTURES / "hidden-first-sheet.xlsx", sheet="lookup")


def test_wrong_sheet_name_lists_the_sheets() -> None:
    result = CliRunner().invoke(
        cli, ["validate", str(FIXTURES / "two-sheets.xlsx"), "--sheet", "Nope"]
    )
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == "Error: two-sheets.xlsx: has no sheet 'Nope'. Sheets in the file: 'First'."
    )


def test_missing_file_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["validate", "no-such-file.csv"])
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == "Error: no-such-file.csv: file not found. Check the path and try again."
    )


def test_fixture_generator_is_kept_beside_the_fixtures() -> None:
    source = (FIXTURES.parent / "make_fixtures.py").read_text(encoding="utf-8")
    for name in ("password-protected.xlsx", "xml-bomb.xlsx", "zip-bomb.xlsx"):
        assert name in source
    assert Path(FIXTURES.parent / "make_fixtures.py").is_file()
