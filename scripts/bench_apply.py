"""Benchmark the onboarding job end to end on the simulated tenant, and print the figures.

    python scripts/bench_apply.py            # both parts
    python scripts/bench_apply.py apply      # 10,000-row apply at 200 writes/s
    python scripts/bench_apply.py plan       # 100,000-row plan on a 100,000-user tenant

apply: a tenant of 12,000 users, a sheet of 10,000 users who each need one license, the
write quota at 200 writes/s (Graph's 3,000 per 150 s, time-scaled x10). The lower bound is
operations / quota; the target is at most 1.2x that, end to end (process start, plan,
writes, read-back and report).

plan: a tenant of 100,000 users and a sheet naming every one of them; ``m365batch plan`` in
a subprocess, its wall time and peak memory (targets: <= 15 s, < 1 GB; the memory is the
CLI process's alone: the simulator serves from this script's process), then, for where
the time goes, the plan prepared again and its report workbook written in this process.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator
from batch.simulator.seed import generate_tenant

FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"
PLAN_SECONDS = 15.0  #: target wall time of the 100,000-row plan
PLAN_MB = 1024.0  #: target peak memory of the plan's process


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def tenant_env(sim: RunningSimulator, home: Path) -> dict[str, str]:
    return {**os.environ, "M365BATCH_HOME": str(home), **sim.environment()}


def make_tenant(folder: Path, users: int) -> tuple[Path, list[str]]:
    """A generated tenant with Power Automate seats for everyone; the users who lack it."""
    tenant = generate_tenant(users=users, seed=1)
    for sku in tenant["skus"]:
        if sku["skuId"] == FLOW_FREE:
            sku["prepaidUnits"]["enabled"] = users * 2
    seed = folder / "seed.json"
    seed.write_text(json.dumps(tenant), encoding="utf-8")
    in_groups = {
        m
        for g in tenant["groups"]
        for m in g["members"]
        if any(a["skuId"] == FLOW_FREE for a in g.get("assignedLicenses", []))
    }
    lacking = [
        u["userPrincipalName"]
        for u in tenant["users"]
        if u["accountEnabled"]
        and u.get("usageLocation")
        and u["id"] not in in_groups
        and not any(lic["skuId"] == FLOW_FREE for lic in u.get("licenses", []))
    ]
    return seed, lacking


def write_sheet(path: Path, upns: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["UserPrincipalName", "AddLicenses"])
        writer.writerows([upn, "FLOW_FREE"] for upn in upns)
    return path


def run_measured(
    args: list[str], env: dict[str, str]
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run a command; return (seconds, peak RSS in MB, result)."""
    peak = [0.0]
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watcher = psutil.Process(proc.pid)

    def watch() -> None:
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], watcher.memory_info().rss / 2**20)
            except psutil.Error:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    thread.join()
    return elapsed, peak[0], subprocess.CompletedProcess(args, proc.returncode, out, err)


def bench_apply(folder: Path) -> None:
    rows, quota = 10_000, 200.0
    seed, lacking = make_tenant(folder, 14_000)
    upns = lacking[:rows]
    assert len(upns) == rows, len(upns)
    sheet = write_sheet(folder / "hires.csv", upns)
    options = SimulatorOptions(seed=3, time_scale=10)  # 3,000 writes per 15 s = 200/s
    with start_simulator(folder / "sim", options, seed_path=seed) as sim:
        env = tenant_env(sim, folder / "home")
        report = folder / "apply.xlsx"
        elapsed, peak, result = run_measured(
            [sys.executable, "-m", "batch", "apply", str(sheet), "--yes", "--output", str(report)],
            env,
        )
        if result.returncode != 0:
            print(result.stdout, result.stderr)
            raise SystemExit(f"apply exited {result.returncode}")
        applied = sum(
            1 for (target, op), n in sim.store.applied_writes().items() if op == "assignLicense"
        )
    bound = rows / quota
    print(f"apply: {rows:,} rows, {applied:,} assignLicense applied, quota {quota:.0f} writes/s")
    print(
        f"apply: end to end {elapsed:.1f} s; lower bound {bound:.1f} s; "
        f"ratio {elapsed / bound:.2f}x"
        f" (target <= 1.20x); peak RSS {peak:.0f} MB"
    )
    print("apply: " + result.stdout.strip().splitlines()[-2])
    print("apply: " + "; ".join(f"{k} {v}" for k, v in summary_counters(report).items()))


def summary_counters(report: Path) -> dict[str, object]:
    """The engine's counters from the report's Summary sheet."""
    import openpyxl

    sheet = openpyxl.load_workbook(report, read_only=True)["Summary"]
    wanted = (
        "Requests sent ($batch)",
        "Throttled answers (429)",
        "Retries",
        "Seconds writing",
        "Started",
        "Finished",
    )
    return {row[0]: row[1] for row in sheet.iter_rows(values_only=True) if row and row[0] in wanted}


def bench_plan(folder: Path) -> None:
    users = 100_000
    seed, _ = make_tenant(folder, users)
    tenant = json.loads(seed.read_text(encoding="utf-8"))
    sheet = write_sheet(folder / "everyone.csv", [u["userPrincipalName"] for u in tenant["users"]])
    del tenant
    started = time.perf_counter()
    with start_simulator(folder / "sim", SimulatorOptions(seed=3), seed_path=seed) as sim:
        print(f"plan: simulator loaded {users:,} users in {time.perf_counter() - started:.1f} s")
        env = tenant_env(sim, folder / "home")
        elapsed, peak, result = run_measured(
            [
                sys.executable,
                "-m",
                "batch",
                "plan",
                str(sheet),
                "--output",
                str(folder / "plan.xlsx"),
            ],
            env,
        )
        if result.returncode not in (0, 3):
            print(result.stdout, result.stderr)
            raise SystemExit(f"plan exited {result.returncode}")
        print(
            f"plan: {users:,} rows on a {users:,}-user tenant: {elapsed:.1f} s wall "
            f"(target <= {PLAN_SECONDS:.0f} s: {verdict(elapsed <= PLAN_SECONDS)}), "
            f"peak RSS of the CLI process {peak:.0f} MB "
            f"(target < {PLAN_MB:,.0f} MB: {verdict(peak < PLAN_MB)})"
        )
        print("plan: " + result.stdout.strip().splitlines()[0])

        # the report on its own, in this process
        from batch.config import load_settings
        from batch.graph.client import GraphClient
        from batch.jobs.onboarding import RunOptions, prepare, write_plan_report

        os.environ.update(
            {k: v for k, v in env.items() if k.startswith(("AZURE_", "M365BATCH_", "REQUESTS_"))}
        )
        settings = load_settings()
        t0 = time.perf_counter()
        prepared = prepare(GraphClient(settings), sheet, RunOptions())
        t1 = time.perf_counter()
        write_plan_report(prepared, settings.describe(), folder / "plan-again.xlsx")
        t2 = time.perf_counter()
        print(
            f"plan: in this process (the simulator's thread competing): prepare "
            f"{t1 - t0:.1f} s, report workbook for {users:,} rows {t2 - t1:.1f} s"
        )


def main() -> None:
    which = sys.argv[1:] or ["apply", "plan"]
    with tempfile.TemporaryDirectory(prefix="m365batch-bench-") as tmp:
        for name in which:
            folder = Path(tmp) / name
            folder.mkdir()
            {"apply": bench_apply, "plan": bench_plan}[name](folder)


if __name__ == "__main__":
    main()
