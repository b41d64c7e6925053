"""m365batch true-up on the simulated tenant, checked against figures computed from its state."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from batch.graph.client import GraphClient
from batch.simulator.graph import ALL_ROLES
from tests.trueup.conftest import (
    ACTIVE,
    Expected,
    last_activity,
    run_cli,
    sim_env,
    summary_table,
    table,
)

PRICES = {
    "SPE_E3": ("36.00", "EUR"),
    "Office 365 E3": ("23,00", "EUR"),
    "SPE_E5": ("57", "EUR"),
    "EMS": ("10.60", "USD"),
    "POWER_BI_PRO": ("10", "USD"),
}
PRICED_PARTS = {
    "SPE_E3": (36.0, "EUR"),
    "ENTERPRISEPACK": (23.0, "EUR"),
    "SPE_E5": (57.0, "EUR"),
    "EMS": (10.6, "USD"),
    "POWER_BI_PRO": (10.0, "USD"),
}


def write_prices(folder: Path, extra: str = "") -> Path:
    path = folder / "prices.csv"
    lines = ["Sku;MonthlyPrice;Currency"] + [f"{k};{v};{c}" for k, (v, c) in PRICES.items()]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def priced_run(sim: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One true-up with a price list (some SKUs unpriced, one unknown SKU), shared by tests."""
    folder = tmp_path_factory.mktemp("run")
    prices = write_prices(folder, "NOT_A_SKU;5;EUR\n")
    out = folder / "trueup.xlsx"
    result = run_cli(["true-up", "--prices", str(prices), "--output", str(out)], env=sim_env(sim))
    return {"result": result, "path": out}


def test_summary_matches_tenant_and_skus_command(
    sim: Any, priced_run: dict[str, Any], expected: Expected
) -> None:
    result = priced_run["result"]
    assert result.exit_code == 0, result.output
    info, skus, _ = summary_table(priced_run["path"])
    want = expected.skus()
    assert set(skus) == set(want)
    for part, row in skus.items():
        assert (
            row["Purchased"],
            row["Warning"],
            row["Suspended"],
            row["Assigned"],
            row["Free"],
        ) == (
            want[part]["enabled"],
            want[part]["warning"],
            want[part]["suspended"],
            want[part]["consumed"],
            want[part]["free"],
        ), part
        if part in PRICED_PARTS:
            price, _currency = PRICED_PARTS[part]
            assert row["Monthly price"] == pytest.approx(price)
            assert row["Cost of purchased seats"] == pytest.approx(price * want[part]["enabled"])
            assert row["Cost of free seats"] == pytest.approx(price * want[part]["free"])
        else:
            assert row["Monthly price"] == row["Cost of purchased seats"] == "no price"
    # `skus` shows the very same seat numbers.
    listed = json.loads(run_cli(["skus", "--json"], env=sim_env(sim)).stdout)
    for item in listed:
        row = skus[item["skuPartNumber"]]
        assert (row["Purchased"], row["Assigned"], row["Free"]) == (
            item["purchased"],
            item["assigned"],
            item["free"],
        )
    licensed = expected.held()
    assert info["Licensed users"] == len(licensed)
    assert info["Free seats"] == sum(s["free"] for s in want.values())
    # Per-currency totals, never mixed.
    _, _, rows = summary_table(priced_run["path"])
    totals = {r[0]: r[10] for r in rows if r[0] in ("Total EUR", "Total USD")}
    for currency in ("EUR", "USD"):
        assert totals[f"Total {currency}"] == pytest.approx(
            sum(
                price * want[part]["enabled"]
                for part, (price, c) in PRICED_PARTS.items()
                if c == currency
            )
        )
    assert "NOT_A_SKU" in result.stderr and "not a SKU the catalog knows" in result.stderr
    assert f"licensed users: {len(licensed):,}" in result.stdout
    assert f"Workbook: {priced_run['path']}" in result.stdout


def test_users_sheet_lists_every_licensed_user_with_cost(
    priced_run: dict[str, Any], expected: Expected
) -> None:
    users = {row["UPN"]: row for row in table(priced_run["path"], "Users")}
    held = expected.held()
    assert set(users) == set(held)
    everyone = expected.users()
    for upn, parts in held.items():
        row = users[upn]
        assert row["Department"] == (everyone[upn]["department"] or None)
        assert row["Enabled"] == ("Yes" if everyone[upn]["account_enabled"] else "No")
        priced = parts & set(PRICED_PARTS)
        for currency in ("EUR", "USD"):
            want = sum(
                p for part, (p, c) in PRICED_PARTS.items() if part in parts and c == currency
            )
            got = row[f"Monthly cost ({currency})"]
            if priced:
                assert (got or 0) == pytest.approx(want), (upn, currency)
            else:
                assert got == "no price", upn
        unpriced = {part for part in parts if part not in PRICED_PARTS}
        assert bool(row["Licenses without price"]) == bool(unpriced), upn
    # Direct versus inherited: every group-held license names its group.
    inherited = expected.rows(
        f"SELECT u.upn, g.display_name FROM licenses l JOIN users u ON u.id = l.user_id "
        f"JOIN groups g ON g.id = l.source WHERE l.state IN {ACTIVE}"
    )
    for r in inherited:
        assert r["display_name"] in (users[r["upn"]]["Via groups"] or ""), r["upn"]


def _reclaim_pairs(path: Path, category: str) -> set[tuple[str, str]]:
    return {
        (r["UPN"], r["Part number"]) for r in table(path, "Reclaim") if r["Category"] == category
    }


def test_reclaim_sheet_finds_disabled_inactive_never_and_duplicates(
    priced_run: dict[str, Any], expected: Expected
) -> None:
    path = priced_run["path"]
    held = expected.held()
    users = expected.users()
    now = dt.datetime.now(dt.UTC)
    disabled, inactive, never = set(), set(), set()
    for upn, parts in held.items():
        row = users[upn]
        last = last_activity(row)
        created = dt.datetime.fromisoformat(row["created"].replace("Z", "+00:00"))
        pairs = {(upn, p) for p in parts}
        if not row["account_enabled"]:
            disabled |= pairs
        elif last is not None and now - last > dt.timedelta(days=90):
            inactive |= pairs
        elif last is None and now - created > dt.timedelta(days=90):
            never |= pairs
    assert disabled and inactive and never  # the sample has each case
    assert _reclaim_pairs(path, "Disabled account") == disabled
    assert _reclaim_pairs(path, "Inactive") == inactive
    assert _reclaim_pairs(path, "Never signed in") == never
    parts = expected.part_of()
    both = {
        (r["upn"], parts[r["sku_id"]])
        for r in expected.rows(
            f"SELECT u.upn, d.sku_id FROM licenses d JOIN licenses g ON g.user_id = d.user_id AND "
            f"g.sku_id = d.sku_id AND g.source != '' JOIN users u ON u.id = d.user_id "
            f"WHERE d.source = '' AND d.state IN {ACTIVE} AND g.state IN {ACTIVE}"
        )
    }
    assert both and _reclaim_pairs(path, "Direct and group") == both
    # Overlaps: every SKU whose service plans are all inside another SKU the user holds.
    skus = expected.skus()
    contained = {
        (a, b)
        for a in skus
        for b in skus
        if a != b and skus[a]["plans"] and skus[a]["plans"] <= skus[b]["plans"]
    }
    subset_pairs = {
        (upn, a) for upn, ps in held.items() for a, b in contained if a in ps and b in ps
    }
    assert subset_pairs and subset_pairs <= _reclaim_pairs(path, "Overlapping license")
    # Savings: a priced seat saves its price, a direct+group duplicate saves nothing.
    for row in table(path, "Reclaim"):
        price = PRICED_PARTS.get(row["Part number"])
        if row["Category"] == "Direct and group" and price:
            assert row[f"Monthly saving ({price[1]})"] == 0
        elif price:
            assert row[f"Monthly saving ({price[1]})"] == pytest.approx(price[0])
        else:
            assert row["Monthly saving (EUR)"] == "no price"


def test_errors_sheet_explains_group_licensing_errors(
    priced_run: dict[str, Any], expected: Expected
) -> None:
    parts = expected.part_of()
    want = {
        (r["upn"], r["display_name"], parts[r["sku_id"]], r["error"])
        for r in expected.rows(
            "SELECT u.upn, g.display_name, l.sku_id, l.error FROM licenses l JOIN users u ON "
            "u.id = l.user_id JOIN groups g ON g.id = l.source WHERE l.state = 'Error'"
        )
    }
    rows = table(priced_run["path"], "Errors")
    assert want and {(r["UPN"], r["Group"], r["Part number"], r["Error"]) for r in rows} == want
    for row in rows:
        if row["Error"] == "CountViolation":
            assert "no free seat" in row["Explanation"]


def test_cost_sheet_by_department_and_country(
    priced_run: dict[str, Any], expected: Expected
) -> None:
    held = expected.held()
    users = expected.users()
    dept: dict[str, float] = {}
    for upn, parts in held.items():
        key = users[upn]["department"] or "(no department)"
        dept[key] = dept.get(key, 0.0) + sum(
            p for part, (p, c) in PRICED_PARTS.items() if part in parts and c == "EUR"
        )
    book = openpyxl.load_workbook(priced_run["path"], read_only=True)
    rows = [list(r) for r in book["Cost"].iter_rows(values_only=True)]
    book.close()
    country_at = next(i for i, r in enumerate(rows) if r[0] and str(r[0]).startswith("By country"))
    header = rows[1]
    found = {
        r[0]: r[header.index("Cost of assigned seats (EUR)")] or 0
        for r in rows[2:country_at]
        if r[0] and r[0] != "Total"
    }
    assert found.keys() == dept.keys()
    for key, amount in dept.items():
        assert found[key] == pytest.approx(amount), key
    countries = {
        r[0][:2]
        for r in rows[country_at + 2 :]
        if r[0] and r[0] != "Total" and not r[0].startswith("(")
    }
    assert countries == {users[u]["usage_location"] for u in held if users[u]["usage_location"]}


def test_workbook_is_a_tidy_report(priced_run: dict[str, Any]) -> None:
    path = priced_run["path"]
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Users", "Reclaim", "Errors", "Cost"]
    for name in book.sheetnames:
        sheet = book[name]
        assert sheet.freeze_panes, name
        assert sheet.auto_filter.ref, name
        assert any(d.width and d.width > 8 for d in sheet.column_dimensions.values()), name
    users = book["Users"]
    cost_col = [c.column for c in users[1] if c.value == "Monthly cost (EUR)"][0]
    assert any(
        users.cell(row=r, column=cost_col).number_format.startswith("#,##0.00")
        for r in range(2, 20)
    )
    summary = book["Summary"]
    assert any('"EUR"' in c.number_format for row in summary.iter_rows() for c in row)
    with zipfile.ZipFile(path) as archive:
        assert any(n.startswith("xl/charts/chart") for n in archive.namelist())
    # pandas reads every sheet too.
    frames = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    assert len(frames["Users"]) == users.max_row - 1


def test_no_prices_says_so_everywhere(
    sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: Expected
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(["true-up"], env=sim_env(sim))
    assert result.exit_code == 0, result.output
    written = list(tmp_path.glob("true-up-*.xlsx"))
    assert len(written) == 1 and written[0].name.startswith("true-up-contoso-")
    _, skus, _ = summary_table(written[0])
    assert all(
        r["Monthly price"] == r["Cost of purchased seats"] == r["Cost of free seats"] == "no price"
        for r in skus.values()
    )
    users = table(written[0], "Users")
    assert users and all(r["Monthly cost"] == "no price" for r in users)
    assert "monthly saving: no prices given" in result.stdout
    assert "No prices were given" in result.stderr
    # Never overwrite: the same --output twice fails the second time, the file untouched.
    before = written[0].read_bytes()
    again = run_cli(["true-up", "--output", str(written[0])], env=sim_env(sim))
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert written[0].read_bytes() == before


def test_previous_workbook_gives_changes(
    sim: Any, tmp_path: Path, priced_run: dict[str, Any], expected: Expected
) -> None:
    client = GraphClient(_settings(sim, tmp_path))
    parts = expected.part_of()
    e3 = next(s for s, p in parts.items() if p == "SPE_E3")
    before_seats = expected.skus()
    # Someone leaves (all direct licenses removed), someone unlicensed joins with E3.
    leaver = next(
        r
        for r in expected.rows(
            "SELECT u.id, u.upn FROM users u WHERE u.account_enabled = 1 AND EXISTS (SELECT 1 FROM "
            f"licenses l WHERE l.user_id = u.id AND l.source = '' AND l.state IN {ACTIVE}) AND NOT "
            "EXISTS (SELECT 1 FROM licenses l WHERE l.user_id = u.id AND l.source != '') "
            "ORDER BY u.upn"
        )
    )
    joiner = next(
        r
        for r in expected.rows(
            "SELECT u.id, u.upn FROM users u WHERE u.usage_location IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM licenses l WHERE l.user_id = u.id) ORDER BY u.upn"
        )
    )
    leaver_skus = [
        r["sku_id"]
        for r in expected.rows("SELECT sku_id FROM licenses WHERE user_id = ?", leaver["id"])
    ]
    client.post(
        f"/users/{leaver['id']}/assignLicense", {"addLicenses": [], "removeLicenses": leaver_skus}
    )
    client.post(
        f"/users/{joiner['id']}/assignLicense",
        {"addLicenses": [{"skuId": e3, "disabledPlans": []}], "removeLicenses": []},
    )
    try:
        out = tmp_path / "next.xlsx"
        result = run_cli(
            ["true-up", "--previous", str(priced_run["path"]), "--output", str(out)],
            env=sim_env(sim),
        )
        assert result.exit_code == 0, result.output
        changes = table(out, "Changes")
        users = {(r["Change"], r["SKU or UPN"]) for r in changes if r["Change"].startswith("User")}
        assert users == {("User removed", leaver["upn"]), ("User added", joiner["upn"])}
        after_seats = expected.skus()
        seat_rows = {
            (r["SKU or UPN"], r["Measure"]): r
            for r in changes
            if r["Measure"] in ("Purchased", "Assigned")
        }
        want = {
            (p, "Assigned"): after_seats[p]["consumed"] - before_seats[p]["consumed"]
            for p in after_seats
            if after_seats[p]["consumed"] != before_seats[p]["consumed"]
        }
        assert want and {k: r["Difference"] for k, r in seat_rows.items()} == want
        assert "Changes since trueup.xlsx: 2 users added or removed" in result.stdout
    finally:
        client.post(
            f"/users/{joiner['id']}/assignLicense", {"addLicenses": [], "removeLicenses": [e3]}
        )
        client.post(
            f"/users/{leaver['id']}/assignLicense",
            {
                "addLicenses": [{"skuId": s, "disabledPlans": []} for s in leaver_skus],
                "removeLicenses": [],
            },
        )


def test_without_sign_in_permission_the_rest_is_still_produced(
    sim: Any, tmp_path: Path, expected: Expected
) -> None:
    roles = [r for r in ALL_ROLES if r != "AuditLog.Read.All"]
    client_id, secret = sim.add_app(roles)
    out = tmp_path / "no-audit.xlsx"
    result = run_cli(["true-up", "--output", str(out)], env=sim_env(sim, client_id, secret))
    assert result.exit_code == 0, result.output
    assert "Sign-in activity could not be read" in result.stderr
    assert "AuditLog.Read.All" in result.stderr
    users = table(out, "Users")
    assert {r["UPN"] for r in users} == set(expected.held())
    assert all(r["Last sign-in"] == "not available" for r in users)
    categories = {r["Category"] for r in table(out, "Reclaim")}
    assert "Inactive" not in categories and "Never signed in" not in categories
    assert "Disabled account" in categories
    _, _, rows = summary_table(out)
    assert any(r[0] and "Sign-in activity could not be read" in str(r[0]) for r in rows)


def test_untrusted_text_is_never_a_formula(sim: Any, tmp_path: Path, expected: Expected) -> None:
    victim = next(iter(sorted(expected.held())))
    client = GraphClient(_settings(sim, tmp_path))
    original = expected.users()[victim]["department"]
    evil = '=HYPERLINK("http://evil.example","click")'
    client.patch(f"/users/{expected.users()[victim]['id']}", {"department": evil})
    try:
        out = tmp_path / "safe.xlsx"
        assert run_cli(["true-up", "--output", str(out)], env=sim_env(sim)).exit_code == 0
        book = openpyxl.load_workbook(out)
        cells = [
            c
            for ws in book.worksheets
            for row in ws.iter_rows()
            for c in row
            if isinstance(c.value, str) and c.value.startswith("=")
        ]
        assert cells, "the department should appear as text"
        assert all(c.data_type == "s" and c.value == evil for c in cells)
        with zipfile.ZipFile(out) as archive:
            for name in archive.namelist():
                if name.startswith("xl/worksheets/"):
                    assert b"<f>" not in archive.read(name), name
    finally:
        client.patch(f"/users/{expected.users()[victim]['id']}", {"department": original})


def test_previous_must_be_a_trueup_workbook(sim: Any, tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("UserPrincipalName\na@b.example\n", encoding="utf-8")
    result = run_cli(["true-up", "--previous", str(other)], env=sim_env(sim))
    assert result.exit_code == 1
    assert "other.csv" in result.stderr and "not a true-up workbook" in result.stderr


def _settings(sim: Any, home: Path) -> Any:
    from batch.config import Settings

    return Settings(
        home=home,
        tenant_id=sim.tenant_id,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        authority_host=sim.authority_host,
        graph_url=sim.graph_url,
        ca_bundle=str(sim.ca_path),
    )
