"""Kill -9 trials: apply, killed while writes are in flight, resume, undo; licenses restored?

    python scripts/trial_kill_undo.py              # 20 trials of 600 rows
    python scripts/trial_kill_undo.py 5 200        # 5 trials of 200 rows

Each trial starts a fresh simulated tenant (a generated directory) with lost
acknowledgements on (the write is applied, then 504 is answered: ``fault_lost_ack``), takes
an ``export`` of the tenant, starts ``apply`` on a sheet that gives each of N users a license,
kills it with SIGKILL once a random number of writes are journaled as sent, runs
``resume`` and then ``undo RUN --yes``, and takes a second ``export``. The two exports must
be the same sheet: every license the run granted is taken back. Prints one line per trial
and the totals.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch.run.journal import list_runs
from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator
from batch.simulator.seed import generate_tenant

FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"
LOST_ACK = 0.1


def make_seed(folder: Path, rows: int) -> tuple[Path, list[str]]:
    """A generated tenant with Power Automate seats for all; ``rows`` users who lack it."""
    tenant = generate_tenant(users=int(rows * 1.8) + 100, seed=5)
    for sku in tenant["skus"]:
        if sku["skuId"] == FLOW_FREE:
            sku["prepaidUnits"]["enabled"] = len(tenant["users"]) * 2
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
    if len(lacking) < rows:
        raise SystemExit(f"only {len(lacking)} users lack the license; ask for fewer rows")
    seed = folder / "seed.json"
    seed.write_text(json.dumps(tenant), encoding="utf-8")
    return seed, lacking[:rows]


def environment(sim: RunningSimulator, home: Path) -> dict[str, str]:
    return {**os.environ, "M365BATCH_HOME": str(home), **sim.environment()}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def export_rows(env: dict[str, str], path: Path) -> list[list[str]]:
    result = cli(env, "export", "--csv", "--output", str(path))
    if result.returncode != 0:
        raise SystemExit(f"export exited {result.returncode}: {result.stderr}")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def kill_during_writes(env: dict[str, str], home: Path, sheet: Path, after: int) -> int:
    """Start apply, SIGKILL it once ``after`` writes are journaled as sent; writes sent."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", "apply", str(sheet), "--yes", "--output", "r.xlsx"],
        env=env,
        cwd=home.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    sent = 0
    while proc.poll() is None and time.monotonic() < deadline:
        runs = list_runs(home) if (home / "runs").is_dir() else []
        if runs:
            sent = sum(n for state, n in runs[0].counts.items() if state != "planned")
            if sent >= after:
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return sent


def until_finished(
    env: dict[str, str], result: subprocess.CompletedProcess[str], run_id: str
) -> subprocess.CompletedProcess[str]:
    """As the tool advises when its breaker stops a run (exit 4): resume it, up to 3 times."""
    for _ in range(3):
        if result.returncode != 4:
            break
        result = cli(env, "resume", run_id, "--yes")
    return result


def trial(number: int, rows: int, rng: random.Random) -> bool:
    with tempfile.TemporaryDirectory(prefix="kill-trial-") as tmp:
        folder = Path(tmp)
        seed, upns = make_seed(folder, rows)
        sheet = folder / "hires.csv"
        with sheet.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["UserPrincipalName", "AddLicenses"])
            writer.writerows([upn, "FLOW_FREE"] for upn in upns)
        options = SimulatorOptions(seed=number, time_scale=20, fault_lost_ack=LOST_ACK)
        with start_simulator(folder / "sim", options, seed_path=seed) as sim:
            home = folder / "home"
            env = environment(sim, home)
            before = export_rows(env, folder / "before.csv")
            sent = kill_during_writes(env, home, sheet, rng.randint(rows // 10, rows * 9 // 10))
            run_id = list_runs(home)[0].run_id
            granted_killed = _holders(sim, upns)
            resumed = until_finished(env, cli(env, "resume", run_id), run_id)
            granted = _holders(sim, upns)
            undone = cli(env, "undo", run_id, "--yes", "--max-removals", str(rows))
            undone = until_finished(env, undone, list_runs(home)[0].run_id)
            after = export_rows(env, folder / "after.csv")
            left = _holders(sim, upns)
            same = before == after
            print(
                f"trial {number:2d}: killed after {sent} sent ({granted_killed} granted); "
                f"resume exit {resumed.returncode}, {granted} granted; "
                f"undo exit {undone.returncode}, {granted - left} taken back, {left} left; "
                f"exports {'identical' if same else 'DIFFER'}"
            )
            if not same or undone.returncode or resumed.returncode:
                print(resumed.stdout + resumed.stderr + undone.stdout + undone.stderr)
            return same and left == 0


def _holders(sim: object, upns: list[str]) -> int:
    """How many of the users hold the license now (straight from the simulator's store)."""
    store = sim.store  # type: ignore[attr-defined]
    return sum(
        1
        for upn in upns
        if any(lic["skuId"] == FLOW_FREE for lic in store.user(upn).get("assignedLicenses", []))
    )


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    rng = random.Random(11)
    started = time.perf_counter()
    good = sum(trial(n, rows, rng) for n in range(1, trials + 1))
    print(
        f"{good} of {trials} trials restored every license "
        f"({rows} rows, lost acknowledgements {LOST_ACK:.0%}); "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
