"""The print layout of wide tables: which columns give up width, and what is kept."""

from __future__ import annotations

from pathlib import Path

import openpyxl

from batch.reports.printing import (
    BUDGET,
    FLOOR,
    KEEP,
    PRINTABLE_ROWS,
    PrintedWorkbook,
    print_widths,
)

HEADERS = ("Email", "Notes", "Licenses", "Row", "Status", "Detail", "RequestId", "LicensesAfter")
TEXT = [True, True, True, False, True, True, True, True]
EMAIL = "a.very.long.address.of.someone@contoso.example"  # 46 characters


def _rows(count: int) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for n in range(count):
        rows.append(
            (
                EMAIL,
                "one long note that only the first row has, " * 2 if n == 0 else "",
                "Microsoft 365 E3 (SPE_E3), Microsoft Power Automate Free (FLOW_FREE)",
                123456789012 + n,
                "Applied",
                "",
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                "Microsoft 365 E3 (SPE_E3); Enterprise Mobility + Security E3 (EMS)",
            )
        )
    return rows


def test_a_table_that_fits_keeps_its_widths() -> None:
    narrow = [("a@b.example", "", "EMS", 1, "Applied", "", "", "EMS")]
    assert print_widths(HEADERS, narrow, text=TEXT, budget=BUDGET) == [
        max(len(h) + 2, len(str(v)) + 2, 8) for h, v in zip(HEADERS, narrow[0], strict=True)
    ]


def test_a_wide_table_is_narrowed_to_the_budget_sparse_columns_first() -> None:
    widths = print_widths(HEADERS, _rows(20), text=TEXT, keep=[0, 4], budget=150)
    assert sum(widths) <= 150, widths
    by = dict(zip(HEADERS, widths, strict=True))
    assert by["Notes"] == FLOOR  # one row in twenty has a note: it gives up its width
    assert by["Row"] == len("123456789031") + 2  # a number is never narrowed
    assert by["Email"] == KEEP  # kept: an address keeps up to KEEP characters
    assert by["Status"] == len("Applied") + 2
    assert by["LicensesAfter"] >= len("LicensesAfter") + 2  # a header's word is never cut
    assert by["Licenses"] < 50 and by["RequestId"] < 38  # the widest gave width


def test_with_no_room_the_columns_stop_at_their_floor() -> None:
    widths = print_widths(HEADERS, _rows(3), text=TEXT, keep=[0], budget=20)
    floors = [KEEP, FLOOR, FLOOR, 14, 9, 8, len("RequestId") + 2, len("LicensesAfter") + 2]
    assert widths == floors


def test_a_table_too_long_to_print_is_left_as_written(tmp_path: Path) -> None:
    headers = ("Email", "Added", "Detail", "LicensesAfter", "Notes", "RequestId")
    rows = [tuple(f"{h} of row {n} " * 6 for h in headers) for n in range(PRINTABLE_ROWS + 1)]
    for count, narrowed in ((PRINTABLE_ROWS + 1, False), (40, True)):
        path = tmp_path / f"{count}.xlsx"
        with PrintedWorkbook(path) as book:
            book.add_table("Rows", headers, rows[:count], status_column=None)
            book.fit_table_to_page("Rows", headers, rows[:count], budget=120)
        sheet = openpyxl.load_workbook(path)["Rows"]
        widths = [(d.max - d.min + 1) * d.width for d in sheet.column_dimensions.values()]
        assert (sum(widths) <= 120 + 6) is narrowed, widths
