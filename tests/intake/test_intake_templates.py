"""The committed generic templates are current and read back as valid input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl

from batch.intake.catalog import COMMON_PART_NUMBERS, Catalog, subscribed_skus_from_catalog
from batch.intake.sources import read_sheet
from batch.intake.validate import validate_sheet
from batch.reports.template import TEMPLATE_COLUMNS, write_generic_templates

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_committed_csv_template_is_current(tmp_path: Path) -> None:
    write_generic_templates(tmp_path)
    assert (tmp_path / "onboarding-template.csv").read_bytes() == (
        TEMPLATES / "onboarding-template.csv"
    ).read_bytes()
    fresh = openpyxl.load_workbook(tmp_path / "onboarding-template.xlsx")
    committed = openpyxl.load_workbook(TEMPLATES / "onboarding-template.xlsx")
    for name in fresh.sheetnames:
        assert list(fresh[name].values) == list(committed[name].values)


def test_committed_templates_validate_cleanly() -> None:
    catalog = Catalog.load(subscribed_skus_from_catalog(COMMON_PART_NUMBERS))
    for name in ("onboarding-template.xlsx", "onboarding-template.csv"):
        sheet = read_sheet(TEMPLATES / name)
        assert list(sheet.headers) == [h for h, _ in TEMPLATE_COLUMNS]
        result = validate_sheet(sheet, catalog, as_of=dt.date(2025, 1, 1))
        assert result.counts() == {"Ready": 3}, result.findings
        assert sheet.rows[0].values[-1] == "000123"
