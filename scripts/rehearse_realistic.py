"""Rehearse onboarding against the simulated tenant's realistic preset, and print the figures.

    python scripts/rehearse_realistic.py               # real time (lags of seconds)
    python scripts/rehearse_realistic.py --time-scale 10

The tenant is the sample one with 500 EMS seats; 60 of 200 chosen users have no usage
location. Two sheets are applied with the realistic preset (read-after-write lag, the usage
location's replication lag, 5% of writes answered 429): the sample onboarding sheet, then a
sheet of those 200 users (each gets EMS; the 60 get a usage location first). Then both are
applied again. What must hold: no ``$batch`` refused, no ``assignLicense`` refused except
the usage-location lag (which the engine retries), every applied row ``Verified`` Yes, and
the second applies write nothing.

The second apply of a sheet starts once the read lag's window has passed since the first
ended: inside it, Graph may still show a reader the state before a write (eventual
consistency), and a plan made from such a read re-sends an add Graph then accepts as is.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from batch.simulator import SimulatorOptions, load_sample, start_simulator

ROOT = Path(__file__).resolve().parents[1]
EMS = "EMS"
USERS = 200
WITHOUT_LOCATION = 60


def realistic_seed() -> tuple[dict[str, Any], list[list[str]]]:
    """The sample tenant with room for 200 more EMS users, and the sheet that adds them."""
    seed = load_sample()
    ems_id = next(s["skuId"] for s in seed["skus"] if s["skuPartNumber"] == EMS)
    for sku in seed["skus"]:
        if sku["skuId"] == ems_id:
            sku["prepaidUnits"]["enabled"] = 500
    by_group = {  # users who get EMS from a group are left out
        m
        for g in seed["groups"]
        if any(lic["skuId"] == ems_id for lic in g["assignedLicenses"])
        for m in g["members"]
    }
    chosen = [
        u
        for u in seed["users"]
        if u["accountEnabled"]
        and u.get("userType", "Member") == "Member"
        and u["id"] not in by_group
        and u.get("usageLocation")
        and all(lic["skuId"] != ems_id for lic in u.get("licenses", []))
    ][:USERS]
    if len(chosen) < USERS:
        raise SystemExit(f"the sample has only {len(chosen)} users to choose from")
    rows = []
    for index, user in enumerate(chosen):
        location = ""
        if index % 10 < 3:  # 30% of the sheet: no usage location in the tenant
            location = user["usageLocation"]
            user["usageLocation"] = None
        rows.append([user["userPrincipalName"], user.get("department") or "", EMS, location])
    return seed, rows


def verified_counts(report: Path) -> dict[str, int]:
    """How many rows of a run report are Applied, and of those how many are Verified Yes."""
    book = load_workbook(report, read_only=True)
    try:
        rows = list(book["Rows"].iter_rows(values_only=True))
    finally:
        book.close()
    header = list(rows.pop(0))
    status, verified = header.index("Status"), header.index("Verified")
    counts = {"rows": 0, "applied": 0, "verified": 0}
    for row in rows:
        counts["rows"] += 1
        if row[status] == "Applied":
            counts["applied"] += 1
            counts["verified"] += row[verified] == "Yes"
    return counts


def rehearse(workdir: Path, time_scale: float = 1.0) -> dict[str, Any]:
    """Run the rehearsal in ``workdir``; return the simulator's counters and the reports'."""
    seed, rows = realistic_seed()
    seed_path = workdir / "seed.json"
    seed_path.write_text(json.dumps(seed), encoding="utf-8")
    sheet = workdir / "ems-200.csv"
    with sheet.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["UserPrincipalName", "Department", "AddLicenses", "UsageLocation"])
        writer.writerows(rows)
    options = SimulatorOptions.realistic(seed=11, time_scale=time_scale)
    figures: dict[str, Any] = {}
    with start_simulator(workdir / "sim", options, seed_path=seed_path) as sim:
        env = {**os.environ, "M365BATCH_HOME": str(workdir / "home"), **sim.environment()}
        for label, path in (
            ("onboarding", ROOT / "samples" / "onboarding.xlsx"),
            ("ems-200", sheet),
        ):
            for attempt in ("first", "second"):
                if attempt == "second":  # let the directory converge, as a person would
                    time.sleep(options.scaled(options.read_lag_window))
                writes_before = sim.counters["writes"]
                report = workdir / f"{label}-{attempt}.xlsx"
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "batch", "apply", str(path), "--yes"]
                    + ["--output", str(report)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                figures[f"{label} {attempt}"] = {
                    "exit": done.returncode,
                    "seconds": round(time.perf_counter() - started, 1),
                    "writes": sim.counters["writes"] - writes_before,
                    **(verified_counts(report) if report.exists() else {}),
                    "stderr": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
                }
        figures["counters"] = {
            k: v
            for k, v in sorted(sim.counters.snapshot().items())
            if k.startswith(("batch", "answer_", "throttled", "writes", "fault_", "requests"))
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = rehearse(Path(tmp), args.time_scale)
    for name, value in figures.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
