"""Report tables: every kind of value lands typed as before, and the collector comes back.

``ReportWorkbook.add_table`` writes numbers, dates and statuses through shortcuts; these
check the cells people see against the rule of ``write_value`` (numbers and dates typed by
column kind, anything else as text), and that the garbage collector, paused while a
workbook is built, runs again after it is saved, dropped or failed.
"""

from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path

import openpyxl
import pytest

from batch.reports.workbook import ReportWorkbook


def test_values_are_typed_by_column_kind(tmp_path: Path) -> None:
    aware = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    rows = [
        [7, 1.5, aware, dt.date(2026, 1, 2), "Planned"],
        [True, "n/a", "never", None, "Failed"],
        ["", 0, dt.datetime(2026, 1, 1, 8, 0), "2026-01-01", "custom"],
    ]
    path = tmp_path / "typed.xlsx"
    with ReportWorkbook(path) as book:
        book.add_table(
            "Rows",
            ["Count", "Cost", "Last sign-in", "Created", "Status"],
            rows,
            kinds={
                "Count": "int",
                "Cost": "currency",
                "Last sign-in": "datetime",
                "Created": "date",
            },
            currency="EUR",
        )
    sheet = openpyxl.load_workbook(path)["Rows"]
    assert sheet["A2"].value == 7 and sheet["A2"].number_format == "#,##0"
    assert sheet["B2"].value == 1.5 and sheet["B2"].number_format == '#,##0.00 "EUR"'
    assert sheet["C2"].value == dt.datetime(2026, 3, 1, 10, 30)  # in UTC
    assert sheet["C2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert (
        sheet["D2"].value == dt.datetime(2026, 1, 2) and sheet["D2"].number_format == "yyyy-mm-dd"
    )
    assert sheet["A3"].value == "TRUE" and sheet["A3"].data_type == "s"  # a bool is not a number
    assert sheet["B3"].value == "n/a" and sheet["C3"].value == "never"
    assert sheet["D3"].value is None
    assert sheet["A4"].value is None and sheet["B4"].value == 0
    assert sheet["D4"].value == "2026-01-01" and sheet["D4"].data_type == "s"
    assert sheet["E2"].fill.fgColor.rgb.endswith("DDEBF7")  # Planned, coloured
    assert sheet["E4"].value == "custom" and sheet["E4"].fill.fill_type is None


def test_the_collector_runs_again_after_the_workbook(tmp_path: Path) -> None:
    assert gc.isenabled()
    with ReportWorkbook(tmp_path / "a.xlsx") as book:
        assert not gc.isenabled()
        book.add_table("Rows", ["A"], [["x"]])
    assert gc.isenabled()

    with pytest.raises(RuntimeError), ReportWorkbook(tmp_path / "b.xlsx"):
        raise RuntimeError("failed while writing")
    assert gc.isenabled() and not (tmp_path / "b.xlsx").exists()

    book = ReportWorkbook(tmp_path / "c.xlsx")  # saved without ``with``
    book.add_table("Rows", ["A"], [["x"]])
    book.save()
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused(tmp_path: Path) -> None:
    gc.disable()
    try:
        with ReportWorkbook(tmp_path / "a.xlsx") as book:
            book.add_table("Rows", ["A"], [["x"]])
        assert not gc.isenabled()
    finally:
        gc.enable()
