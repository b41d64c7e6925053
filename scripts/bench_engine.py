"""Benchmark the batch engine against the simulated tenant and print the figures.

Scenarios (the simulator runs in this process, over real HTTPS, with msal):

1. ``clean``: N assignLicense operations, 200 ms latency per request plus 10 ms per batch
   item, write quota 3,000 per 150 s time-scaled x10 (= 200 writes/s).
2. ``faults``: the same N users (taking the license away again) with 5 % of items failing
   with 503/504 and 1 % lost acknowledgements (applied, then answered 504).
3. ``sequential``: one request per user in a loop, as the common PowerShell scripts do, for
   a bounded number of users, on the same simulator; the speed-up is printed.

Checks printed with the figures: every operation has a result, none is lost, and the
simulator's own counters show no write applied twice.

Usage::

    python scripts/bench_engine.py                 # 5,000 operations
    python scripts/bench_engine.py --ops 1000 --sequential-ops 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.graph.engine import BatchEngine, EngineSettings, EngineStats, assign_license
from batch.simulator import SimulatorOptions, start_simulator
from batch.simulator.seed import generate_tenant


def tenant_file(folder: Path, users: int) -> tuple[Path, str]:
    """A generated tenant with one user-assignable SKU big enough for every user.

    Users start unlicensed with a usage location, so that every assignment is valid and
    the figures measure the engine, not the sample data's deliberate conflicts.
    """
    tenant = generate_tenant(users=users, seed=1)
    for user in tenant["users"]:
        user["licenses"] = []
        user["usageLocation"] = user.get("usageLocation") or "US"
    for group in tenant["groups"]:
        group["assignedLicenses"] = []
    skus = [
        s
        for s in tenant["skus"]
        if s.get("appliesTo") == "User" and s.get("capabilityStatus") == "Enabled"
    ]
    sku = skus[0]
    sku["prepaidUnits"]["enabled"] = users * 3
    path = folder / "tenant.json"
    path.write_text(json.dumps(tenant), encoding="utf-8")
    return path, sku["skuId"]


def client_settings(sim: Any, home: Path) -> Settings:
    """Settings that point the Graph client at the running simulated tenant."""
    return Settings(
        home=home,
        tenant_id=sim.tenant_id,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        authority_host=sim.authority_host,
        graph_url=sim.graph_url,
        ca_bundle=str(sim.ca_path),
    )


def _run(
    client: GraphClient, ops: list[Any], label: str
) -> tuple[dict[str, Any], EngineStats, float]:
    last = [0.0]

    def progress(stats: EngineStats) -> None:
        if stats.elapsed - last[0] >= 5:
            last[0] = stats.elapsed
            print(
                f"  [{label}] {stats.finished}/{len(ops)} done, rate {stats.rate}/s, "
                f"429s {stats.throttled_items}, in flight <= {stats.concurrency}",
                flush=True,
            )

    engine = BatchEngine(client, EngineSettings(verify_delay=0.2), on_progress=progress)
    started = time.monotonic()
    stats = engine.run(ops, total=len(ops))
    return engine.results, stats, time.monotonic() - started


def _report(
    label: str,
    ops: list[Any],
    results: dict[str, Any],
    stats: EngineStats,
    elapsed: float,
    quota: float,
    before: dict[Any, int],
    after: dict[Any, int],
    users: list[str],
) -> float:
    outcomes = Counter(r.outcome.value for r in results.values())
    done = sum(1 for r in results.values() if r.outcome.done)
    deltas = Counter(
        after.get((u, "assignLicense"), 0) - before.get((u, "assignLicense"), 0) for u in users
    )
    rate = done / elapsed
    print(f"\n== {label}: {len(ops)} operations in {elapsed:.1f} s")
    print(
        f"  throughput        {rate:.1f} writes/s = {rate / quota:.1%} of the {quota:.0f}/s quota"
    )
    print(
        f"  $batch requests   {stats.requests} ({stats.items_sent} items sent, "
        f"{stats.retries} resent)"
    )
    print(
        f"  answered 429      {stats.throttled_items} items = "
        f"{stats.throttled_items / max(1, stats.items_sent):.1%} of items sent "
        f"({stats.throttled_requests} whole requests)"
    )
    print(f"  read-backs        {stats.verifications}")
    print(f"  outcomes          {dict(outcomes)}")
    print(f"  accounted for     {len(results)}/{len(ops)}; lost: {len(ops) - len(results)}")
    print(f"  applied per user  {dict(sorted(deltas.items()))} (1 = exactly once)")
    ok = len(results) == len(ops) and done == len(ops) and set(deltas) == {1}
    print(f"  verdict           {'OK' if ok else 'PROBLEM'}")
    return rate


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--sequential-ops", type=int, default=60)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--item-latency-ms", type=int, default=10)
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument(
        "--write-quota",
        type=int,
        default=3000,
        help="writes per 150 s window before time scaling (Graph: 3,000)",
    )
    parser.add_argument("--skip-faults", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="m365batch-bench-") as tmp:
        folder = Path(tmp)
        seed_path, sku = tenant_file(folder, args.ops + args.sequential_ops)
        options = SimulatorOptions(
            seed=3,
            time_scale=args.time_scale,
            latency_ms=args.latency_ms,
            item_latency_ms=args.item_latency_ms,
            write_quota=args.write_quota,
        )
        quota = options.write_quota / options.scaled(options.write_window)
        t0 = time.monotonic()
        sim = start_simulator(folder / "sim", options, seed_path=seed_path)
        try:
            print(
                f"simulator up in {time.monotonic() - t0:.1f} s: quota {quota:.0f} writes/s, "
                f"latency {args.latency_ms} ms + {args.item_latency_ms} ms/item"
            )
            client = GraphClient(client_settings(sim, folder / "home"))
            everyone = [u["id"] for u in client.get_all("/users", {"$select": "id", "$top": 999})]
            users = everyone[: args.ops]
            sequential_users = everyone[args.ops : args.ops + args.sequential_ops]

            # 1. clean run.
            ops = [
                assign_license(f"row {i + 2}", uid, add={sku: []}) for i, uid in enumerate(users)
            ]
            before = sim.store.applied_writes()
            results, stats, elapsed = _run(client, ops, "clean")
            engine_rate = _report(
                "clean",
                ops,
                results,
                stats,
                elapsed,
                quota,
                before,
                sim.store.applied_writes(),
                users,
            )

            # 2. faults: take the license away again under 503/504 and lost acks.
            if not args.skip_faults:
                time.sleep(options.scaled(options.write_window))  # let the quota refill
                sim.options.fault_item_503 = 0.025
                sim.options.fault_item_504 = 0.025
                sim.options.fault_lost_ack = 0.01
                sim.options.faults_writes_only = True
                ops = [
                    assign_license(f"row {i + 2}", uid, remove=[sku]) for i, uid in enumerate(users)
                ]
                before = sim.store.applied_writes()
                results, stats, elapsed = _run(client, ops, "faults")
                _report(
                    "5% 503/504 + 1% lost acks",
                    ops,
                    results,
                    stats,
                    elapsed,
                    quota,
                    before,
                    sim.store.applied_writes(),
                    users,
                )
                sim.options.fault_item_503 = sim.options.fault_item_504 = 0.0
                sim.options.fault_lost_ack = 0.0

            # 3. sequential one-request-per-user loop on the same simulator.
            started = time.monotonic()
            for uid in sequential_users:
                client.post(
                    f"/users/{uid}/assignLicense",
                    {"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []},
                )
            seq_elapsed = time.monotonic() - started
            seq_rate = len(sequential_users) / seq_elapsed
            print(
                f"\n== sequential loop: {len(sequential_users)} users in {seq_elapsed:.1f} s "
                f"= {seq_rate:.1f} writes/s"
            )
            print(f"   engine / sequential = {engine_rate / seq_rate:.1f}x")
        finally:
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
