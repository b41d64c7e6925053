"""Fixtures for the true-up tests: one simulated tenant per module, the CLI pointed at it.

Expected figures are computed here from the simulator's own SQLite state with plain SQL,
never through ``batch.jobs.trueup.reckon``.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from batch.cli import cli

ACTIVE = "('Active', 'ActiveWithError')"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A simulated tenant (the generated sample) serving HTTPS for this module."""
    from batch.simulator import SimulatorOptions, start_simulator

    running = start_simulator(tmp_path_factory.mktemp("sim"), SimulatorOptions(seed=3))
    yield running
    running.stop()


def sim_env(sim: Any, client_id: str | None = None, secret: str | None = None) -> dict[str, str]:
    """Environment that points the CLI at the simulator as a real tenant would be configured."""
    return {
        "AZURE_TENANT_ID": sim.tenant_id,
        "AZURE_CLIENT_ID": client_id or sim.client_id,
        "AZURE_CLIENT_SECRET": secret or sim.client_secret,
        "AZURE_AUTHORITY_HOST": sim.authority_host,
        "M365BATCH_GRAPH_URL": sim.graph_url,
        "REQUESTS_CA_BUNDLE": str(sim.ca_path),
    }


def run_cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Invoke m365batch in-process (stdout and stderr kept apart)."""
    runner = CliRunner()
    return runner.invoke(cli, args, env=env, catch_exceptions=False)


@dataclass
class Expected:
    """What the tenant holds, read straight from the simulator's database."""

    db: sqlite3.Connection

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return list(self.db.execute(sql, params))

    def skus(self) -> dict[str, dict[str, Any]]:
        consumed = {
            r[0]: r[1]
            for r in self.rows(
                f"SELECT sku_id, COUNT(DISTINCT user_id) FROM licenses WHERE state IN {ACTIVE} "
                "GROUP BY sku_id"
            )
        }
        return {
            r["part_number"]: {
                "sku_id": r["sku_id"],
                "enabled": r["enabled"],
                "warning": r["warning"],
                "suspended": r["suspended"],
                "consumed": consumed.get(r["sku_id"], 0),
                "free": max(0, r["enabled"] - consumed.get(r["sku_id"], 0)),
                "plans": {p["servicePlanId"] for p in json.loads(r["service_plans"])},
            }
            for r in self.rows("SELECT * FROM skus")
        }

    def part_of(self) -> dict[str, str]:
        return {r["sku_id"]: r["part_number"] for r in self.rows("SELECT * FROM skus")}

    def held(self) -> dict[str, set[str]]:
        """UPN -> part numbers the user holds (active, any source)."""
        parts = self.part_of()
        result: dict[str, set[str]] = defaultdict(set)
        for r in self.rows(
            f"SELECT u.upn, l.sku_id FROM licenses l JOIN users u ON u.id = "
            f"l.user_id WHERE l.state IN {ACTIVE}"
        ):
            result[r["upn"]].add(parts[r["sku_id"]])
        return dict(result)

    def users(self) -> dict[str, sqlite3.Row]:
        return {r["upn"]: r for r in self.rows("SELECT * FROM users")}


@pytest.fixture
def expected(sim: Any) -> Iterator[Expected]:
    db = sqlite3.connect(sim.store.path)
    db.row_factory = sqlite3.Row
    yield Expected(db)
    db.close()


def last_activity(row: sqlite3.Row) -> dt.datetime | None:
    """The later of the two sign-in times stored for a user."""
    times = [
        dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        for v in (row["last_sign_in"], row["last_non_interactive"])
        if v
    ]
    return max(times) if times else None


def table(path: Path, sheet: str) -> list[dict[str, Any]]:
    """A sheet whose first row is its header, as dicts (openpyxl, values as stored)."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book[sheet].iter_rows(values_only=True))
    finally:
        book.close()
    header = rows[0]
    return [dict(zip(header, row, strict=False)) for row in rows[1:]]


def summary_table(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[list[Any]]]:
    """(info label -> value, part number -> SKU row, all rows) of the Summary sheet."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = [list(r) for r in book["Summary"].iter_rows(values_only=True)]
    finally:
        book.close()
    top = next(i for i, r in enumerate(rows) if r[:2] == ["Product", "Part number"])
    info = {r[0]: r[1] for r in rows[1:top] if r and r[0]}
    header = rows[top]
    skus = {}
    for r in rows[top + 1 :]:
        if not r[1]:
            break
        skus[r[1]] = dict(zip(header, r, strict=False))
    return info, skus, rows
