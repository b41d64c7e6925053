"""Helpers for end-to-end runs: a simulated tenant handle and sheets built from its seed."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl

from batch.simulator import load_sample

SAMPLE = load_sample()
SKU = {s["skuPartNumber"]: s["skuId"] for s in SAMPLE["skus"]}
LICENSED_GROUPS = {m for g in SAMPLE["groups"] if g["assignedLicenses"] for m in g["members"]}


class Tenant:
    """A running simulated tenant and the environment that points the CLI at it."""

    def __init__(self, sim: Any, home: Path) -> None:
        self.sim = sim
        self.home = home
        self.env = {**os.environ, "M365BATCH_HOME": str(home), **sim.environment()}

    def licenses(self, upn: str) -> dict[str, frozenset[str]]:
        """skuId -> disabled plans, straight from the simulator's state."""
        user = self.sim.store.user(upn)
        return {
            lic["skuId"]: frozenset(lic.get("disabledPlans") or [])
            for lic in user.get("assignedLicenses", [])
        }

    def state(self, upns: Sequence[str]) -> dict[str, Any]:
        """What a run can change, for every user named: licenses, usage location."""
        result = {}
        for upn in upns:
            user = self.sim.store.user(upn)
            result[upn] = (
                None
                if user is None
                else (
                    tuple(
                        sorted(
                            (lic["skuId"], tuple(sorted(lic.get("disabledPlans") or [])))
                            for lic in user.get("assignedLicenses", [])
                        )
                    ),
                    user.get("usageLocation"),
                )
            )
        return result

    def cli(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``m365batch`` in a subprocess against this tenant."""
        return subprocess.run(
            [sys.executable, "-m", "batch", *args],
            env={**self.env, **(extra_env or {})},
            stdin=subprocess.DEVNULL,  # no terminal: a confirmation cannot be asked
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def write_csv(path: Path, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def onboarding_rows() -> tuple[list[str], list[list[str]]]:
    """A clean sheet that exercises every kind of write and fits the seats.

    30 hires get EMS and Power Automate, one promotion swaps E3 for E5 (one call), one
    user without a usage location gets one, two join a group, three leavers are offboarded.
    """
    users = SAMPLE["users"]
    hires = [
        u
        for u in users
        if not u.get("licenses")
        and u["accountEnabled"]
        and u.get("usageLocation")
        and u["id"] not in LICENSED_GROUPS
    ][:20]
    promoted = next(
        u
        for u in users
        if u["accountEnabled"]
        and u["id"] not in LICENSED_GROUPS
        and [lic["skuId"] for lic in u.get("licenses", [])] == [SKU["SPE_E3"]]
    )
    leavers = [
        u
        for u in users
        if u.get("licenses")
        and u["accountEnabled"]
        and u["id"] not in LICENSED_GROUPS
        and u is not promoted
    ][:3]
    headers = [
        "UserPrincipalName",
        "Department",
        "AddLicenses",
        "RemoveLicenses",
        "UsageLocation",
        "Groups",
        "Action",
    ]
    rows = [
        [u["userPrincipalName"], u.get("department") or "", "EMS; FLOW_FREE", "", "", "", ""]
        for u in hires
    ]
    rows[0][5] = rows[1][5] = "Sales Team"
    rows.append([promoted["userPrincipalName"], "Sales", "SPE_E5", "SPE_E3", "", "", ""])
    rows.append(["nadia.nolocation@contoso.example", "HR", "FLOW_FREE", "", "GB", "", ""])
    rows += [[u["userPrincipalName"], "", "", "", "", "", "offboard"] for u in leavers]
    return headers, rows


def upns_of(rows: Sequence[Sequence[str]]) -> list[str]:
    return [row[0] for row in rows]


def report_rows(path: Path) -> list[dict[str, str]]:
    """The ``Rows`` sheet of a report workbook as dicts of text (the workbook is closed)."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        values = list(book["Rows"].iter_rows(values_only=True))
    finally:
        book.close()
    headers = [str(h) for h in values[0]]
    return [
        {h: ("" if v is None else str(v)) for h, v in zip(headers, row, strict=False)}
        for row in values[1:]
    ]
