"""Group-based licensing in a migration: the group's license switches in two safe steps."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import openpyxl

from tests.migrate.seedkit import SKU_ID, plan_id, sku, tenant, user
from tests.run.runkit import Tenant, write_csv

GROUP_ID = "7d1e4f5a-6b8c-4d9e-8f0a-1b2c3d4e5f60"
GROUP = "Licensing - Office 365 E3"
MEMBERS = ("mia.group", "noa.group", "oli.group")


def _seed(
    *,
    e3_seats: int = 10,
    disabled: tuple[str, ...] = ("SWAY", "YAMMER_ENTERPRISE"),
    extra: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    rng = random.Random(11)
    members = [user(name, rng=rng) for name in MEMBERS]
    if extra:  # a direct license of the first member's own
        members[0] = user(MEMBERS[0], extra, rng=rng)
    users = [*members, user("ann.direct", {"ENTERPRISEPACK": []}, rng=rng)]
    group = {
        "id": GROUP_ID,
        "displayName": GROUP,
        "securityEnabled": True,
        "mailEnabled": False,
        "groupTypes": [],
        "assignedLicenses": [
            {
                "skuId": SKU_ID["ENTERPRISEPACK"],
                "disabledPlans": sorted(plan_id("ENTERPRISEPACK", p) for p in disabled),
            }
        ],
        "members": [u["id"] for u in members],
    }
    return tenant(
        [
            sku("ENTERPRISEPACK", enabled=10),
            sku("SPE_E3", enabled=e3_seats),
            sku("EXCHANGESTANDARD", enabled=5),
        ],
        users,
        [group],
    )


def _rows(path: Path, name: str) -> dict[str, dict[str, object]]:
    book = openpyxl.load_workbook(path, read_only=True)
    rows = list(book[name].iter_rows(values_only=True))
    book.close()
    return {str(r[0]): dict(zip(rows[0], r, strict=False)) for r in rows[1:]}


def _group_licenses(tenant_: Tenant) -> dict[str, frozenset[str]]:
    group = next(g for g in tenant_.sim.store.groups() if g["id"] == GROUP_ID)
    return {a["skuId"]: frozenset(a.get("disabledPlans") or []) for a in group["assignedLicenses"]}


def _never_unlicensed(tenant_: Tenant, upn: str) -> None:
    history = tenant_.sim.store.license_history(upn)
    assert history, upn
    assert all(skus for _, skus in history), (upn, history)


def _upn(local: str) -> str:
    return f"{local}@contoso.example"


def test_a_group_switches_in_two_steps_and_undo_puts_it_back(seeded, tmp_path: Path) -> None:
    sim = seeded(_seed())
    mapping = write_csv(tmp_path / "map.csv", ["FromSku", "ToSku"], [["ENTERPRISEPACK", "SPE_E3"]])
    report = tmp_path / "r.xlsx"
    done = sim.cli("migrate", "--map", str(mapping), "--groups", "--yes", "--output", str(report))
    assert done.returncode == 0, done.stdout + done.stderr

    translated = frozenset({plan_id("SPE_E3", "SWAY"), plan_id("SPE_E3", "YAMMER_ENTERPRISE")})
    assert _group_licenses(sim) == {SKU_ID["SPE_E3"]: translated}
    for local in MEMBERS:
        assert sim.licenses(_upn(local)) == {SKU_ID["SPE_E3"]: translated}
        _never_unlicensed(sim, _upn(local))
        # the member held both licenses before the old one went: step one, then step two
        assert any(
            {SKU_ID["SPE_E3"], SKU_ID["ENTERPRISEPACK"]} <= skus
            for _, skus in sim.sim.store.license_history(_upn(local))
        )
    assert sim.sim.store.applied_writes()[(GROUP_ID, "groupAssignLicense")] == 2

    rows = _rows(report, "Rows")
    for local in MEMBERS:
        row = rows[_upn(local)]
        assert (row["Status"], row["Verified"], row["Added"], row["Removed"]) == (
            "Applied",
            "Yes",
            "Microsoft 365 E3 (SPE_E3)",
            "Office 365 E3 (ENTERPRISEPACK)",
        ), row
        assert GROUP in str(row["LicensesAfter"])
    assert rows[_upn("ann.direct")]["Status"] == "Applied"  # direct users move as before
    group = _rows(report, "Groups")[GROUP]
    assert group["Status"] == "Applied" and group["Members"] == 3
    assert "added Microsoft 365 E3 (SPE_E3)" in str(group["Step 1"])
    assert "removed Office 365 E3 (ENTERPRISEPACK)" in str(group["Step 2"])
    book = openpyxl.load_workbook(report, read_only=True)
    changes = [r for r in book["Changes"].iter_rows(values_only=True) if "groupAssignLicense" in r]
    book.close()
    assert len(changes) == 2

    migration_id = next(
        line.split()[1] for line in done.stdout.splitlines() if line.startswith("Migration ")
    )
    listed = json.loads(sim.cli("runs", "--json").stdout)
    # the migration is listed with its report, by its absolute path
    assert {r["run_id"]: r["report"] for r in listed}[migration_id] == str(report.resolve())
    undone = sim.cli("undo", migration_id, "--yes")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    # the undo's report (of the users who moved directly) goes beside the migration's
    undo_report = Path(undone.stdout.split("Report: ")[-1].strip())
    assert undo_report.parent == tmp_path.resolve() and undo_report.name.startswith("map-undo-")
    before = frozenset(
        {plan_id("ENTERPRISEPACK", "SWAY"), plan_id("ENTERPRISEPACK", "YAMMER_ENTERPRISE")}
    )
    assert _group_licenses(sim) == {SKU_ID["ENTERPRISEPACK"]: before}
    for local in MEMBERS:
        assert sim.licenses(_upn(local)) == {SKU_ID["ENTERPRISEPACK"]: before}
        _never_unlicensed(sim, _upn(local))
    assert set(sim.licenses(_upn("ann.direct"))) == {SKU_ID["ENTERPRISEPACK"]}


def test_a_group_short_of_seats_waits_for_them_as_the_dry_run_said(seeded, tmp_path: Path) -> None:
    sim = seeded(_seed(e3_seats=3))  # ann takes one in her wave; the group's three need three
    mapping = write_csv(tmp_path / "map.csv", ["FromSku", "ToSku"], [["ENTERPRISEPACK", "SPE_E3"]])
    need = f"need 1 more seats of SPE_E3 for group '{GROUP}' (3 members wait for one; 2 free)"
    dry = sim.cli(
        "migrate",
        "--map",
        str(mapping),
        "--groups",
        "--dry-run",
        "--output",
        str(tmp_path / "d.xlsx"),
    )
    assert dry.returncode == 3, dry.stdout + dry.stderr
    assert f"{need}: the group would not be changed" in dry.stdout
    assert f"Group '{GROUP}' (3 members, ENTERPRISEPACK -> SPE_E3): Deferred" in dry.stdout
    assert sim.sim.store.applied_writes() == {}

    report = tmp_path / "r.xlsx"
    done = sim.cli("migrate", "--map", str(mapping), "--groups", "--yes", "--output", str(report))
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"{need}: the group was not changed" in done.stdout
    assert (GROUP_ID, "groupAssignLicense") not in sim.sim.store.applied_writes()
    assert set(_group_licenses(sim)) == {SKU_ID["ENTERPRISEPACK"]}
    rows, predicted = _rows(report, "Rows"), _rows(tmp_path / "d.xlsx", "Rows")
    for local in MEMBERS:
        row = rows[_upn(local)]
        assert (row["Status"], row["ErrorCode"]) == ("Deferred", "NoSeats"), row
        assert "(3 members wait for one; 2 free): the group was not changed" in str(row["Detail"])
        assert set(sim.licenses(_upn(local))) == {SKU_ID["ENTERPRISEPACK"]}
    # the dry run said what the run did, user by user (Planned is Applied once run)
    assert {u: (r["Status"], r["ErrorCode"]) for u, r in rows.items()} == {
        u: ("Applied" if r["Status"] == "Planned" else r["Status"], r["ErrorCode"])
        for u, r in predicted.items()
    }
    assert rows[_upn("ann.direct")]["Status"] == "Applied"
    assert _rows(report, "Groups")[GROUP]["Status"] == "Deferred"
    assert _rows(tmp_path / "d.xlsx", "Groups")[GROUP]["Status"] == "Deferred"

    # with --users naming only part of the group, the group is out of scope
    some = write_csv(tmp_path / "some.csv", ["UserPrincipalName"], [[_upn(MEMBERS[0])]])
    scoped = sim.cli(
        "migrate",
        "--map",
        str(mapping),
        "--users",
        str(some),
        "--groups",
        "--dry-run",
        "--output",
        str(tmp_path / "s.xlsx"),
    )
    assert scoped.returncode == 0, scoped.stdout + scoped.stderr
    group = _rows(tmp_path / "s.xlsx", "Groups")[GROUP]
    assert group["Status"] == "Skipped" and "out of scope: 2 of its 3 members" in str(
        group["Detail"]
    )
    row = _rows(tmp_path / "s.xlsx", "Rows")[_upn(MEMBERS[0])]
    assert (row["Status"], row["ErrorCode"]) == ("Skipped", "InheritedFromGroup")

    # without --groups the group is only reported, as before
    plain = sim.cli(
        "migrate", "--map", str(mapping), "--dry-run", "--output", str(tmp_path / "p.xlsx")
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    row = _rows(tmp_path / "p.xlsx", "Rows")[_upn(MEMBERS[0])]
    assert (row["Status"], row["ErrorCode"]) == ("Skipped", "InheritedFromGroup")


def test_a_member_in_error_after_step_one_keeps_the_group_on_both_skus(
    seeded, tmp_path: Path
) -> None:
    # mia holds Exchange Plan 1 directly; the group's Office 365 E3 has Exchange disabled, and
    # the map does not keep disabled plans, so SPE_E3's Exchange Plan 2 conflicts for her
    sim = seeded(_seed(disabled=("EXCHANGE_S_ENTERPRISE",), extra={"EXCHANGESTANDARD": []}))
    mapping = write_csv(
        tmp_path / "map.csv",
        ["FromSku", "ToSku", "KeepDisabledPlans"],
        [["ENTERPRISEPACK", "SPE_E3", "no"]],
    )
    report = tmp_path / "r.xlsx"
    users = write_csv(tmp_path / "users.csv", ["UserPrincipalName"], [[_upn(m)] for m in MEMBERS])
    done = sim.cli(
        "migrate",
        "--map",
        str(mapping),
        "--users",
        str(users),
        "--groups",
        "--yes",
        "--output",
        str(report),
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert set(_group_licenses(sim)) == {SKU_ID["ENTERPRISEPACK"], SKU_ID["SPE_E3"]}
    assert sim.sim.store.applied_writes()[(GROUP_ID, "groupAssignLicense")] == 1  # no step two
    for local in MEMBERS:
        assert SKU_ID["ENTERPRISEPACK"] in sim.sim.store.user_licenses(_upn(local))
        _never_unlicensed(sim, _upn(local))
    rows = _rows(report, "Rows")
    mia = rows[_upn("mia.group")]
    assert (mia["Status"], mia["ErrorCode"]) == ("Failed", "MutuallyExclusiveViolation")
    assert "keeps service" in str(mia["Detail"])
    noa = rows[_upn("noa.group")]
    assert noa["Status"] == "Failed" and "left on both SKUs" in str(noa["Detail"])
    group = _rows(report, "Groups")[GROUP]
    assert group["Status"] == "Failed" and "1 members in error" in str(group["Step 2"])
    assert _upn("ann.direct") not in rows  # not in the users sheet

    # fixed (mia's conflicting license goes, Entra reprocesses her): a second run finds the
    # group on both SKUs and only removes FromSku
    from batch.simulator import licensing

    mia_id = sim.sim.store.user(_upn("mia.group"))["id"]
    with sim.sim.store.write() as db:
        db.execute("DELETE FROM licenses WHERE user_id=? AND source=''", (mia_id,))
        licensing.reprocess_user(db, mia_id)
    again = sim.cli(
        "migrate",
        "--map",
        str(mapping),
        "--users",
        str(users),
        "--groups",
        "--yes",
        "--output",
        str(tmp_path / "again.xlsx"),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    group = _rows(tmp_path / "again.xlsx", "Groups")[GROUP]
    assert group["Status"] == "Applied" and "only Office 365 E3 (ENTERPRISEPACK) is removed" in str(
        group["Detail"]
    )
    assert set(_group_licenses(sim)) == {SKU_ID["SPE_E3"]}
    for local in MEMBERS:
        assert sim.sim.store.user_licenses(_upn(local)) == {SKU_ID["SPE_E3"]}
        _never_unlicensed(sim, _upn(local))
