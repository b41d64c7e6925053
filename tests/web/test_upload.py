"""Uploads: only sheets, capped in size, kept under generated names, never served back."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.web.webkit import SAMPLE_SHEET, Server, sign_in


def _check(page: Any, path: Path) -> None:
    page.get_by_label("Sheet").set_input_files(path)
    page.get_by_role("button", name="Check sheet").click()


def test_what_is_not_a_sheet_is_refused_with_a_reason(
    server: Server, page: Any, tmp_path: Path
) -> None:
    sign_in(page, server.url, "hr.coordinator")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    _check(page, notes)
    expect(page.get_by_role("alert")).to_contain_text("'notes.txt' is not a CSV or XLSX sheet")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    _check(page, broken)
    expect(page.get_by_role("alert")).to_contain_text("broken.xlsx: is not an Excel workbook")
    expect(page.get_by_role("heading", name="Plan")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    big = page.request.post(
        server.base + "/check",
        multipart={
            "csrf": csrf,
            "sheet": {"name": "big.csv", "mimeType": "text/csv", "buffer": b"x" * (11 << 20)},
        },
    )
    assert big.status == 413


def test_an_upload_is_kept_private_under_a_generated_name(server: Server, page: Any) -> None:
    sign_in(page, server.url, "hr.coordinator")
    _check(page, SAMPLE_SHEET)
    expect(page.get_by_role("heading", name="Plan")).to_be_visible()
    kept = list((server.home / "web" / "uploads").iterdir())
    assert len(kept) == 1 and "onboarding" not in kept[0].name
    assert stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((server.home / "web").stat().st_mode) == 0o700
    assert page.request.get(server.base + "/uploads/" + kept[0].name).status == 404


def test_the_upload_page_offers_the_tenant_s_template(
    server: Server, page: Any, tmp_path: Path
) -> None:
    import openpyxl

    sign_in(page, server.url, "hr.coordinator")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download a template").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "m365batch-template.xlsx"
    book = openpyxl.load_workbook(saved)
    try:
        assert "UserPrincipalName" in [c.value for c in next(book.worksheets[0].iter_rows())]
    finally:
        book.close()
