"""Migrate, the inputs: read and check the SKU mapping file of ``migrate``, and its users sheet.

The map is a small CSV or XLSX table, one row per SKU to move (headers matched ignoring case,
spaces and underscores): ``FromSku``, ``ToSku`` (required; part number, product name or skuId
GUID), ``KeepDisabledPlans`` (yes/no, default yes), ``DisablePlans`` (plans of ToSku to
disable for everyone, ``;``-separated names or GUIDs) and ``DisableNewPlans`` (yes/no,
default no). A row naming a SKU the catalog does not know, a SKU the tenant has no
subscription to, a ToSku that applies to the company, a FromSku mapped twice or a chain
(a ToSku that is itself moved) is Invalid, with the reason; the other rows still run.

The users sheet of ``--users`` names the users to move, by UserPrincipalName or ObjectId.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch.errors import InputError
from batch.intake.catalog import Catalog
from batch.intake.sheet import normalise_header
from batch.intake.sources import read_sheet
from batch.status import RowStatus

__all__ = ["MapLine", "MapRule", "read_map", "read_table", "users_from_sheet"]

#: map header (normalised) per option
_MAP_COLUMNS = {
    "from": ("fromsku", "from", "oldsku", "sourcesku", "fromlicense"),
    "to": ("tosku", "to", "newsku", "targetsku", "tolicense"),
    "keep": ("keepdisabledplans", "keepplans"),
    "disable": ("disableplans", "planstodisable", "extradisabledplans"),
    "disable_new": ("disablenewplans",),
}
_YES, _NO = {"yes", "y", "true", "1", "x"}, {"no", "n", "false", "0", ""}


@dataclass(frozen=True)
class MapRule:
    """One usable line of the map."""

    row: int
    from_id: str
    from_part: str
    to_id: str
    to_part: str
    keep_disabled: bool = True
    disable_plans: frozenset[str] = frozenset()  # ToSku servicePlanIds
    disable_new: bool = False

    @property
    def same_sku(self) -> bool:
        return self.from_id == self.to_id

    @property
    def label(self) -> str:
        return f"{self.from_part} -> {self.to_part}"


@dataclass
class MapLine:
    """A map row as read, with its status (Planned, Invalid, NoChange for same-SKU)."""

    row: int
    values: tuple[str, ...]
    status: str
    detail: str = ""
    rule: MapRule | None = None
    users: int = 0


def read_map(path: Path, catalog: Catalog) -> tuple[tuple[str, ...], list[MapLine]]:
    """Read and check the map against the tenant's SKUs: ``(headers, lines)``, bad rows Invalid."""
    headers, rows = read_table(path)
    columns: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = normalise_header(header)
        for name, aliases in _MAP_COLUMNS.items():
            if key in {normalise_header(a) for a in aliases} and name not in columns:
                columns[name] = index
    missing = [
        label for name, label in (("from", "FromSku"), ("to", "ToSku")) if name not in columns
    ]
    if missing:
        raise InputError(
            f"the map has no {' or '.join(missing)} column.",
            path=path,
            row=1,
            hint="Give it the headers FromSku and ToSku (see samples/migration-map.csv).",
        )
    lines: list[MapLine] = []
    seen: dict[str, int] = {}
    for number, values in rows:

        def cell(name: str, _values: Sequence[str] = values) -> str:
            index = columns.get(name)
            return _values[index].strip() if index is not None and index < len(_values) else ""

        line = MapLine(number, tuple(values), RowStatus.PLANNED)
        lines.append(line)
        if not cell("from") and not cell("to"):
            line.status, line.detail = RowStatus.SKIPPED, "empty row"
            continue
        problems: list[str] = []
        source_sku = _tenant_sku(catalog, cell("from"), "FromSku", problems)
        target = _tenant_sku(catalog, cell("to"), "ToSku", problems, need_seats=True)
        keep = _yes_no(cell("keep"), True, "KeepDisabledPlans", problems)
        disable_new = _yes_no(cell("disable_new"), False, "DisableNewPlans", problems)
        plans: set[str] = set()
        for text in filter(None, (t.strip() for t in cell("disable").replace(",", ";").split(";"))):
            plan = target.find_plan(text.rpartition(":")[2]) if target else None
            if target and plan is None:
                problems.append(
                    f"DisablePlans: '{text}' is not a service plan of {target.part_number}"
                )
            elif plan:
                plans.add(plan.id)
        if source_sku and source_sku.id in seen:
            problems.append(
                f"{source_sku.part_number} is already mapped on row {seen[source_sku.id]}"
            )
        elif target and any(
            r.rule and r.rule.from_id == target.id and not r.rule.same_sku for r in lines[:-1]
        ):
            problems.append(
                f"{target.part_number} is itself moved on another row: chains are not supported"
            )
        if problems or source_sku is None or target is None:
            line.status, line.detail = RowStatus.INVALID, "; ".join(problems)
            continue
        seen[source_sku.id] = number
        line.rule = MapRule(
            number,
            source_sku.id,
            source_sku.part_number,
            target.id,
            target.part_number,
            keep,
            frozenset(plans),
            disable_new,
        )
    return headers, lines


def users_from_sheet(path: Path) -> list[str]:
    """The users of a ``--users`` sheet (its UserPrincipalName or ObjectId column), once each."""
    sheet = read_sheet(path)
    field_name = (
        "upn" if "upn" in sheet.fields else "object_id" if "object_id" in sheet.fields else None
    )
    if field_name is None:
        raise InputError(
            "the users sheet has no UserPrincipalName (or ObjectId) column.",
            path=path,
            sheet=sheet.sheet_name,
            row=sheet.header_row,
            hint="Add one, one user per row.",
        )
    names = [sheet.value(row, field_name) for row in sheet.rows]
    return list(dict.fromkeys(n for n in names if n))


def read_table(path: Path) -> tuple[tuple[str, ...], list[tuple[int, list[str]]]]:
    """A small CSV or XLSX table as text: ``(headers, [(row, cells)])``, blank rows left out."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        raw = _xlsx_rows(path)
    elif suffix == ".xls":
        raise InputError(
            "is an old .xls workbook.", path=path, hint="Save it as .xlsx or CSV and try again."
        )
    else:
        raw = _csv_rows(path)
    table = [(n, cells) for n, cells in raw if any(c.strip() for c in cells)]
    if not table:
        raise InputError("is empty.", path=path, hint="Put FromSku and ToSku headers in row 1.")
    (_, header), rows = table[0], table[1:]
    return tuple(h.strip() for h in header), rows


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    data = path.read_bytes()
    text = None
    for encoding in ("utf-16",) if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        text = data.decode("cp1252", errors="replace")  # Excel's "CSV (Comma delimited)"
    first = text.splitlines()[0] if text else ""
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [(reader.line_num, row) for row in reader]


def _xlsx_rows(path: Path) -> list[tuple[int, list[str]]]:
    import openpyxl  # type: ignore[import-untyped, unused-ignore]

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise InputError(f"cannot be read as a workbook: {exc}", path=path) from exc
    try:
        sheet = next(
            (ws for ws in book.worksheets if ws.sheet_state == "visible"), book.worksheets[0]
        )
        return [
            (number, ["" if v is None else str(v) for v in row])
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
    finally:
        book.close()


def _tenant_sku(
    catalog: Catalog, text: str, column: str, problems: list[str], *, need_seats: bool = False
) -> Any:
    if not text:
        problems.append(f"{column} is empty")
        return None
    found = catalog.find_skus(text)
    if not found:
        hint = catalog.suggest(text)
        problems.append(
            f"{column} '{text}' is not a known SKU" + (f" (did you mean {hint}?)" if hint else "")
        )
        return None
    sku = found[0]
    if not sku.in_tenant:
        problems.append(
            f"{column} {sku.part_number}: the tenant has no subscription to it"
            + (" (buy it from the new CSP first)" if need_seats else "")
        )
        return None
    if need_seats and (sku.applies_to or "User").lower() != "user":
        problems.append(f"ToSku {sku.part_number} applies to the company, not to users")
        return None
    return sku


def _yes_no(text: str, default: bool, column: str, problems: list[str]) -> bool:
    value = text.strip().casefold()
    if not value:
        return default
    if value in _YES:
        return True
    if value in _NO:
        return False
    problems.append(f"{column} '{text}' is not yes or no")
    return default
