"""True-up report: the monthly reconciliation workbook, written through ``batch.reports.workbook``.

Sheets: ``Summary`` (tenant, date, threshold, notes, per-SKU seats and cost with totals per
currency, a chart of assigned against free seats), ``Users``, ``Reclaim``, ``Errors``,
``Cost`` (by department and by country) and, with an earlier workbook, ``Changes``.

Cost cells are numbers with their currency in the number format (``1,234.00 "EUR"``), so
Excel can still sum them; a SKU without a price shows the text "no price", never 0.
Different currencies get separate columns and separate total rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from batch.jobs.trueup.reckon import TrueUp, licenses_text, summary_lines
from batch.reports.workbook import NUMBER_FORMATS, ReportWorkbook

__all__ = ["NO_PRICE", "run_trueup", "summary_lines", "write_trueup_workbook"]

NO_PRICE = "no price"
COST_NOTES = (  # what the two monthly costs mean, one line each
    "Cost of purchased seats (Summary): every seat bought, used or not, times its price.",
    "Cost of assigned seats (Cost sheet): the seats people hold, times their price.",
)
HEADER_STYLE: dict[str, Any] = {"bold": True, "bg_color": "#D9E1F2", "bottom": 1, "text_wrap": 1}
TOTAL_STYLE: dict[str, Any] = {"bold": True, "top": 1}
WARN_STYLE: dict[str, Any] = {"font_color": "#9C5700", "align": "right"}


def _money_format(currency: str) -> str:
    return f'#,##0.00 "{currency}"' if currency else NUMBER_FORMATS["currency"]


def _cost_headers(currencies: Sequence[str], label: str) -> list[str]:
    if not currencies:
        return [label]
    return [f"{label} ({c})" if c else label for c in currencies]


def _cost_cells(
    currencies: Sequence[str], amounts: dict[str, float], *, unpriced: bool
) -> list[Any]:
    """One cell per currency column: the amount, or 'no price' when nothing could be priced."""
    if not currencies:
        return [NO_PRICE]
    if not amounts and unpriced:
        return [NO_PRICE] * len(currencies)
    return [round(amounts[c], 2) if c in amounts else None for c in currencies]


def _local(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment else None


def write_trueup_workbook(trueup: TrueUp, path: Path | str) -> Path:
    """Write the true-up workbook atomically to ``path`` (never over an existing file)."""
    with ReportWorkbook(path) as book:
        _summary(book, trueup)
        _users(book, trueup)
        _reclaim(book, trueup)
        _errors(book, trueup)
        _cost(book, trueup)
        if trueup.changes is not None:
            _changes(book, trueup)
        book.fit_for_print(no_repeat=("Summary", "Cost"))
    return book.path


# ------------------------------------------------------------------------------ Summary


#: the Summary sheet's per-SKU table: (header, kind of value, column width)
SUMMARY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("Product", "text", 34),
    ("Part number", "text", 26),
    ("Status", "text", 11),
    ("Purchased", "int", 11),
    ("Warning", "int", 9),
    ("Suspended", "int", 10),
    ("Assigned", "int", 10),
    ("Free", "int", 9),
    ("Utilization", "percent", 11),
    ("Monthly price", "currency", 14),
    ("Cost of purchased seats", "currency", 16),
    ("Cost of free seats", "currency", 17),
)
SUMMARY_HEADERS = tuple(header for header, _, _ in SUMMARY_COLUMNS)
SUMMARY_KINDS = tuple(kind for _, kind, _ in SUMMARY_COLUMNS)
SUMMARY_WIDTHS = tuple(width for _, _, width in SUMMARY_COLUMNS)


def _summary(book: ReportWorkbook, t: TrueUp) -> None:
    sheet = book.book.add_worksheet("Summary")
    book.write_text(sheet, 0, 0, "Microsoft 365 license true-up", bold=True, font_size=14)
    row = _write_facts(book, sheet, _summary_facts(t), 2)
    top = row + 1
    last_data = _write_sku_table(book, sheet, t, top)
    row = _write_totals(book, sheet, t, last_data + 1)
    row = _write_notes(book, sheet, t, row + 2)
    _lay_out_summary(sheet, t, top, last_data)
    if t.skus:
        sheet.insert_chart(row + 2, 0, _seats_chart(book, t, top, last_data))


def _summary_facts(t: TrueUp) -> list[tuple[str, Any]]:
    """The label/value pairs at the top of the Summary sheet."""
    snap = t.snapshot
    seats, saving = t.reclaimable()
    info: list[tuple[str, Any]] = [
        ("Tenant", snap.tenant),
        ("Date", f"{snap.read_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"),
        ("Inactive-days threshold", t.inactive_days),
        ("Prices", _prices_fact(t)),
        ("Licensed users", len(snap.users)),
        *(
            [("Sign-in unknown", sum(1 for u in snap.users if u.sign_in_unknown))]
            if snap.sign_in_available
            else []
        ),
        ("Free seats", t.free_seats),
        ("Reclaimable seats", seats),
    ]
    for currency in t.currencies or [""]:
        label = f"Monthly saving ({currency})" if currency else "Monthly saving"
        info.append((label, round(saving.get(currency, 0.0), 2) if t.currencies else NO_PRICE))
    if t.previous is not None:
        info.append(("Compared with", f"{t.previous.path.name} ({t.previous.date or 'undated'})"))
    info.append(
        (
            "Graph reads",
            f"{snap.requests:,} requests, {snap.resource_units:,.0f} resource "
            f"units, {snap.throttled} throttled",
        )
    )
    return info


def _prices_fact(t: TrueUp) -> str:
    """Where the prices came from, or that none were given (an empty template gives none)."""
    name = t.prices.source.name if t.prices.source else ""
    if t.prices.prices or not name:
        return name or "no prices given"
    return f"no prices given ({name} has none filled in)"


def _write_facts(book: ReportWorkbook, sheet: Any, info: list[tuple[str, Any]], row: int) -> int:
    """Write the label/value pairs from ``row`` down; return the row after the last."""
    for label, value in info:
        book.write_text(sheet, row, 0, label, bold=True)
        if isinstance(value, int):
            book.write_value(sheet, row, 1, value, "int", align="left")
        elif isinstance(value, float):
            # the currency is in the label: "Monthly saving (EUR)"
            currency = label[label.find("(") + 1 : -1] if "(" in label else ""
            book.write_value(
                sheet,
                row,
                1,
                value,
                "currency",
                number_format=_money_format(currency),
                align="left",
            )
        else:
            book.write_text(sheet, row, 1, value)
        row += 1
    return row


def _write_sku_table(book: ReportWorkbook, sheet: Any, t: TrueUp, top: int) -> int:
    """Write the per-SKU header at ``top`` and one row per SKU; return the last row written."""
    for col, header in enumerate(SUMMARY_HEADERS):
        book.write_text(sheet, top, col, header, **HEADER_STYLE)
    row = top
    for figures in t.skus:
        row += 1
        s = figures.seats
        price = figures.price
        money: list[Any] = (
            [price.amount, figures.monthly_cost, figures.free_cost] if price else [NO_PRICE] * 3
        )
        values = [
            figures.product,
            s.part_number,
            s.capability_status,
            s.enabled,
            s.warning,
            s.suspended,
            s.consumed,
            s.free,
            figures.utilization,
            *money,
        ]
        for col, (value, kind) in enumerate(zip(values, SUMMARY_KINDS, strict=True)):
            if kind == "currency" and price is not None:
                book.write_value(
                    sheet, row, col, value, kind, number_format=_money_format(price.currency)
                )
            elif value == NO_PRICE:
                book.write_text(sheet, row, col, value, **WARN_STYLE)
            else:
                book.write_value(sheet, row, col, value, kind)
    return row


def _write_totals(book: ReportWorkbook, sheet: Any, t: TrueUp, row: int) -> int:
    """Write the seat totals at ``row``, then one cost total per currency; return the last row."""
    book.write_text(sheet, row, 0, "Total seats", **TOTAL_STYLE)
    for col in range(1, len(SUMMARY_HEADERS)):
        if SUMMARY_KINDS[col] == "int":
            total = sum(int(_seat_value(f, SUMMARY_HEADERS[col])) for f in t.skus)
            book.write_value(sheet, row, col, total, "int", **TOTAL_STYLE)
        else:
            sheet.write_blank(row, col, None, book.fmt(**TOTAL_STYLE))
    for currency, (cost, free_cost) in sorted(t.totals().items()):
        row += 1
        book.write_text(sheet, row, 0, f"Total {currency}".strip(), bold=True)
        fmt = _money_format(currency)
        book.write_value(sheet, row, 10, round(cost, 2), "currency", number_format=fmt, bold=True)
        book.write_value(
            sheet, row, 11, round(free_cost, 2), "currency", number_format=fmt, bold=True
        )
    return row


def _write_notes(book: ReportWorkbook, sheet: Any, t: TrueUp, row: int) -> int:
    """Write the Notes heading at ``row`` and the notes below it; return the last row."""
    book.write_text(sheet, row, 0, "Notes", bold=True)
    notes = t.notes or ["None: every figure is complete."]
    if t.currencies:
        notes = [*notes, *COST_NOTES]
    if t.previous is None:
        notes = [*notes, "Run with --previous <last month's workbook> to see what changed."]
    for note in notes:
        row += 1
        book.write_text(sheet, row, 0, note)
    return row


def _lay_out_summary(sheet: Any, t: TrueUp, top: int, last_data: int) -> None:
    """Column widths (the first fits the longest product name), frozen header, filter."""
    for col, width in enumerate(SUMMARY_WIDTHS):
        sheet.set_column(col, col, width)
    sheet.set_column(0, 0, max(34, min(60, max((len(f.product) for f in t.skus), default=0) + 2)))
    sheet.set_row(top, 30)  # room for the headers that wrap onto two lines
    sheet.freeze_panes(top + 1, 0)
    sheet.autofilter(top, 0, max(last_data, top + 1), len(SUMMARY_HEADERS) - 1)


def _seats_chart(book: ReportWorkbook, t: TrueUp, top: int, last_data: int) -> Any:
    """A stacked bar per SKU of assigned against free seats, from the table's columns."""
    chart = book.book.add_chart({"type": "bar", "subtype": "stacked"})
    for col, colour in ((6, "#4472C4"), (7, "#A9D18E")):
        chart.add_series(
            {
                "name": ["Summary", top, col],
                "categories": ["Summary", top + 1, 0, last_data, 0],
                "values": ["Summary", top + 1, col, last_data, col],
                "fill": {"color": colour},
                "gap": 60,
            }
        )
    chart.set_title({"name": "Seats per product: assigned and free"})
    chart.set_legend({"position": "bottom"})
    chart.set_y_axis({"reverse": True})
    chart.set_size({"width": 640, "height": max(300, 22 * len(t.skus) + 110)})
    return chart


def _seat_value(figures: Any, header: str) -> int:
    s = figures.seats
    return {
        "Purchased": s.enabled,
        "Warning": s.warning,
        "Suspended": s.suspended,
        "Assigned": s.consumed,
        "Free": s.free,
    }[header]


# ------------------------------------------------------------------------------ tables


def _sign_in_cells(t: TrueUp, user: Any) -> tuple[Any, Any]:
    """Last sign-in and days since: a time, ``never``, ``unknown`` (Graph returned no sign-in
    data for the user, see :mod:`batch.jobs.trueup.snapshot`) or ``not available`` (no
    permission)."""
    if not t.snapshot.sign_in_available:
        return "not available", None
    if getattr(user, "sign_in_unknown", False):
        return "unknown", None
    if user.last_sign_in is None:
        return "never", None
    return _local(user.last_sign_in), (t.snapshot.read_at - user.last_sign_in).days


def _users(book: ReportWorkbook, t: TrueUp) -> None:
    currencies = t.currencies
    headers = [
        "UPN",
        "Name",
        "Department",
        "Country",
        "Enabled",
        "Created",
        "Last sign-in",
        "Days since sign-in",
        "Licenses",
        "Direct",
        "Via groups",
        *_cost_headers(currencies, "Monthly cost"),
        "Licenses without price",
    ]
    kinds = {
        "Created": "date",
        "Last sign-in": "datetime",
        "Days since sign-in": "int",
        **{h: "currency" for h in _cost_headers(currencies, "Monthly cost")},
    }

    def rows() -> Any:
        for user in t.snapshot.users:
            last, days = _sign_in_cells(t, user)
            direct = "; ".join(sorted(t.product(h.sku_id) for h in user.licenses if h.direct))
            inherited = "; ".join(
                sorted(
                    f"{t.product(h.sku_id)} ({', '.join(t.group_name(g) for g in h.groups)})"
                    for h in user.licenses
                    if h.groups
                )
            )
            cost, unpriced = t.user_cost(user)
            yield [
                user.upn,
                user.name,
                user.department,
                user.country,
                "Yes" if user.enabled else "No",
                _local(user.created),
                last,
                days,
                licenses_text(t, user),
                direct,
                inherited,
                *_cost_cells(currencies, cost, unpriced=bool(unpriced)),
                "; ".join(sorted(unpriced)),
            ]

    book.add_table("Users", headers, rows(), kinds=kinds, status_column=None)


def _reclaim(book: ReportWorkbook, t: TrueUp) -> None:
    currencies = t.currencies
    saving_headers = _cost_headers(currencies, "Monthly saving")
    headers = [
        "Category",
        "UPN",
        "Name",
        "Department",
        "Enabled",
        "Last sign-in",
        "Product",
        "Part number",
        "Assigned via",
        "Reason",
        "Action",
        *saving_headers,
    ]
    kinds = {"Last sign-in": "datetime", **{h: "currency" for h in saving_headers}}
    parts = {s.sku_id: s.part_number for s in t.snapshot.seats}

    def rows() -> Any:
        for item in t.reclaim:
            last, _ = _sign_in_cells(t, item.user)
            amounts: dict[str, float] = {}
            if item.price is not None:
                amounts[item.price.currency] = item.price.amount if item.saves_seat else 0.0
            yield [
                item.category,
                item.user.upn,
                item.user.name,
                item.user.department,
                "Yes" if item.user.enabled else "No",
                last,
                t.product(item.sku_id),
                parts.get(item.sku_id, item.sku_id),
                item.source,
                item.reason,
                item.action,
                *_cost_cells(currencies, amounts, unpriced=item.price is None),
            ]

    book.add_table("Reclaim", headers, rows(), kinds=kinds, status_column=None, max_width=70)


def _errors(book: ReportWorkbook, t: TrueUp) -> None:
    from batch.jobs.trueup.reckon import ERROR_EXPLANATIONS

    headers = [
        "UPN",
        "Name",
        "Group",
        "Product",
        "Part number",
        "Error",
        "State",
        "Explanation",
        "Last updated",
    ]
    parts = {s.sku_id: s.part_number for s in t.snapshot.seats}
    rows = [
        [
            e.upn,
            e.name,
            t.group_name(e.group_id) if e.group_id else "(direct assignment)",
            t.product(e.sku_id),
            parts.get(e.sku_id, e.sku_id),
            e.error,
            e.state,
            ERROR_EXPLANATIONS.get(e.error, ERROR_EXPLANATIONS["Other"]),
            _local(e.updated),
        ]
        for e in t.snapshot.errors
    ]
    book.add_table(
        "Errors",
        headers,
        rows,
        kinds={"Last updated": "datetime"},
        status_column=None,
        max_width=90,
    )


def _cost(book: ReportWorkbook, t: TrueUp) -> None:
    currencies = t.currencies
    cost_headers = _cost_headers(currencies, "Cost of assigned seats")
    headers = ["Name", "Licensed users", "Seats", "Seats without price", *cost_headers]
    sheet = book.book.add_worksheet("Cost")
    row = 0
    first_header = None
    for title, groups in (
        ("By department", t.departments),
        ("By country (usage location)", t.countries),
    ):
        book.write_text(sheet, row, 0, title, bold=True, font_size=12)
        row += 1
        if first_header is None:
            first_header = row
        for col, header in enumerate(headers):
            book.write_text(sheet, row, col, header, **HEADER_STYLE)
        totals: dict[str, float] = {}
        for group in groups:
            row += 1
            book.write_text(sheet, row, 0, group.label)
            for col, value in enumerate((group.users, group.seats, group.unpriced_seats), start=1):
                book.write_value(sheet, row, col, value, "int")
            # A department with seats in one currency costs 0 in the others, not "nothing".
            amounts = {c: group.cost.get(c, 0.0) for c in currencies} if group.cost else {}
            cells = _cost_cells(currencies, amounts, unpriced=group.unpriced_seats > 0)
            for offset, value in enumerate(cells):
                _write_money(
                    book, sheet, row, 4 + offset, value, currencies[offset] if currencies else ""
                )
            for currency, amount in group.cost.items():
                totals[currency] = totals.get(currency, 0.0) + amount
        row += 1
        book.write_text(sheet, row, 0, "Total", **TOTAL_STYLE)
        for col, value in enumerate(
            (
                sum(g.users for g in groups),
                sum(g.seats for g in groups),
                sum(g.unpriced_seats for g in groups),
            ),
            start=1,
        ):
            book.write_value(sheet, row, col, value, "int", **TOTAL_STYLE)
        cells = _cost_cells(currencies, totals, unpriced=True)
        for offset, value in enumerate(cells):
            _write_money(
                book,
                sheet,
                row,
                4 + offset,
                value,
                currencies[offset] if currencies else "",
                **TOTAL_STYLE,
            )
        row += 3
    sheet.set_column(
        0,
        0,
        max(30, min(50, max((len(g.label) for g in t.departments + t.countries), default=0) + 2)),
    )
    sheet.set_column(1, 3, 18)
    sheet.set_column(4, 4 + max(len(cost_headers) - 1, 0), 20)
    sheet.freeze_panes(2, 0)
    sheet.autofilter(
        first_header or 1,
        0,
        first_header + max(len(t.departments), 1) if first_header else 1,
        len(headers) - 1,
    )


def _write_money(
    book: ReportWorkbook, sheet: Any, row: int, col: int, value: Any, currency: str, **style: Any
) -> None:
    if isinstance(value, (int, float)):
        book.write_value(
            sheet, row, col, value, "currency", number_format=_money_format(currency), **style
        )
    elif value == NO_PRICE:
        book.write_text(sheet, row, col, value, **{**WARN_STYLE, **style})
    elif style:
        sheet.write_blank(row, col, None, book.fmt(**style))


def _changes(book: ReportWorkbook, t: TrueUp) -> None:
    headers = ["Change", "SKU or UPN", "Name", "Measure", "Before", "After", "Difference"]
    since = t.previous.path.name if t.previous else "the previous workbook"
    rows = t.changes or [("No change", "", f"Nothing changed since {since}.", "", None, None, None)]
    book.add_table(
        "Changes",
        headers,
        rows,
        kinds={"Before": "int", "After": "int", "Difference": "int"},
        status_column=None,
        max_width=80,
    )


# ------------------------------------------------------------------------------ running


def run_trueup(
    client: Any,
    *,
    prices_path: Path | None = None,
    previous_path: Path | None = None,
    inactive_days: int = 90,
    output: Path | None = None,
    tenant_label: str = "",
    progress: Any = None,
) -> tuple[TrueUp, Path]:
    """Read the tenant, compute the true-up and write its workbook; returns both."""
    from batch.intake.catalog import Catalog
    from batch.intake.sources import paused_gc
    from batch.jobs.trueup.previous import read_previous
    from batch.jobs.trueup.prices import PriceList, read_prices
    from batch.jobs.trueup.reckon import compute_trueup, trueup_output_path
    from batch.jobs.trueup.snapshot import read_tenant

    # Files first: a bad price list or workbook fails before any Graph read.
    previous = read_previous(previous_path) if previous_path else None
    if output is not None and output.exists():
        from batch.errors import ReportError

        raise ReportError(f"{output} already exists; choose another --output name.")
    # Reading, reckoning and writing build a few million small acyclic objects that the
    # cyclic garbage collector would scan again and again: it pauses until the end.
    with paused_gc():
        snapshot = read_tenant(client, tenant_label=tenant_label, progress=progress)
        catalog = Catalog.load(snapshot.skus)
        prices = read_prices(prices_path, catalog) if prices_path else PriceList()
        trueup = compute_trueup(
            snapshot, catalog, prices, inactive_days=inactive_days, previous=previous
        )
        if progress:
            progress(f"writing the workbook ({len(snapshot.users):,} users)")
        path = write_trueup_workbook(trueup, output or trueup_output_path(snapshot.tenant_key))
    return trueup, path
