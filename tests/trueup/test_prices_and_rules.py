"""Price files and the overlap rule, without a tenant."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from batch.errors import InputError
from batch.intake.catalog import Catalog, subscribed_skus_from_catalog
from batch.jobs.trueup.previous import Previous
from batch.jobs.trueup.prices import PriceList, parse_price, read_prices
from batch.jobs.trueup.reckon import compute_trueup, overlap_table, plan_coverage
from batch.jobs.trueup.snapshot import LicensedUser, Snapshot
from batch.reports.workbook import ReportWorkbook
from batch.run.tenant import HeldLicense, seats_from_skus

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", (12.5, "")),
        ("12,50", (12.5, "")),
        ("1,234.56", (1234.56, "")),
        ("1.234,56", (1234.56, "")),
        ("1,234", (1234.0, "")),
        ("€ 7,5", (7.5, "EUR")),
        ("$36", (36.0, "USD")),
        ("22.00 GBP", (22.0, "GBP")),
        ("36", (36.0, "")),
        ("abc", None),
        ("-5", None),
        ("", None),
    ],
)
def test_parse_price(text: str, expected: tuple[float, str] | None) -> None:
    assert parse_price(text) == expected


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.load(
        subscribed_skus_from_catalog(
            ["SPE_E3", "SPE_E5", "ENTERPRISEPACK", "EMS", "FLOW_FREE"], enabled=10, consumed=4
        )
    )


def test_read_prices_resolves_any_form_and_warns(tmp_path: Path, catalog: Catalog) -> None:
    sku = {s.part_number: s.id for s in catalog.tenant_skus}
    path = tmp_path / "p.csv"
    path.write_text(
        "SKU,Price,Currency\n"
        "Microsoft 365 E3,36.00,eur\n"
        f"{sku['SPE_E5'].upper()},57.00,EUR\n"
        "ENTERPRISEPACK,,\n"  # unfilled: no price, no warning
        "SPE_E3,99,EUR\n"  # priced twice: the first wins
        "NO_SUCH_SKU,1,EUR\n"
        "EMS,ten,USD\n",
        encoding="utf-8",
    )
    prices = read_prices(path, catalog)
    assert {k: (p.amount, p.currency) for k, p in prices.prices.items()} == {
        sku["SPE_E3"]: (36.0, "EUR"),
        sku["SPE_E5"]: (57.0, "EUR"),
    }
    text = "\n".join(prices.warnings)
    assert "p.csv row 5: SPE_E3 is priced again (first at row 2)" in text
    assert "p.csv row 6: 'NO_SUCH_SKU' is not a SKU the catalog knows" in text
    assert "p.csv row 7: 'ten' is not a price for EMS" in text
    assert len(prices.warnings) == 3


def test_price_templates_read_cleanly(catalog: Catalog) -> None:
    for name in ("prices-template.csv", "prices-template.xlsx"):
        prices = read_prices(TEMPLATES / name, catalog)
        assert prices.prices == {} and prices.warnings == [], name


def test_price_file_xlsx_and_missing_column(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "p.xlsx"
    book = ReportWorkbook(path)
    book.add_table(
        "Prices",
        ["Sku", "MonthlyPrice", "Currency"],
        [["SPE_E3", 36.5, "EUR"], ["EMS", "10,60", "USD"]],
        status_column=None,
    )
    book.save()
    prices = read_prices(path, catalog)
    assert sorted((p.amount, p.currency) for p in prices.prices.values()) == [
        (10.6, "USD"),
        (36.5, "EUR"),
    ]
    assert any("several currencies" in w for w in prices.warnings)
    bad = tmp_path / "bad.csv"
    bad.write_text("Sku,Notes\nSPE_E3,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="bad.csv.*no price column"):
        read_prices(bad, catalog)


def test_overlap_rule_on_microsoft_catalog(catalog: Catalog) -> None:
    sku = {s.part_number: s.id for s in catalog.tenant_skus}
    table = overlap_table(catalog, sku.values())
    # Microsoft 365 E3 beside E5, Office 365 E3 beside Microsoft 365 E3, EMS beside E3.
    assert (sku["SPE_E3"], sku["SPE_E5"]) in table
    assert (sku["ENTERPRISEPACK"], sku["SPE_E3"]) in table
    assert (sku["EMS"], sku["SPE_E3"]) in table
    # Never the other way round, and a free flow licence is not inside E3.
    assert (sku["SPE_E5"], sku["SPE_E3"]) not in table
    assert (sku["SPE_E3"], sku["ENTERPRISEPACK"]) not in table
    assert (sku["FLOW_FREE"], sku["SPE_E3"]) not in table
    share, missing = plan_coverage([("1", "FORMS_PLAN_E5")], [("2", "FORMS_PLAN_E3")])
    assert share == 0 and missing == ["FORMS_PLAN_E5"]


def test_reclaimable_seats_are_counted_once(catalog: Catalog) -> None:
    sku = {s.part_number: s.id for s in catalog.tenant_skus}
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    # Disabled AND holding E3 beside E5: E3 is listed twice but is one seat to reclaim.
    user = LicensedUser(
        "u1",
        "a@x.example",
        "A",
        "IT",
        "US",
        False,
        now - dt.timedelta(days=400),
        now - dt.timedelta(days=1),
        (
            HeldLicense(sku["SPE_E3"], frozenset(), True),
            HeldLicense(sku["SPE_E5"], frozenset(), True),
        ),
    )
    snapshot = Snapshot("T", "t", now, [], [], [user], {}, [], True)
    from batch.jobs.trueup.prices import Price, PriceList

    prices = PriceList(
        {
            sku["SPE_E3"]: Price(sku["SPE_E3"], 36.0, "EUR", 2),
            sku["SPE_E5"]: Price(sku["SPE_E5"], 57.0, "EUR", 3),
        }
    )
    result = compute_trueup(snapshot, catalog, prices)
    categories = sorted((r.category, r.sku_id == sku["SPE_E3"]) for r in result.reclaim)
    assert categories == [
        ("Disabled account", False),
        ("Disabled account", True),
        ("Overlapping license", True),
    ]
    assert result.reclaimable() == (2, {"EUR": 93.0})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12.50EUR", (12.5, "EUR")), ("EUR12", (12.0, "EUR")), ("EUR€10", (10.0, "EUR"))],
)
def test_a_currency_code_next_to_the_amount_is_read(text: str, expected: tuple[float, str]) -> None:
    # Regression: the code was only found between word boundaries, so "12.50EUR" was no price.
    assert parse_price(text) == expected


def test_changes_compare_seats_and_licenses_with_the_previous_workbook(catalog: Catalog) -> None:
    skus = subscribed_skus_from_catalog(["SPE_E3", "SPE_E5"])
    seats = seats_from_skus(skus)
    e3 = next(s for s in seats if s.part_number == "SPE_E3")
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    user = LicensedUser(
        "u1", "a@x.example", "A", "IT", "US", True, None, now,
        (HeldLicense(e3.sku_id, frozenset(), True),),
    )  # fmt: skip
    snapshot = Snapshot("T", "t", now, skus, seats, [user], {}, [], True)
    previous = Previous(
        path=Path("before.xlsx"),
        users={"gone@x.example": ("gone@x.example", "Gone", "Office 365 E1")},
        seats={"SPE_E3": ("Microsoft 365 E3", e3.enabled + 5, e3.consumed), "OLD": ("Old", 3, 1)},
    )
    changes = compute_trueup(snapshot, catalog, PriceList(), previous=previous).changes
    assert changes is not None
    by_item = {(c[0], c[1], c[3]): c[4:] for c in changes}
    assert by_item[("Seats removed", "SPE_E3", "Purchased")] == (e3.enabled + 5, e3.enabled, -5)
    assert by_item[("SKU gone", "OLD", "Purchased")] == (3, 0, -3)
    assert by_item[("SKU gone", "OLD", "Assigned")] == (1, 0, -1)
    assert ("Seats removed", "SPE_E3", "Assigned") not in by_item
    assert by_item[("User removed", "gone@x.example", "Licenses")] == ("Office 365 E1", "", None)
    assert [c[0] for c in changes if c[1] == "a@x.example"] == ["User added"]
