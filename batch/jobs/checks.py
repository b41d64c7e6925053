"""Checks: the jobs that read the tenant's SKUs and write nothing to it.

skus: read the seats                     -> the SKU list
validate: read the sheet -> validate     -> the validation workbook
template: read the SKUs                  -> an input template with dropdowns
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from batch.graph.client import GraphClient
from batch.intake.catalog import Catalog, product_name
from batch.intake.sheet import Sheet
from batch.intake.validate import ValidationResult, summary_lines, validate_sheet
from batch.reports.template import write_template
from batch.reports.validation import write_validation_workbook
from batch.reports.workbook import output_path
from batch.run.tenant import SkuSeats, read_seats

__all__ = ["SheetCheck", "SkuLine", "check_sheet", "read_skus", "write_tenant_template"]


@dataclass(frozen=True)
class SkuLine:
    """One of the tenant's SKUs: its seats and Microsoft's product name."""

    seats: SkuSeats
    product: str


@dataclass(frozen=True)
class SheetCheck:
    """A sheet validated against the tenant's SKUs, and the workbook that says so."""

    result: ValidationResult
    workbook: Path

    @property
    def summary_lines(self) -> list[str]:
        return summary_lines(self.result)


def read_skus(client: GraphClient) -> list[SkuLine]:
    """The tenant's SKUs with seats purchased, assigned and free."""
    return [SkuLine(s, product_name(s.sku_id) or "") for s in read_seats(client)]


def check_sheet(
    client: GraphClient,
    sheet: Sheet,
    *,
    as_of: dt.date | None = None,
    output: Path | None = None,
) -> SheetCheck:
    """Validate a sheet already read against the tenant's SKUs; write the workbook."""
    skus = list(client.get_all("/subscribedSkus"))
    result = validate_sheet(sheet, Catalog.load(skus), as_of=as_of)
    target = output or output_path("validate", input_path=sheet.path)
    return SheetCheck(result, write_validation_workbook(result, target))


def write_tenant_template(client: GraphClient, output: Path | None, *, as_csv: bool) -> Path:
    """An input template with the tenant's SKUs and usage locations as dropdowns."""
    skus = list(client.get_all("/subscribedSkus"))
    target = output or output_path("template", suffix=".csv" if as_csv else ".xlsx")
    return write_template(target, Catalog.load(skus), as_csv=as_csv)
