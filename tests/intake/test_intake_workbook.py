"""Report workbook primitives: text never becomes a formula, saving is atomic, sheets are usable."""

from __future__ import annotations

import datetime as dt
import os
import zipfile
from pathlib import Path

import openpyxl
import pytest

from batch.errors import ReportError
from batch.reports.workbook import (
    CELL_LIMIT,
    STATUS_COLOURS,
    ReportWorkbook,
    clean_text,
    output_path,
)

HOSTILE = [
    "=1+1",
    '=HYPERLINK("http://evil.example","click")',
    "+SUM(A1:A2)",
    "-2+3",
    "@SUM(1)",
    "\t=1",
    "\r=1",
    "\n=1",
    "#N/A",
    "#REF!",
    "TRUE",
    "00123",
    "1E5",
]


def _save(path: Path, headers: list[str], rows: list[list[object]], **options: object) -> Path:
    book = ReportWorkbook(path)
    book.add_table("Rows", headers, rows, **options)  # type: ignore[arg-type]
    return book.save()


def test_untrusted_text_is_stored_as_text(tmp_path: Path) -> None:
    path = _save(tmp_path / "r.xlsx", ["Value"], [[v] for v in HOSTILE], status_column=None)
    with zipfile.ZipFile(path) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
        styles = archive.read("xl/styles.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    assert 't="e"' not in sheet_xml and 't="b"' not in sheet_xml
    assert 'quotePrefix="1"' in styles
    sheet = openpyxl.load_workbook(path)["Rows"]
    cells = [sheet.cell(row=i + 2, column=1) for i in range(len(HOSTILE))]
    # XlsxWriter stores CR as the OOXML escape _x000D_, which Excel decodes; openpyxl does not.
    assert [c.value.replace("_x000D_", "\r") for c in cells] == HOSTILE
    assert {c.data_type for c in cells} == {"s"}
    prefixed = [c.value.replace("_x000D_", "\r") for c in cells if c.quotePrefix]
    assert prefixed == HOSTILE[:8]


def test_control_characters_and_long_text(tmp_path: Path) -> None:
    long_text = "a" * 40_000
    path = _save(
        tmp_path / "r.xlsx",
        ["Text"],
        [["bad\x00\x07\x1bchars\ttab\nline"], [long_text]],
        status_column=None,
    )
    sheet = openpyxl.load_workbook(path)["Rows"]
    assert sheet["A2"].value == "bad\ufffd\ufffd\ufffdchars\ttab\nline"
    cut = sheet["A3"].value
    assert len(cut) == CELL_LIMIT and cut.endswith("more characters]") and cut.startswith("aaaa")
    assert clean_text(long_text) == cut


def test_table_layout_and_status_colours(tmp_path: Path) -> None:
    rows = [
        [f"user{i}@contoso.com", i, status, dt.date(2025, 1, i + 1), 12.5 * i]
        for i, status in enumerate(STATUS_COLOURS)
    ]
    path = _save(
        tmp_path / "r.xlsx",
        ["UPN", "Row", "Status", "When", "Cost"],
        rows,
        kinds={"Row": "int", "When": "date", "Cost": "currency"},
        currency="EUR",
    )
    sheet = openpyxl.load_workbook(path)["Rows"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:E{len(rows) + 1}"
    assert sheet["B3"].value == 1 and sheet["B3"].data_type == "n"
    assert (
        sheet["D2"].value == dt.datetime(2025, 1, 1) and sheet["D2"].number_format == "yyyy-mm-dd"
    )
    assert sheet["E3"].number_format == '#,##0.00 "EUR"'
    for index, status in enumerate(STATUS_COLOURS, start=2):
        cell = sheet.cell(row=index, column=3)
        assert cell.value == status
        assert cell.fill.fgColor.rgb.endswith(STATUS_COLOURS[status][0].lstrip("#"))
    assert sheet.column_dimensions["A"].width >= len("user0@contoso.com")


def test_never_overwrites_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    path.write_bytes(b"previous report")
    with pytest.raises(ReportError, match="already exists"):
        ReportWorkbook(path)
    assert path.read_bytes() == b"previous report"
    _save_over = ReportWorkbook(path, overwrite=True)
    _save_over.add_table("Rows", ["A"], [["x"]])
    _save_over.save()
    assert zipfile.is_zipfile(path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.xlsx"]  # no temporary left behind


def test_a_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"

    def rows():  # type: ignore[no-untyped-def]
        yield ["fine"]
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError), ReportWorkbook(path) as book:
        book.add_table("Rows", ["A"], rows())
    assert list(tmp_path.iterdir()) == []


def test_name_taken_while_writing_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    book = ReportWorkbook(path)
    book.add_table("Rows", ["A"], [["x"]])
    path.write_bytes(b"someone else's")
    with pytest.raises(ReportError, match="already exists"):
        book.save()
    assert path.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["report.xlsx"]


def test_output_path_is_timestamped_and_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime(2025, 4, 3, 14, 15, 2)
    source = tmp_path / "hires.csv"
    first = output_path("validate", input_path=source, now=now)
    assert first == tmp_path / "hires-validate-20250403-141502.xlsx"
    first.write_bytes(b"")
    assert (
        output_path("validate", input_path=source, now=now).name
        == "hires-validate-20250403-141502-2.xlsx"
    )
    monkeypatch.chdir(tmp_path)
    assert (
        output_path("template", now=now, suffix=".csv")
        == Path.cwd() / "m365batch-template-20250403-141502.csv"
    )


def test_summary_sheet_and_bar_chart(tmp_path: Path) -> None:
    book = ReportWorkbook(tmp_path / "r.xlsx")
    summary = book.add_key_values(
        "Summary",
        [("Tenant", "contoso"), ("Rows", 3), ("Started", dt.datetime(2025, 1, 1))],
        title="Run",
    )
    table = book.add_table(
        "Licenses",
        ["SKU", "Assigned", "Free"],
        [["SPE_E3", 5, 2], ["EMS", 3, 0]],
        kinds={"Assigned": "int", "Free": "int"},
        status_column=None,
    )
    book.add_bar_chart(
        table, category_column=0, value_columns=[1, 2], title="Seats", on_sheet=summary, at="D2"
    )
    path = book.save()
    with zipfile.ZipFile(path) as archive:
        chart = archive.read("xl/charts/chart1.xml").decode()
    assert "<c:barChart>" in chart and "Licenses!$A$2:$A$3" in chart
    sheet = openpyxl.load_workbook(path)["Summary"]
    assert [sheet["A3"].value, sheet["B3"].value, sheet["B4"].value] == ["Tenant", "contoso", 3]


def test_report_files_get_normal_permissions(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    path = _save(shared / "r.xlsx", ["A"], [["x"]])
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    # in a folder that is the owner's alone (the tool's home), a report is too
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert _save(private / "r.xlsx", ["A"], [["x"]]).stat().st_mode & 0o777 == 0o600
