"""The SKU catalog: Microsoft's reference normalised, merged with the tenant, names resolved."""

from __future__ import annotations

# ruff: noqa: E501  (XML and CSV fixture text is clearer unwrapped)
import importlib.util
import json
from pathlib import Path

import pytest

from batch.intake.catalog import COMMON_PART_NUMBERS, Catalog, normalise_guid, product_name
from tests.intake.intakekit import tenant_skus

ROOT = Path(__file__).resolve().parents[2]
SPE_E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"


def _load_builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "build_sku_catalog", ROOT / "scripts" / "build_sku_catalog.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_reference_is_normalised() -> None:
    document = json.loads(
        (ROOT / "batch" / "data" / "sku-catalog.json").read_text(encoding="utf-8")
    )
    ids = [s["id"] for s in document["skus"]]
    assert len(ids) == len(set(ids)) > 600
    for sku in document["skus"]:
        assert sku["id"] == sku["id"].strip().lower() and normalise_guid(sku["id"]) == sku["id"]
        assert sku["partNumber"] == sku["partNumber"].strip() and "\u00a0" not in sku["partNumber"]
        assert all(name == " ".join(name.split()) for name in sku["names"])
    # quirks of Microsoft's file: a GUID with a trailing NBSP, part numbers with NBSP/tab
    assert "420c7602-7f70-4895-9394-d3d679ea36fb" in ids
    parts = {s["partNumber"] for s in document["skus"]}
    assert {"MCOCAP_FACULTY", "RIGHTSMANAGEMENT_CE_GOV", "AAD_PREMIUM_USGOV_GCCHIGH"} <= parts
    assert set(COMMON_PART_NUMBERS) <= parts


def test_builder_strips_dedupes_and_keys_on_guid(tmp_path: Path) -> None:
    source = tmp_path / "ms.csv"
    header = "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,Service_Plans_Included_Friendly_Names"
    rows = [
        "Plan A,PART_A\u00a0,AAAAAAAA-0000-4000-8000-000000000001\u00a0,P1,11111111-0000-4000-8000-000000000001,Plan one",
        "Plan A,PART_A\u00a0,AAAAAAAA-0000-4000-8000-000000000001\u00a0,P1,11111111-0000-4000-8000-000000000001,Plan one",
        "Plan A renamed,PART_A,aaaaaaaa-0000-4000-8000-000000000001,P2,11111111-0000-4000-8000-000000000002,Plan\ttwo",
        "Same Name,PART_B\t,bbbbbbbb-0000-4000-8000-000000000002,P1,11111111-0000-4000-8000-000000000001,Plan one",
        "Same Name,PART_B2 ,cccccccc-0000-4000-8000-000000000003,P1,11111111-0000-4000-8000-000000000001,Plan one",
    ]
    # Microsoft's own download format: BOM and CRLF
    source.write_bytes(("\ufeff" + "\r\n".join([header, *rows]) + "\r\n").encode("utf-8"))
    document = _load_builder().build(source)
    assert document["rows"] == 5 and document["distinctRows"] == 4
    skus = {s["id"]: s for s in document["skus"]}
    first = skus["aaaaaaaa-0000-4000-8000-000000000001"]
    assert first["partNumber"] == "PART_A"
    assert first["names"] == ["Plan A", "Plan A renamed"]
    assert len(first["plans"]) == 2
    assert {s["partNumber"] for s in skus.values()} == {"PART_A", "PART_B", "PART_B2"}
    assert document["plans"]["11111111-0000-4000-8000-000000000002"] == ["P2", "Plan two"]


@pytest.mark.parametrize(
    "written",
    [
        "SPE_E3",
        "spe_e3",
        " SPE_E3 ",
        "Microsoft 365 E3",
        "microsoft  365 e3",
        SPE_E3,
        SPE_E3.upper(),
        "{" + SPE_E3.upper() + "}",
        "contoso:SPE_E3",
        "CONTOSO:spe_e3",
    ],
)
def test_license_spellings_resolve(catalog: Catalog, written: str) -> None:
    found = catalog.find_skus(written)
    assert [s.id for s in found] == [SPE_E3]
    assert found[0].in_tenant and found[0].name == "Microsoft 365 E3"


def test_unknown_license_suggests_the_closest(catalog: Catalog) -> None:
    assert catalog.find_skus("SPE_E33") == []
    assert catalog.suggest("SPE_E33") == "SPE_E3"
    assert catalog.suggest("Microsoft 365 E 5") == "Microsoft 365 E5"
    assert catalog.suggest("zzzz") is None


def test_tenant_wins_and_new_skus_are_known(catalog: Catalog) -> None:
    mcopstn5 = catalog.find_skus("MCOPSTN5")
    assert len(mcopstn5) == 2 and mcopstn5[0].in_tenant and not mcopstn5[1].in_tenant
    new = catalog.find_skus("new_sku_2027")
    assert len(new) == 1 and new[0].name == "NEW_SKU_2027" and new[0].free_units == 2
    assert new[0].find_plan("new_plan") is not None
    assert catalog.get("{11111111-2222-4333-8444-555555555555}") is new[0]
    company = catalog.find_skus("MCOPSTNC")[0]
    assert company.applies_to == "Company"


def test_service_plans_by_name_or_guid(catalog: Catalog) -> None:
    sku = catalog.find_skus("SPE_E3")[0]
    sway = sku.find_plan("sway")
    assert sway is not None and sway.name == "SWAY"
    assert sku.find_plan(sway.id.upper()) == sway
    assert sku.find_plan("NOT_A_PLAN") is None


def test_friendly_names(catalog: Catalog) -> None:
    assert catalog.friendly_name(SPE_E3.upper()) == "Microsoft 365 E3"
    assert catalog.friendly_name("11111111-2222-4333-8444-555555555555") == "NEW_SKU_2027"
    assert product_name(SPE_E3) == "Microsoft 365 E3"
    assert product_name("11111111-2222-4333-8444-555555555555") is None


def test_tenant_sku_fields_come_from_graph() -> None:
    items = tenant_skus()
    items[0]["consumedUnits"] = 20
    items[0]["prepaidUnits"] = {"enabled": 25, "warning": 3, "suspended": 1}
    catalog = Catalog.load(items)
    sku = catalog.find_skus("SPE_E3")[0]
    assert (sku.enabled_units, sku.warning_units, sku.suspended_units, sku.consumed_units) == (
        25,
        3,
        1,
        20,
    )
    assert sku.free_units == 5
    assert [s.part_number for s in catalog.tenant_skus][:3] == ["EMS", "ENTERPRISEPACK", "MCOPSTN5"]
