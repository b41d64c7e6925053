"""2,000 users from Office 365 E3 to Microsoft 365 E3 in waves, then undone exactly."""

from __future__ import annotations

import threading
from pathlib import Path

import openpyxl

from batch.intake.sources import read_sheet
from tests.migrate.seedkit import SKU_ID, SKUS, big_tenant, plan_id
from tests.run.runkit import write_csv

USERS = 2000


def _add_seats_when_short(sim, stop: threading.Event, added: list[int]) -> None:
    """The new CSP delivers SPE_E3 seats in tranches: 600 more each time they run out."""
    while not stop.wait(0.1):
        skus = {s["skuPartNumber"]: s for s in sim.store.skus()}
        e3, old = skus["SPE_E3"], skus["ENTERPRISEPACK"]
        if old["consumedUnits"] == 0:
            return
        if e3["consumedUnits"] >= e3["prepaidUnits"]["enabled"]:
            more = min(600, old["consumedUnits"])
            with sim.store.write() as db:
                db.execute(
                    "UPDATE skus SET enabled = enabled + ? WHERE sku_id = ?",
                    (more, SKU_ID["SPE_E3"]),
                )
            added.append(more)


def test_two_thousand_users_move_in_waves_without_a_gap_and_undo_restores_the_export(
    seeded, tmp_path: Path
) -> None:
    seed = big_tenant(USERS, e3_free=600)
    tenant = seeded(seed)
    before = tmp_path / "before.xlsx"
    assert tenant.cli("export", "--output", str(before)).returncode == 0
    mapping = write_csv(tmp_path / "map.csv", ["FromSku", "ToSku"], [["Office 365 E3", "SPE_E3"]])
    report = tmp_path / "migration.xlsx"

    stop, added = threading.Event(), []
    feeder = threading.Thread(
        target=_add_seats_when_short, args=(tenant.sim, stop, added), daemon=True
    )
    feeder.start()
    try:
        done = tenant.cli(
            "migrate",
            "--map",
            str(mapping),
            "--wave-size",
            "700",
            "--wait-for-seats",
            "60",
            "--yes",
            "--output",
            str(report),
            timeout=150,
        )
    finally:
        stop.set()
        feeder.join()
    assert done.returncode == 0, done.stdout + done.stderr
    assert added, "the seats never ran out: the test did not exercise waves for seats"

    e3, old = SKU_ID["SPE_E3"], SKU_ID["ENTERPRISEPACK"]
    e3_plans = {p["servicePlanId"] for p in SKUS["SPE_E3"]["servicePlans"]}
    names = {
        p["servicePlanId"]: p["servicePlanName"] for p in SKUS["ENTERPRISEPACK"]["servicePlans"]
    }
    for person in seed["users"]:
        upn = person["userPrincipalName"]
        held = tenant.licenses(upn)
        expected = {plan_id("SPE_E3", names[p]) for p in person["licenses"][0]["disabledPlans"]}
        assert set(held) == {e3}, upn
        assert held[e3] == expected and expected <= e3_plans, upn
        history = tenant.sim.store.license_history(upn)
        assert history[0][1] == {old} and history[-1][1] == {e3}, upn
        assert all(skus & {old, e3} for _, skus in history), f"{upn} was left unlicensed: {history}"

    book = openpyxl.load_workbook(report, read_only=True)
    waves = list(book["Waves"].iter_rows(values_only=True))
    assert len(waves) - 1 >= 3  # 600 seats at first, more delivered after each wave
    assert sum(row[4] for row in waves[1:]) == USERS and all(row[5] == row[4] for row in waves[1:])
    rows = list(book["Rows"].iter_rows(values_only=True))
    assert len(rows) == USERS + 1 and {r[5] for r in rows[1:]} == {"Applied"}
    assert {r[14] for r in rows[1:]} == {"Yes"}  # every user read back and verified
    licenses = {r[0]: r for r in book["Licenses"].iter_rows(values_only=True)}
    assert licenses["ENTERPRISEPACK"][6] == USERS and licenses["ENTERPRISEPACK"][8] == 0
    book.close()

    migration_id = next(
        line.split()[1] for line in done.stdout.splitlines() if line.startswith("Migration ")
    )
    undone = tenant.cli("undo", migration_id, "--yes", "--max-removals", str(USERS), timeout=150)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    after = tmp_path / "after.xlsx"
    assert tenant.cli("export", "--output", str(after)).returncode == 0
    first, second = read_sheet(before), read_sheet(after)
    assert first.headers == second.headers
    assert [r.values for r in first.rows] == [r.values for r in second.rows]
    assert len(first.rows) == USERS
