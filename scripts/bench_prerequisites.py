"""Benchmark how the engine sends prerequisites (``PATCH usageLocation`` before
``assignLicense``) against the simulated tenant, and print the figures per strategy.

Graph accepts three ``dependsOn`` shapes in one ``$batch`` (parallel, serial, all on the
same item) and refuses anything else whole with 400 "Batch should be either fully
sequential or fully parallel" (graph-reference.md sections 1 and 11). Two ways to stay
legal:

- ``pair``: an operation whose prerequisite is pending goes with it as a two-item serial
  chain in a ``$batch`` of its own; every other operation goes in fully parallel batches;
- ``wave``: no ``dependsOn`` at all. The prerequisite goes alone as a plain item of a
  parallel batch; once it is acknowledged the operation goes in a later batch.

The engine does ``wave`` (it was faster, see ``batch/engine.py``); ``pair`` lives on here
only, as :class:`PairEngine`, so that the comparison can be made again.

The sheet: N ``assignLicense`` operations, a share of them for users without a usage
location (so with a prerequisite). Each strategy runs on a fresh simulator seeded from the
same tenant, with per-request latency, per-item latency, the write quota time-scaled and a
usage-location replication lag (assignLicense answers "invalid usage location" for that
long after the PATCH; the engine retries it).

Usage::

    python scripts/bench_prerequisites.py                    # 2,000 operations, 30 %
    python scripts/bench_prerequisites.py --ops 500 --repeat 2
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.graph.engine import (
    BatchEngine,
    EngineSettings,
    EngineStats,
    Operation,
    _Batch,
    assign_license,
)
from batch.graph.policy import Unit as _Unit
from batch.simulator import SimulatorOptions, start_simulator
from batch.simulator.seed import generate_tenant

STRATEGIES = ("pair", "wave")


class PairEngine(BatchEngine):
    """The rejected strategy: a pending prerequisite and its operation as a serial chain in
    a ``$batch`` of their own; every other operation in fully parallel batches."""

    def _build(self, now: float) -> _Batch | None:
        units: list[_Unit] = []
        items: list[dict[str, Any]] = []
        aside: list[tuple[float, int, _Unit]] = []
        while self._ready and self._ready[0][0] <= now and len(items) < self.settings.batch_size:
            entry = heapq.heappop(self._ready)
            unit = entry[2]
            if unit.prereq_done:
                units.append(unit)
                items.append(unit.op.item(str(len(items) + 1)))
            elif units:
                aside.append(entry)  # waits for a batch of its own
            else:
                assert unit.op.prerequisite is not None
                chain = [unit.op.prerequisite.item("1"), {**unit.op.item("2"), "dependsOn": ["1"]}]
                return _Batch([unit], chain, {unit: ("1", "2")})
        for entry in aside:
            heapq.heappush(self._ready, entry)
        ids: dict[_Unit, tuple[str | None, str | None]] = {
            unit: (None, item["id"]) for unit, item in zip(units, items, strict=True)
        }
        return _Batch(units, items, ids) if units else None


def _tenant_file(folder: Path, users: int, share: float) -> tuple[Path, str, set[str]]:
    """A tenant of unlicensed users, ``share`` of them without a usage location."""
    tenant = generate_tenant(users=users, seed=1)
    rng = random.Random(5)
    lacking: set[str] = set()
    for user in tenant["users"]:
        user["licenses"] = []
        user["accountEnabled"] = True
        if rng.random() < share:
            user["usageLocation"] = None
            lacking.add(user["id"])
        else:
            user["usageLocation"] = user.get("usageLocation") or "US"
    for group in tenant["groups"]:
        group["assignedLicenses"] = []
    sku = next(
        s
        for s in tenant["skus"]
        if s.get("appliesTo") == "User" and s.get("capabilityStatus") == "Enabled"
    )
    sku["prepaidUnits"]["enabled"] = users * 3
    path = folder / "tenant.json"
    path.write_text(json.dumps(tenant), encoding="utf-8")
    return path, sku["skuId"], lacking


def _settings(sim: Any, home: Path) -> Settings:
    return Settings(
        home=home,
        tenant_id=sim.tenant_id,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        authority_host=sim.authority_host,
        graph_url=sim.graph_url,
        ca_bundle=str(sim.ca_path),
    )


def _operations(users: list[str], sku: str, lacking: set[str]) -> list[Operation]:
    return [
        assign_license(
            f"row {i + 2}", uid, add={sku: []}, usage_location="FR" if uid in lacking else None
        )
        for i, uid in enumerate(users)
    ]


def _check(sim: Any, users: list[str]) -> str:
    """The simulator's own count of assignLicense writes applied per user."""
    applied = sim.store.applied_writes()
    writes = Counter(applied.get((u, "assignLicense"), 0) for u in users)
    return f"assignLicense applied per user {dict(sorted(writes.items()))} (1 = exactly once)"


def _run_one(
    args: argparse.Namespace,
    strategy: str,
    seed_path: Path,
    sku: str,
    lacking: set[str],
    folder: Path,
) -> dict[str, Any]:
    options = SimulatorOptions(
        seed=3,
        time_scale=args.time_scale,
        latency_ms=args.latency_ms,
        item_latency_ms=args.item_latency_ms,
        usage_location_lag=args.lag * args.time_scale,
    )
    sim = start_simulator(folder / f"sim-{strategy}", options, seed_path=seed_path)
    try:
        client = GraphClient(_settings(sim, folder / f"home-{strategy}"))
        users = [u["id"] for u in client.get_all("/users", {"$select": "id", "$top": 999})]
        users = users[: args.ops]
        ops = _operations(users, sku, lacking)
        engine_class = PairEngine if strategy == "pair" else BatchEngine
        engine = engine_class(client, EngineSettings(verify_delay=0.2))
        started = time.monotonic()
        stats: EngineStats = engine.run(ops, total=len(ops))
        elapsed = time.monotonic() - started
        needing = lacking & set(users)
        located = [
            u["usageLocation"]
            for u in client.get_all("/users", {"$select": "id,usageLocation", "$top": 999})
            if u["id"] in needing
        ]
        outcomes = Counter(r.outcome.value for r in engine.results.values())
        return {
            "strategy": strategy,
            "ops": len(ops),
            "with_prerequisite": sum(1 for op in ops if op.prerequisite is not None),
            "wall": elapsed,
            "requests": stats.requests,
            "items": stats.items_sent,
            "throttled": stats.throttled_items,
            "lag_retries": stats.lag_retries,
            "retries": stats.retries,
            "outcomes": dict(outcomes),
            "locations_ok": all(loc == "FR" for loc in located),
            "check": _check(sim, users),
        }
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    """Run each strategy on a fresh simulator and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--share", type=float, default=0.3, help="share with a prerequisite")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--item-latency-ms", type=int, default=10)
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--lag", type=float, default=1.5, help="replication lag, real seconds")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args(argv)
    strategies = args.strategies.split(",")
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    with tempfile.TemporaryDirectory(prefix="m365batch-bench-") as tmp:
        folder = Path(tmp)
        seed_path, sku, lacking = _tenant_file(folder, args.ops, args.share)
        print(
            f"{args.ops} operations, {args.share:.0%} with a usageLocation prerequisite; "
            f"latency {args.latency_ms} ms + {args.item_latency_ms} ms/item, quota "
            f"{3000 / (150 / args.time_scale):.0f} writes/s, lag {args.lag} s"
        )
        for n in range(args.repeat):
            order = strategies if n % 2 == 0 else strategies[::-1]
            for strategy in order:
                result = _run_one(args, strategy, seed_path, sku, lacking, folder / str(n))
                runs[strategy].append(result)
                print(
                    f"  [{strategy}] {result['wall']:.1f} s, {result['requests']} requests, "
                    f"{result['items']} items, 429s {result['throttled']}, lag retries "
                    f"{result['lag_retries']}; {result['outcomes']}; locations "
                    f"{'OK' if result['locations_ok'] else 'WRONG'}; {result['check']}",
                    flush=True,
                )
    print(f"\n{'strategy':<10}{'wall s':>9}{'requests':>10}{'items':>8}{'429s':>7}{'lag':>6}")
    for strategy, results in runs.items():
        print(
            f"{strategy:<10}{statistics.median(r['wall'] for r in results):>9.1f}"
            f"{statistics.median(r['requests'] for r in results):>10.0f}"
            f"{statistics.median(r['items'] for r in results):>8.0f}"
            f"{statistics.median(r['throttled'] for r in results):>7.0f}"
            f"{statistics.median(r['lag_retries'] for r in results):>6.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
