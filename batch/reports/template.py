"""Template: input templates (XLSX with dropdowns, or CSV) that validate cleanly.

The XLSX has the input sheet first (``Users``, so reading the template back takes it), an
``Instructions`` sheet, and a ``Lists`` sheet that feeds the dropdowns: the tenant's SKUs
(part numbers and product names, both of which the reader accepts), ISO 3166-1 usage
locations and the actions. Dropdowns allow free entry too, because a cell may list several
licenses and a usage location may be a country name.

The generic templates in ``templates/`` are built from the catalog's common SKUs::

    python -m batch.reports.template templates/
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path
from typing import IO, Any

import pycountry

from batch.errors import ReportError
from batch.files import atomic_write
from batch.intake.catalog import COMMON_PART_NUMBERS, Catalog, Sku, subscribed_skus_from_catalog
from batch.reports.workbook import ReportWorkbook

__all__ = ["TEMPLATE_COLUMNS", "example_rows", "write_generic_templates", "write_template"]

#: (header, what to write in it)
TEMPLATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("UserPrincipalName", "Required (or ObjectId). The user's sign-in name, e.g. ada@contoso.com."),
    (
        "AddLicenses",
        "Licenses the user must hold: part number (SPE_E3), product name or skuId. "
        "Several: separate with ;",
    ),
    ("RemoveLicenses", "Licenses to take away, written the same way."),
    (
        "DisabledPlans",
        "Service plans to switch off in the added licenses: PLAN or SKU:PLAN, separated by ;",
    ),
    (
        "UsageLocation",
        "Two-letter ISO country code (US, GB, DE). Needed before a license can be assigned.",
    ),
    ("Groups", "Licensed groups to join (name or id), separated by ;"),
    ("RemoveGroups", "Licensed groups to leave."),
    ("Action", "assign (default, may be left empty) or offboard (removes every direct license)."),
    ("EffectiveDate", "YYYY-MM-DD. Rows dated in the future are deferred until that day."),
    (
        "DisplayName",
        "Any other column (DisplayName, Department, EmployeeId, ...) is carried to the report.",
    ),
    ("Department", ""),
    ("EmployeeId", "Kept exactly as written, leading zeros included."),
)

INSTRUCTIONS = (
    "Fill in one row per user on the Users sheet, replacing the example rows.",
    "Check the sheet with: m365batch validate FILE  (no changes are made).",
    "See what would change with: m365batch plan FILE; apply it with: m365batch apply FILE.",
    "Every row comes back in the report with a status: Applied, NoChange, Invalid, Failed, "
    "Deferred...",
    "The Lists sheet holds the tenant's licenses (part number, product name, free seats) and the "
    "usage location codes the dropdowns offer.",
)

#: the Lists sheet that feeds the dropdowns
LISTS_HEADERS = (
    "License",
    "Product name",
    "Part number",
    "Free seats",
    "UsageLocation",
    "Country",
    "Action",
)


def _pick(skus: list[Sku], count: int) -> list[Sku]:
    """The tenant's main user licenses: most seats first, then the well-known ones."""
    user_skus = [s for s in skus if (s.applies_to or "User").casefold() == "user"] or skus
    common = {part: index for index, part in enumerate(COMMON_PART_NUMBERS)}
    user_skus.sort(
        key=lambda s: (-s.enabled_units, common.get(s.part_number, len(common)), s.part_number)
    )
    return user_skus[:count]


def example_rows(catalog: Catalog, *, today: dt.date | None = None) -> list[list[str]]:
    """Example rows using the tenant's own SKUs (so they validate against it)."""
    today = today or dt.date.today()
    skus = _pick(catalog.tenant_skus, 2)
    first = skus[0].part_number if skus else ""
    second = skus[1] if len(skus) > 1 else None
    plans = [p.name for p in skus[0].plans] if skus else []
    plan = "SWAY" if "SWAY" in plans else (plans[0] if plans else "")
    return [
        [
            "ada.lovelace@example.com",
            first,
            "",
            "",
            "GB",
            "",
            "",
            "assign",
            today.isoformat(),
            "Ada Lovelace",
            "Engineering",
            "000123",
        ],
        [
            "alan.turing@example.com",
            f"{first};{second.name}" if second else first,
            "",
            f"{first}:{plan}" if plan else "",
            "US",
            "",
            "",
            "",
            "",
            "Alan Turing",
            "Research",
            "000124",
        ],
        [
            "grace.hopper@example.com",
            "",
            "",
            "",
            "",
            "",
            "",
            "offboard",
            "",
            "Grace Hopper",
            "Navy",
            "000125",
        ],
    ]


def write_template(
    path: Path,
    catalog: Catalog,
    *,
    as_csv: bool = False,
    overwrite: bool = False,
    today: dt.date | None = None,
) -> Path:
    """Write an input template for the tenant in ``catalog``; return its path."""
    headers = [name for name, _ in TEMPLATE_COLUMNS]
    rows = example_rows(catalog, today=today)
    if as_csv:
        return _write_csv(path, headers, rows, overwrite=overwrite)
    with ReportWorkbook(path, overwrite=overwrite) as book:
        _fill_workbook(book, catalog, headers, rows)
    return book.path


def _fill_workbook(
    book: ReportWorkbook, catalog: Catalog, headers: list[str], rows: list[list[str]]
) -> None:
    book.book.set_properties(
        {"title": "m365batch input template", "created": dt.datetime(2025, 1, 1)}
    )
    users = book.add_table("Users", headers, rows, status_column=None, max_width=40)
    sheet = book.book.get_worksheet_by_name(users.sheet)
    for col, (_, note) in enumerate(TEMPLATE_COLUMNS):
        if note:
            sheet.write_comment(0, col, note, {"x_scale": 2, "y_scale": 1.2})
    license_count, country_count = _add_lists(book, catalog)
    _add_dropdowns(book, sheet, license_count, country_count)
    _add_instructions(book)
    book.fit_for_print(no_repeat=("Instructions",))
    sheet.activate()


def _add_lists(book: ReportWorkbook, catalog: Catalog) -> tuple[int, int]:
    """The Lists sheet the dropdowns read; return how many licenses and countries it lists."""
    # Company-only SKUs cannot be assigned to users, so they are not offered.
    skus = [s for s in catalog.tenant_skus if (s.applies_to or "User").casefold() != "company"]
    license_items = [s.part_number for s in skus] + [
        s.name for s in skus if s.name != s.part_number
    ]
    countries = sorted(pycountry.countries, key=lambda c: c.alpha_2)
    length = max(len(license_items), len(countries), 2)
    list_rows = []
    for index in range(length):
        sku = skus[index] if index < len(skus) else None
        country = countries[index] if index < len(countries) else None
        list_rows.append(
            [
                license_items[index] if index < len(license_items) else "",
                sku.name if sku else "",
                sku.part_number if sku else "",
                sku.free_units if sku else "",
                country.alpha_2 if country else "",
                country.name if country else "",
                ("assign", "offboard")[index] if index < 2 else "",
            ]
        )
    book.add_table(
        "Lists", LISTS_HEADERS, list_rows, kinds={"Free seats": "int"}, status_column=None
    )
    return len(license_items), len(countries)


def _add_dropdowns(
    book: ReportWorkbook, sheet: Any, license_count: int, country_count: int
) -> None:
    """Dropdowns on the Users sheet for the licenses, the usage location and the action."""
    last = 5000
    if license_count:
        source = f"=Lists!$A$2:$A${license_count + 1}"
        for col in (1, 2):
            book.add_list_validation(
                sheet,
                col,
                source,
                last_row=last,
                title="License",
                message="Pick one, or type several separated by ;",
            )
    book.add_list_validation(
        sheet,
        4,
        f"=Lists!$E$2:$E${country_count + 1}",
        last_row=last,
        title="Usage location",
        message="Two-letter ISO country code.",
    )
    book.add_list_validation(
        sheet,
        7,
        "=Lists!$G$2:$G$3",
        last_row=last,
        title="Action",
        message="assign (default) or offboard",
        strict=True,
    )


def _add_instructions(book: ReportWorkbook) -> None:
    """The Instructions sheet: the steps, then what to write in each column."""
    info = book.add_key_values(
        "Instructions",
        [(f"{i}.", line) for i, line in enumerate(INSTRUCTIONS, 1)],
        title="m365batch input template",
    )
    row = len(INSTRUCTIONS) + 3
    book.write_text(info, row, 0, "Column", bold=True)
    book.write_text(info, row, 1, "What to write", bold=True)
    for offset, (name, note) in enumerate(TEMPLATE_COLUMNS, start=1):
        book.write_text(info, row + offset, 0, name)
        book.write_text(info, row + offset, 1, note)


def _write_csv(path: Path, headers: list[str], rows: list[list[str]], *, overwrite: bool) -> Path:
    def write(handle: IO[str]) -> None:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)

    try:
        # UTF-8 with a BOM: Excel then opens it with the right encoding.
        return atomic_write(
            path, write, overwrite=overwrite, mode=None, encoding="utf-8-sig", newline=""
        )
    except FileExistsError as exc:
        raise ReportError(f"{path} already exists; choose another --output name.") from exc
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}.") from exc


def write_generic_templates(folder: Path) -> list[Path]:
    """(Re)write the generic templates, built from the catalog's common SKUs."""
    catalog = Catalog.load(subscribed_skus_from_catalog(COMMON_PART_NUMBERS))
    today = dt.date(2025, 1, 1)
    return [
        write_template(folder / "onboarding-template.xlsx", catalog, overwrite=True, today=today),
        write_template(
            folder / "onboarding-template.csv", catalog, as_csv=True, overwrite=True, today=today
        ),
    ]


if __name__ == "__main__":
    for written in write_generic_templates(Path(sys.argv[1] if len(sys.argv) > 1 else "templates")):
        print(written)
