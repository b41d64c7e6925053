"""Migration statuses, plan translation, same-SKU reconciliation, export round trip, clone."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from batch.intake.sources import read_sheet
from batch.jobs.migrate.mapping import MapRule
from batch.jobs.migrate.model import translate_plans
from tests.migrate.seedkit import SKU_ID, SKUS, cases_tenant, plan_id
from tests.run.runkit import write_csv


def _sheet(path: Path, name: str) -> dict[str, dict[str, object]]:
    book = openpyxl.load_workbook(path, read_only=True)
    rows = list(book[name].iter_rows(values_only=True))
    book.close()
    return {str(r[0]): dict(zip(rows[0], r, strict=False)) for r in rows[1:]}


def _count(path: Path, name: str) -> int:
    book = openpyxl.load_workbook(path, read_only=True)
    count = sum(1 for _ in book[name].iter_rows()) - 1
    book.close()
    return count


def _plans(part: str) -> dict[str, str]:
    return {p["servicePlanId"]: p["servicePlanName"] for p in SKUS[part]["servicePlans"]}


def test_translate_plans_by_name_lists_untranslated_and_newly_enabled_plans() -> None:
    rule = MapRule(2, "from", "SPE_E3", "to", "ENTERPRISEPACK")
    e3, o365 = _plans("SPE_E3"), _plans("ENTERPRISEPACK")
    disabled = {plan_id("SPE_E3", "SWAY"), plan_id("SPE_E3", "INTUNE_A")}
    result, kept, untranslated, newly = translate_plans(rule, e3, o365, disabled)
    assert result == {plan_id("ENTERPRISEPACK", "SWAY")}
    assert kept == ("SWAY",) and untranslated == ("INTUNE_A",) and newly == ()

    up = MapRule(
        2,
        "from",
        "ENTERPRISEPACK",
        "to",
        "SPE_E3",
        disable_plans=frozenset({plan_id("SPE_E3", "MDE_LITE")}),
    )
    result, _, _, newly = translate_plans(up, o365, e3, {plan_id("ENTERPRISEPACK", "SWAY")})
    assert result == {plan_id("SPE_E3", "SWAY"), plan_id("SPE_E3", "MDE_LITE")}
    assert "INTUNE_A" in newly and "MDE_LITE" not in newly and "SWAY" not in newly
    closed = MapRule(2, "from", "ENTERPRISEPACK", "to", "SPE_E3", disable_new=True)
    result, _, _, newly = translate_plans(closed, o365, e3, set())
    assert (
        newly == ()
        and plan_id("SPE_E3", "INTUNE_A") in result
        and plan_id("SPE_E3", "SWAY") not in result
    )


def test_each_kind_of_user_and_map_row_gets_a_clear_status(seeded, tmp_path: Path) -> None:
    tenant = seeded(cases_tenant())
    mapping = write_csv(
        tmp_path / "map.csv",
        ["FromSku", "ToSku", "KeepDisabledPlans"],
        [
            ["ENTERPRISEPACK", "Microsoft 365 E3", "yes"],
            ["NOT_A_SKU", "SPE_E3", ""],
            ["SPE_E5", "SPE_E5", ""],
        ],
    )
    users = write_csv(
        tmp_path / "users.csv",
        ["UserPrincipalName"],
        [
            [u]
            for u in (
                "ann.direct@contoso.example",
                "cat.both@contoso.example",
                "dan.group@contoso.example",
                "fay.disabled@contoso.example",
                "gus.nolicense@contoso.example",
                "ghost@contoso.example",
            )
        ],
    )
    report = tmp_path / "report.xlsx"
    done = tenant.cli(
        "migrate", "--map", str(mapping), "--users", str(users), "--yes", "--output", str(report)
    )
    assert done.returncode == 3, done.stdout + done.stderr  # the unknown SKU and the missing user

    rows = _sheet(report, "Rows")
    assert set(rows) == {
        "ann.direct@contoso.example",
        "cat.both@contoso.example",
        "dan.group@contoso.example",
        "fay.disabled@contoso.example",
        "gus.nolicense@contoso.example",
        "ghost@contoso.example",
    }
    ann = rows["ann.direct@contoso.example"]
    assert (
        ann["Status"] == "Applied"
        and ann["Verified"] == "Yes"
        and ann["KeptDisabledPlans"] == "SWAY; YAMMER_ENTERPRISE"
    )
    assert "INTUNE_A" in str(ann["NewlyEnabledPlans"])
    assert tenant.licenses("ann.direct@contoso.example") == {
        SKU_ID["SPE_E3"]: frozenset(
            {plan_id("SPE_E3", "SWAY"), plan_id("SPE_E3", "YAMMER_ENTERPRISE")}
        )
    }
    cat = rows["cat.both@contoso.example"]
    assert cat["Status"] == "Applied" and not cat["Added"]
    assert cat["Removed"] == "Office 365 E3 (ENTERPRISEPACK)"
    assert "INTUNE_A" in str(cat["Detail"]) and "kept" in str(cat["Detail"])
    assert tenant.licenses("cat.both@contoso.example") == {
        SKU_ID["SPE_E3"]: frozenset({plan_id("SPE_E3", "INTUNE_A")})
    }
    dan = rows["dan.group@contoso.example"]
    assert dan["Status"] == "Skipped" and dan["ErrorCode"] == "InheritedFromGroup"
    assert "Licensing - Office 365 E3" in str(dan["Detail"])
    assert rows["fay.disabled@contoso.example"]["Status"] == "Applied"  # disabled accounts move too
    assert rows["gus.nolicense@contoso.example"]["Status"] == "Skipped"
    assert rows["ghost@contoso.example"]["Status"] == "Failed"
    assert rows["ghost@contoso.example"]["ErrorCode"] == "UserNotFound"
    assert "bob.direct@contoso.example" not in rows  # not in --users: left alone
    assert SKU_ID["ENTERPRISEPACK"] in tenant.licenses("bob.direct@contoso.example")

    maps = {str(r["FromSku"]): r for r in _sheet(report, "Map").values()}
    assert maps["NOT_A_SKU"]["Status"] == "Invalid" and "not a known SKU" in str(
        maps["NOT_A_SKU"]["Detail"]
    )
    assert maps["SPE_E5"]["Status"] == "NoChange" and "SHORT by 1" in str(maps["SPE_E5"]["Detail"])
    reconciliation = _sheet(report, "Reconciliation")["Microsoft 365 E5 (SPE_E5)"]
    assert (reconciliation["Warning"], reconciliation["Assigned"], reconciliation["Shortfall"]) == (
        3,
        1,
        1,
    )
    groups = _sheet(report, "Groups")
    assert groups["Licensing - Office 365 E3"]["Members"] == 2
    assert _count(report, "Waves") == 1 and _count(report, "Changes") == 3

    migration_id = next(
        line.split()[1] for line in done.stdout.splitlines() if line.startswith("Migration ")
    )
    undone = tenant.cli("undo", migration_id, "--yes")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert tenant.licenses("ann.direct@contoso.example") == {
        SKU_ID["ENTERPRISEPACK"]: frozenset(
            {plan_id("ENTERPRISEPACK", "SWAY"), plan_id("ENTERPRISEPACK", "YAMMER_ENTERPRISE")}
        )
    }
    assert set(tenant.licenses("cat.both@contoso.example")) == {
        SKU_ID["ENTERPRISEPACK"],
        SKU_ID["SPE_E3"],
    }
    assert set(tenant.licenses("fay.disabled@contoso.example")) == {SKU_ID["ENTERPRISEPACK"]}


def test_no_waves_stops_before_any_write_and_says_how_many_seats_are_missing(
    seeded, tmp_path: Path
) -> None:
    seed = cases_tenant()
    seed["skus"][1]["prepaidUnits"]["enabled"] = (
        2  # SPE_E3: one held by cat, one free; three users to move
    )
    tenant = seeded(seed)
    mapping = write_csv(tmp_path / "map.csv", ["FromSku", "ToSku"], [["ENTERPRISEPACK", "SPE_E3"]])
    writes = dict(tenant.sim.store.applied_writes())
    done = tenant.cli(
        "migrate",
        "--map",
        str(mapping),
        "--no-waves",
        "--yes",
        "--output",
        str(tmp_path / "r.xlsx"),
    )
    assert done.returncode == 3
    assert "need 2 more seats of SPE_E3 (3 users wait; 1 free)" in done.stdout
    assert tenant.sim.store.applied_writes() == writes
    rows = _sheet(tmp_path / "r.xlsx", "Rows")
    assert rows["ann.direct@contoso.example"]["ErrorCode"] == "NoSeats"

    # without --no-waves it moves who fits (cat needs no seat) and says what the rest lack
    done = tenant.cli(
        "migrate", "--map", str(mapping), "--yes", "--output", str(tmp_path / "w.xlsx")
    )
    assert done.returncode == 3 and "need 2 more seats of SPE_E3" in done.stdout
    statuses = {u: r["Status"] for u, r in _sheet(tmp_path / "w.xlsx", "Rows").items()}
    assert (
        list(statuses.values()).count("Applied") == 2
        and list(statuses.values()).count("Deferred") == 2  # waiting for seats
    )


def test_migrate_refuses_a_map_without_the_columns(seeded, tmp_path: Path) -> None:
    tenant = seeded(cases_tenant())
    mapping = write_csv(tmp_path / "map.csv", ["Old", "New"], [["ENTERPRISEPACK", "SPE_E3"]])
    done = tenant.cli("migrate", "--map", str(mapping), "--yes")
    assert done.returncode == 1
    assert "the map has no FromSku or ToSku column" in done.stderr


def test_export_applied_exact_sends_no_write_and_csv_is_formula_safe(
    seeded, tmp_path: Path
) -> None:
    seed = cases_tenant()
    seed["users"][0]["displayName"] = '=HYPERLINK("http://x")'
    tenant = seeded(seed)
    snapshot = tmp_path / "snapshot.xlsx"
    assert tenant.cli("export", "--output", str(snapshot)).returncode == 0
    rows = {r.values[0]: r.values for r in read_sheet(snapshot).rows}
    assert set(rows) == {u["userPrincipalName"] for u in seed["users"] if u["licenses"]} | {
        "dan.group@contoso.example",
        "eve.group@contoso.example",
    }
    ann = rows["ann.direct@contoso.example"]
    assert ann[2:4] == ("ENTERPRISEPACK", "ENTERPRISEPACK:SWAY;ENTERPRISEPACK:YAMMER_ENTERPRISE")
    assert ann[5] == '=HYPERLINK("http://x")'  # stored as text, read back as written
    dan = rows["dan.group@contoso.example"]
    assert (dan[2], dan[4], dan[8], dan[9]) == (
        "",
        "Licensing - Office 365 E3",
        "ENTERPRISEPACK (Licensing - Office 365 E3)",
        "Group",
    )

    writes = dict(tenant.sim.store.applied_writes())
    done = tenant.cli(
        "apply", str(snapshot), "--exact", "--yes", "--output", str(tmp_path / "a.xlsx")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Nothing to write." in done.stdout and tenant.sim.store.applied_writes() == writes

    csv_path = tmp_path / "snapshot.csv"
    assert tenant.cli("export", "--csv", "--output", str(csv_path)).returncode == 0
    text = csv_path.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    assert (
        tenant.cli("export", "--csv", "--output", str(csv_path)).returncode == 1
    )  # never overwrites


@pytest.mark.parametrize("pseudonymise", [False, True])
def test_clone_makes_a_seed_the_simulator_loads_with_the_same_assignments(
    seeded, tmp_path: Path, pseudonymise: bool
) -> None:
    tenant = seeded(cases_tenant())
    seed_path = tmp_path / "clone.json"
    args = ["simulator", "clone", "--output", str(seed_path)] + (
        ["--pseudonymise"] if pseudonymise else []
    )
    done = tenant.cli(*args)
    assert done.returncode == 0, done.stderr
    clone = json.loads(seed_path.read_text(encoding="utf-8"))
    original = cases_tenant()

    def assignments(seed: dict) -> list[str]:
        return sorted(
            json.dumps(
                sorted((lic["skuId"], sorted(lic["disabledPlans"])) for lic in u["licenses"])
            )
            for u in seed["users"]
        )

    assert assignments(clone) == assignments(original)
    assert {s["skuId"]: s["prepaidUnits"] for s in clone["skus"]} == {
        s["skuId"]: s["prepaidUnits"] for s in original["skus"]
    }
    upns = [u["userPrincipalName"] for u in clone["users"]]
    if pseudonymise:
        text = seed_path.read_text(encoding="utf-8")
        assert not any(u["id"] in text or u["userPrincipalName"] in text for u in original["users"])
        assert (
            "Sales" not in text
            and "Fabrikam" not in text
            and all(u.endswith("@org1.example") for u in upns)
        )
        group = clone["groups"][0]
        assert (
            set(group["members"]) <= {u["id"] for u in clone["users"]}
            and len(group["members"]) == 2
        )
    else:
        assert upns == [u["userPrincipalName"] for u in original["users"]]

    home = tmp_path / "rehearsal"
    env = {
        "M365BATCH_HOME": str(home),
        **{k: "" for k in tenant.env if k.startswith(("AZURE_", "M365BATCH_G", "REQ"))},
    }
    reset = tenant.cli("simulator", "reset", "--seed-file", str(seed_path), extra_env=env)
    assert reset.returncode == 0, reset.stderr
    assert "8 users, 7 licensed" in reset.stdout  # dan and eve through the group
