"""Hostile sizes: a 10 MB cell, a 1,000,000-row sheet, lying archives; defusedxml is active."""

from __future__ import annotations

# ruff: noqa: E501  (XML and CSV fixture text is clearer unwrapped)
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl.xml
import pytest
from click.testing import CliRunner

from batch.cli import cli
from batch.errors import InputError
from batch.intake.sheet import Limits
from batch.intake.sources import read_sheet

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
    '<sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    "</Relationships>"
)


def _cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def write_raw_xlsx(path: Path, rows: int, *, dimension: bool, big_cell: str | None = None) -> Path:
    """A minimal real XLSX streamed straight to the zip (fast for a million rows)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            head = '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            if dimension:
                head += f'<dimension ref="A1:B{rows + 1}"/>'
            sheet.write(
                (
                    head + "<sheetData>" + f'<row r="1">{_cell("A1", "UserPrincipalName")}'
                    f"{_cell('B1', 'Notes')}</row>"
                ).encode()
            )
            chunk = []
            for number in range(2, rows + 2):
                note = big_cell if (big_cell and number == 2) else "x"
                chunk.append(
                    f'<row r="{number}">{_cell(f"A{number}", f"u{number}@contoso.com")}'
                    f"{_cell(f'B{number}', note)}</row>"
                )
                if len(chunk) == 20000:
                    sheet.write("".join(chunk).encode())
                    chunk = []
            sheet.write(("".join(chunk) + "</sheetData></worksheet>").encode())
    return path


def test_openpyxl_uses_defusedxml() -> None:
    # openpyxl guards against XML bombs only when defusedxml is importable and enabled.
    assert openpyxl.xml.DEFUSEDXML is True


def test_ten_megabyte_cell_in_csv_is_refused_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "big-cell.csv"
    path.write_text(
        "UserPrincipalName,Notes\nada@contoso.com," + "x" * 10_000_000 + "\n", encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: big-cell.csv, row 2: a cell holds more than the 32,767 characters a cell can hold. "
        "Shorten or remove that value and try again."
    ]


def test_ten_megabyte_cell_in_xlsx_is_refused_cleanly(tmp_path: Path) -> None:
    # Random text, so the part does not also look like a zip bomb.
    path = write_raw_xlsx(
        tmp_path / "big-cell.xlsx", 3, dimension=True, big_cell=os.urandom(5_000_000).hex()
    )
    with pytest.raises(InputError) as caught:
        read_sheet(path)
    assert str(caught.value).startswith(
        "big-cell.xlsx, sheet 'Users', row 2, column 'Notes': a cell holds 10,000,000 characters"
    )


def test_cell_at_excel_limit_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "limit.csv"
    path.write_text(
        "UserPrincipalName,Notes\nada@contoso.com," + "z" * 32_767 + "\n", encoding="utf-8"
    )
    assert read_sheet(path).rows[0].values[1] == "z" * 32_767


def test_row_limit_from_the_declared_dimension(tmp_path: Path) -> None:
    path = write_raw_xlsx(tmp_path / "declared.xlsx", 300, dimension=True)
    with pytest.raises(InputError, match=r"has 301 rows, more than the 200 data rows allowed"):
        read_sheet(path, limits=Limits(max_rows=200))
    assert len(read_sheet(path).rows) == 300


def test_row_limit_in_csv_stops_reading(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        "UserPrincipalName\n" + "".join(f"u{i}@contoso.com\n" for i in range(120)), encoding="utf-8"
    )
    with pytest.raises(InputError, match=r"row 102: has more than 100 data rows"):
        read_sheet(path, limits=Limits(max_rows=100))


def test_million_row_sheet_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    """No <dimension> to go by: the sheet is loaded, counted and refused, under 1 GB RSS."""
    path = write_raw_xlsx(tmp_path / "million.xlsx", 1_000_000, dimension=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    completed = subprocess.run(
        [sys.executable, "-m", "batch", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert completed.returncode == 1, completed.stderr
    assert completed.stderr.strip().splitlines() == [
        "Error: million.xlsx, sheet 'Users': has 1,000,001 rows, more than the 250,000 data rows "
        "allowed in one file. Split the file into smaller files and run them one after another."
    ]
    assert "Traceback" not in completed.stderr
    assert max(peak_kib, before) < 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_lying_zip_part_fails_before_parsing(tmp_path: Path) -> None:
    """A part whose recorded CRC does not match its content is refused by the archive check."""
    good = write_raw_xlsx(tmp_path / "good.xlsx", 5, dimension=True)
    data = bytearray(good.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    # Central directory entries: signature, then the CRC at offset 16 and the name at 46.
    entry = data.find(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(name)] != name:
        entry = data.find(b"PK\x01\x02", entry + 4)
        assert entry != -1
    data[entry + 16 : entry + 20] = b"\x01\x02\x03\x04"
    bad = tmp_path / "bad-crc.xlsx"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="part xl/worksheets/sheet1.xml cannot be unpacked"):
        read_sheet(bad)
