"""Hostile XLSX files of a few kilobytes: refused before the reader allocates, in one line.

A cell at XFD1048576 under a false <dimension>, 20,000 rows with one cell in column XFD, and
one 32,000-character shared string referenced 200,000 times would make the reader allocate
10 to 549 GB. Each must end with exit 1, one line, and a bounded peak memory.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from batch.errors import InputError
from batch.intake.sources import read_sheet
from tests.fixtures.hostile_xlsx import HOSTILE

REASONS = {
    "far-cell.xlsx": "has a cell at XFD1048576, far beyond its data",
    "wide-rows.xlsx": "has a cell in column XFD (column 16,384)",
    "shared-bomb.xlsx": "repeats its shared text into 6,105 MiB of cells",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_workbook_exits_1_in_one_line_with_bounded_memory(
    tmp_path: Path, name: str
) -> None:
    path = HOSTILE[name](tmp_path / name)
    completed = subprocess.run(
        [sys.executable, "-m", "batch", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert completed.returncode == 1, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {name}"), lines
    assert REASONS[name] in lines[0]
    assert peak_kib < 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def _with_sheet_xml(path: Path, sheet_xml: bytes) -> Path:
    with zipfile.ZipFile(HOSTILE["far-cell.xlsx"](path.with_suffix(".src.xlsx"))) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    parts["xl/worksheets/sheet1.xml"] = sheet_xml
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
    return path


def test_a_dtd_late_in_a_part_is_refused(tmp_path: Path) -> None:
    """The DTD check covers whole parts, not only their first kilobytes."""
    padding = b"".join(
        b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>u%d@contoso.example</t></is></c></row>'
        % (n, n, n)
        for n in range(2, 3000)
    )
    xml = (
        b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>'
        b"UserPrincipalName</t></is></c></row>"
        + padding
        + b'<!DOCTYPE x [<!ENTITY a "aaaa">]></sheetData></worksheet>'
    )
    assert xml.index(b"<!DOCTYPE") > 100_000
    with pytest.raises(InputError, match="declares XML entities"):
        read_sheet(_with_sheet_xml(tmp_path / "late-dtd.xlsx", xml))


def test_an_ordinary_sheet_is_still_read(tmp_path: Path) -> None:
    rows = b"".join(
        b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>u%d@contoso.example</t></is></c></row>'
        % (n, n, n)
        for n in range(2, 500)
    )
    xml = (
        b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>'
        b"UserPrincipalName</t></is></c></row>" + rows + b"</sheetData></worksheet>"
    )
    sheet = read_sheet(_with_sheet_xml(tmp_path / "fine.xlsx", xml))
    assert len(sheet.rows) == 498
