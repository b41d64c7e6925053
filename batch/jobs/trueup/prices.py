"""Prices: read a price list (CSV or XLSX) of SKU -> monthly price and currency, for the true-up.

A price file has one row per SKU. Columns are matched ignoring case, spaces and underscores:

- ``Sku`` (also ``SkuPartNumber``, ``SkuId``, ``Product``, ``License``): any form the catalog
  resolves: a part number (``SPE_E3``), a product name ("Microsoft 365 E3"), a skuId GUID;
- ``MonthlyPrice`` (also ``Price``, ``PricePerMonth``, ``UnitPrice``, ``Monthly``): the price
  of one seat per month. ``12.50``, ``12,50``, ``1,234.50``, ``1.234,50`` and ``€12.50`` are all
  understood; a blank price means "no price" (the template's unfilled rows), not 0;
- ``Currency`` (optional): an ISO code such as ``EUR``. When it is absent, a currency symbol
  in the price (``€``, ``$``, ``£``, ``¥``) is used; otherwise the price has no currency name.

Rows that cannot be used (unknown SKU, unreadable price, a SKU priced twice) become
warnings that name the file and the Excel row; they never stop the true-up. Prices in
different currencies are kept apart: nothing in the product ever adds two currencies.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import python_calamine

from batch.errors import InputError
from batch.intake.catalog import Catalog
from batch.intake.sheet import normalise_header

__all__ = ["Price", "PriceList", "parse_price", "read_prices", "read_rows"]

#: bounds for files read here (price lists and earlier true-up workbooks)
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_UNZIPPED_BYTES = 1024 * 1024 * 1024

SKU_HEADERS = (
    "sku",
    "skupartnumber",
    "partnumber",
    "skuid",
    "product",
    "productname",
    "license",
    "licence",
)
PRICE_HEADERS = (
    "monthlyprice",
    "price",
    "pricepermonth",
    "monthly",
    "unitprice",
    "monthlyunitprice",
    "cost",
    "monthlycost",
)
CURRENCY_HEADERS = ("currency", "currencycode", "ccy")
SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "₹": "INR", "kr": "SEK", "CHF": "CHF"}

_ISO_CODE = re.compile(r"(?<![A-Za-z])([A-Z]{3})(?![A-Za-z])")

MSG_NO_COLUMNS = "has no {what} column (expected one of: {names})."
HINT_COLUMNS = "Start from templates/prices-template.csv: columns Sku, MonthlyPrice, Currency."


@dataclass(frozen=True)
class Price:
    """The monthly price of one seat of a SKU."""

    sku_id: str
    amount: float
    currency: str  #: ISO code, or "" when the file named none
    row: int  #: Excel row in the price file


@dataclass
class PriceList:
    """Prices by skuId, with what could not be used as warnings."""

    prices: dict[str, Price] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None

    def get(self, sku_id: str) -> Price | None:
        """The price of a SKU (lower-case skuId), or None when there is none."""
        return self.prices.get(sku_id.lower())

    @property
    def currencies(self) -> list[str]:
        """The currencies used, sorted."""
        return sorted({p.currency for p in self.prices.values()})


def parse_price(text: str) -> tuple[float, str] | None:
    """(amount, currency from a symbol or code in the text) or None if it is not a price."""
    raw = text.strip().replace("\u00a0", " ").replace("'", "")
    if not raw:
        return None
    currency = ""
    for symbol, code in SYMBOLS.items():
        if symbol in raw:
            currency = code
            raw = raw.replace(symbol, "")
    # An ISO code before or after the amount, with or without a space ("12.50EUR").
    iso = _ISO_CODE.search(raw)
    if iso:
        currency = iso.group(1)
        raw = raw.replace(iso.group(1), "")
    raw = raw.replace(" ", "")
    if not re.fullmatch(r"\d[\d.,]*", raw):
        return None
    # The last separator followed by 1-2 digits is the decimal one; others group thousands.
    last = max(raw.rfind("."), raw.rfind(","))
    digits_after = len(raw) - last - 1
    # "12,5" and "1.234,56" have a decimal part; "1,234" (one separator, three digits) has none.
    if last != -1 and (digits_after in (1, 2) or (raw.count(raw[last]) == 1 and digits_after != 3)):
        whole, decimals = raw[:last], raw[last + 1 :]
    else:
        whole, decimals = raw, ""
    whole = whole.replace(".", "").replace(",", "")
    try:
        value = Decimal(f"{whole}.{decimals}" if decimals else whole)
    except InvalidOperation:
        return None
    return float(value), currency


def read_rows(path: Path | str, *, sheet: str | None = None) -> tuple[str | None, list[list[str]]]:
    """(sheet name, rows of text) of a CSV or of an XLSX sheet (default: the first one).

    ``batch.intake.sources.read_sheet`` insists on a user column, which price lists and true-up
    workbooks do not have, so these small tables are read here: XLSX through calamine
    (formulas never evaluated; sizes checked before opening), CSV as UTF-8 (BOM or not),
    UTF-16 with BOM or Windows-1252, comma, semicolon or tab separated.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
    except FileNotFoundError as exc:
        raise InputError(
            "file not found.", path=path, hint="Check the path and try again."
        ) from exc
    except OSError as exc:
        raise InputError(f"cannot be opened: {exc.strerror}.", path=path) from exc
    if size > MAX_FILE_BYTES:
        raise InputError(
            f"is {size:,} bytes, too large for a price list or a true-up workbook.", path=path
        )
    if head.startswith(b"PK\x03\x04"):
        return _xlsx_rows(path, sheet)
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        raise InputError(
            "is not an .xlsx workbook.",
            path=path,
            hint="Save it from Excel as .xlsx (Excel Workbook) or CSV UTF-8.",
        )
    return None, _csv_rows(path)


def _xlsx_rows(path: Path, sheet: str | None) -> tuple[str, list[list[str]]]:
    try:
        with zipfile.ZipFile(path) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise InputError("is a damaged workbook.", path=path) from exc
    if unzipped > MAX_UNZIPPED_BYTES:
        raise InputError("unpacks to more than 1 GiB; refusing to read it.", path=path)
    try:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        with book:
            names = list(book.sheet_names)
            name = sheet if sheet is not None else (names[0] if names else None)
            if name not in names:
                raise InputError(
                    f"has no sheet named '{sheet}'.",
                    path=path,
                    hint=f"Its sheets are: {', '.join(names)}.",
                )
            values = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except (python_calamine.CalamineError, ValueError, OSError) as exc:
        raise InputError(f"cannot be read as a workbook ({exc}).", path=path) from exc
    return name, [[_cell_text(cell) for cell in row] for row in values]


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_rows(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    first = text.split("\n", 1)[0]
    delimiter = max((";", "\t", ","), key=first.count) if first else ","
    return [row for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def _find_column(headers: Iterable[str], names: tuple[str, ...]) -> int | None:
    normalised = [normalise_header(h) for h in headers]
    for name in names:
        if name in normalised:
            return normalised.index(name)
    return None


def read_prices(path: Path | str, catalog: Catalog) -> PriceList:
    """Read a price file; raise InputError only when it cannot be read or lacks its columns."""
    path = Path(path)
    sheet_name, rows = read_rows(path)
    numbered = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not numbered:
        raise InputError("is empty.", path=path, sheet=sheet_name, hint=HINT_COLUMNS)
    header_row, headers = numbered[0]
    sku_col = _find_column(headers, SKU_HEADERS)
    price_col = _find_column(headers, PRICE_HEADERS)
    currency_col = _find_column(headers, CURRENCY_HEADERS)
    for col, what, names in ((sku_col, "SKU", SKU_HEADERS), (price_col, "price", PRICE_HEADERS)):
        if col is None:
            raise InputError(
                MSG_NO_COLUMNS.format(what=what, names=", ".join(names)),
                path=path,
                sheet=sheet_name,
                row=header_row,
                hint=HINT_COLUMNS,
            )
    assert sku_col is not None and price_col is not None
    result = PriceList(source=path)
    where = path.name
    for number, cells in numbered[1:]:
        cells = cells + [""] * (len(headers) - len(cells))
        sku_text = cells[sku_col].strip()
        price_text = cells[price_col].strip()
        if not sku_text and not price_text:
            continue
        if not price_text:
            continue  # an unfilled template row: the SKU simply has no price
        if not sku_text:
            result.warnings.append(f"{where} row {number}: a price without a SKU; ignored.")
            continue
        parsed = parse_price(price_text)
        if parsed is None:
            result.warnings.append(
                f"{where} row {number}: '{price_text}' is not a price for {sku_text}; "
                "that SKU has no price."
            )
            continue
        amount, symbol_currency = parsed
        currency = cells[currency_col].strip().upper() if currency_col is not None else ""
        currency = currency or symbol_currency
        matches = catalog.find_skus(sku_text)
        in_tenant = [s for s in matches if s.in_tenant]
        if not matches:
            hint = catalog.suggest(sku_text)
            result.warnings.append(
                f"{where} row {number}: '{sku_text}' is not a SKU the catalog knows"
                + (f" (did you mean {hint}?)" if hint else "")
                + "; its price is ignored."
            )
            continue
        if len(in_tenant) > 1 or (not in_tenant and len(matches) > 1):
            meanings = ", ".join(s.part_number for s in (in_tenant or matches))
            result.warnings.append(
                f"{where} row {number}: '{sku_text}' could mean {meanings}; "
                "write the part number instead. Its price is ignored."
            )
            continue
        sku = (in_tenant or matches)[0]
        if sku.id in result.prices:
            first = result.prices[sku.id]
            result.warnings.append(
                f"{where} row {number}: {sku.part_number} is priced again "
                f"(first at row {first.row}); the first price is kept."
            )
            continue
        result.prices[sku.id] = Price(sku.id, amount, currency, number)
    if len(result.currencies) > 1:
        result.warnings.append(
            f"{where}: prices are in several currencies "
            f"({', '.join(c or 'none' for c in result.currencies)}); "
            "costs are totalled per currency, never added together."
        )
    return result
