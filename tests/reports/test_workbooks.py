"""What people read in every kind of workbook: nothing cut off, products by their names,
every sheet printing landscape one page wide.

The workbooks are made by the real CLI on the shipped samples against a simulated tenant:
validate, plan, apply, its undo, true-up (the shipped price template), a migration dry run
and run, export and the input template.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from batch.intake.catalog import _plans_by_id, _reference
from batch.reports.printing import BUDGET
from batch.simulator import SimulatorOptions, start_simulator
from tests.run.runkit import SAMPLE, Tenant

ROOT = Path(__file__).resolve().parents[2]
KINDS = (
    "validate",
    "plan",
    "apply",
    "undo",
    "true-up",
    "migrate",
    "migrate-run",
    "export",
    "template",
)
#: sheets that are the user's own data as given (input columns, exports), not our words
DATA_SHEETS = {"Assignments", "Lists"}
CAP = 90  #: the widest any report column may be


@pytest.fixture(scope="module")
def workbooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Each kind of workbook, written once for this module's tests."""
    root = tmp_path_factory.mktemp("workbooks")
    options = SimulatorOptions(seed=7, time_scale=50, group_processing_delay=5.0)
    with start_simulator(root / "sim", options) as sim:
        tenant = Tenant(sim, root / "home")
        sheet = root / "onboarding.xlsx"
        shutil.copy(ROOT / "samples" / "onboarding.xlsx", sheet)
        books = {kind: root / f"{kind}.xlsx" for kind in KINDS}
        commands = {
            "validate": ["validate", str(sheet)],
            "plan": ["plan", str(sheet)],
            "apply": ["apply", str(sheet), "--yes"],
            "true-up": ["true-up", "--prices", str(ROOT / "templates" / "prices-template.csv")],
            "migrate": [
                "migrate",
                "--map",
                str(ROOT / "samples" / "migration-map.csv"),
                "--dry-run",
            ],
        }
        commands["migrate-run"] = [*commands["migrate"][:-1], "--yes"]
        commands["export"] = ["export"]
        commands["template"] = ["template"]
        for kind, args in commands.items():
            done = tenant.cli(*args, "--output", str(books[kind]))
            assert done.returncode in (0, 3), done.stdout + done.stderr
            assert books[kind].exists(), done.stdout + done.stderr
            if kind == "apply":
                run_id = next(
                    x.split()[1].rstrip(":")
                    for x in done.stdout.splitlines()
                    if x.startswith("Run ")
                )
                undone = tenant.cli("undo", run_id, "--yes", "--output", str(books["undo"]))
                assert undone.returncode == 0, undone.stdout + undone.stderr
        yield books


def _sheets(path: Path) -> Iterator[Any]:
    book = openpyxl.load_workbook(path)
    try:
        yield from (book[name] for name in book.sheetnames if name not in DATA_SHEETS)
    finally:
        book.close()


def _width(sheet: Any, column: int) -> float:
    """A column's width (openpyxl keeps neighbours of the same width as one range)."""
    for dimension in sheet.column_dimensions.values():
        if dimension.min and dimension.max and dimension.min <= column <= dimension.max:
            return float(dimension.width or 8.43)
    return float(sheet.column_dimensions[get_column_letter(column)].width or 8.43)


def _shown(cell: Any) -> str:
    """A cell's text roughly as a spreadsheet shows it (numbers with separators)."""
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        shape = cell.number_format or ""
        if "%" in shape:
            return f"{value:.1%}"
        return f"{value:,.2f}" if "0.00" in shape else f"{value:,}"
    return str(value)


@pytest.mark.parametrize("kind", KINDS)
def test_no_text_is_cut_off(workbooks: dict[str, Path], kind: str) -> None:
    """Every cell's text fits its column, wraps, or runs on over an empty neighbour; no
    column is wider than the cap."""
    for sheet in _sheets(workbooks[kind]):
        for column in sheet.iter_cols(min_row=1, max_row=min(sheet.max_row, 500)):
            width = _width(sheet, column[0].column)
            assert width <= CAP + 1, (kind, sheet.title, column[0].value, width)
            for cell in column:
                text = _shown(cell)
                longest = max((len(part) for part in text.split("\n")), default=0)
                if longest + 1 <= width or (cell.alignment and cell.alignment.wrap_text):
                    continue
                # text may run on over an empty neighbour; a number never does
                beside = sheet.cell(cell.row, cell.column + 1).value
                is_text = isinstance(cell.value, str)
                assert is_text and beside in (None, ""), (kind, sheet.title, cell.coordinate, text)


def _names() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Part number -> product name, skuId -> product name, planId -> plan's friendly name."""
    reference = _reference()
    by_part, by_id = {}, {}
    for sku in SAMPLE["skus"]:
        known = reference.get(sku["skuId"])
        if known is not None and known.names:
            by_part[sku["skuPartNumber"]] = known.name
            by_id[sku["skuId"]] = known.name
    plans = {pid: plan.friendly_name for pid, plan in _plans_by_id().items() if plan.friendly_name}
    return by_part, by_id, plans


def _input_columns(sheet: Any) -> int:
    """On a Rows or Map sheet, how many columns are the input as given (before Row); on the
    template's Users sheet, all of them (examples in the input's own format)."""
    if sheet.title == "Users" and sheet.parent.sheetnames[0] == "Users":
        return sheet.max_column
    if sheet.title not in ("Rows", "Map"):
        return 0
    headers = [c.value for c in sheet[1]]
    return headers.index("Row") if "Row" in headers else 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_sku_and_plan_is_shown_with_its_name(workbooks: dict[str, Path], kind: str) -> None:
    """Wherever a report names a SKU (part number or skuId) or a plan (servicePlanId), the
    product's or plan's name is there too: in the same cell, or in the same row."""
    by_part, by_id, plans = _names()
    part_word = re.compile(r"(?<![\w(])(" + "|".join(map(re.escape, by_part)) + r")(?![\w)])")
    guid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    missing = []
    for sheet in _sheets(workbooks[kind]):
        skip = _input_columns(sheet)
        for row in sheet.iter_rows():
            texts = [_shown(c) for c in row]
            whole = " | ".join(texts)
            for cell, text in zip(row[skip:], texts[skip:], strict=True):
                for part in part_word.findall(text):
                    if by_part[part] not in whole:
                        missing.append((sheet.title, cell.coordinate, part, text))
                for found in guid.findall(text.lower()):
                    name = by_id.get(found) or plans.get(found)
                    if name and name not in whole:
                        missing.append((sheet.title, cell.coordinate, found, text))
    assert not missing, sorted({(m[0], m[1][0], m[2]) for m in missing})


def test_true_up_with_the_empty_price_template_says_no_prices(
    workbooks: dict[str, Path],
) -> None:
    """The shipped template has no prices filled in: the Summary says so, not its name alone."""
    book = openpyxl.load_workbook(workbooks["true-up"], read_only=True)
    try:
        rows = list(book["Summary"].iter_rows(values_only=True))
    finally:
        book.close()
    facts = {r[0]: r[1] for r in rows if r and r[0]}
    assert facts["Prices"] == "no prices given (prices-template.csv has none filled in)"
    assert any("Cost of purchased seats" in r for r in rows)


@pytest.mark.parametrize("kind", KINDS)
def test_every_sheet_prints_landscape_one_page_wide(workbooks: dict[str, Path], kind: str) -> None:
    """Every sheet prints landscape on A4, fitted to one page wide (as many pages tall as it
    takes), a table's header row on every page; a wide Rows sheet is narrowed to be read."""
    book = openpyxl.load_workbook(workbooks[kind])
    try:
        for sheet in book.worksheets:
            setup = sheet.page_setup
            where = (kind, sheet.title)
            assert setup.orientation == "landscape", where
            assert sheet.sheet_properties.pageSetUpPr.fitToPage, where
            assert (setup.fitToWidth or 1) == 1 and setup.fitToHeight in (0, "0"), where
            assert setup.paperSize in (9, "9"), where
            tables = sheet.title not in ("Summary", "Instructions", "Cost")
            assert (sheet.print_title_rows == "$1:$1") == tables, (where, sheet.print_title_rows)
            if sheet.title == "Rows":  # (a column's width holds a character of padding)
                widths = sum(_width(sheet, c) for c in range(1, sheet.max_column + 1))
                assert widths <= BUDGET + sheet.max_column, (where, widths)
    finally:
        book.close()
