"""Benchmark the engine's pacing against Graph's write quota; print figures and PASS/FAIL.

For each request latency (200 ms and 30 ms, plus 10 ms per ``$batch`` item), write quota
(20, 100 and 200 writes/s) and quota window (1 s and Graph's 150 s), the engine sends
assignLicense operations over HTTPS to the simulated tenant (20,000 users, one simulator
for every case, msal sign-in), exactly as ``apply`` does. Printed per case: items sent,
items answered 429 and their share, quota use, wall time, the rate and window the pacer
learnt, and PASS/FAIL against the targets: **at most 5 % of the write items sent answered
429, and quota use at least 95 %**.

How the cases are set up:

- *Quota*: ``q`` writes per second of wall time, as a sliding log of ``write_quota`` writes
  per ``write_window`` (the simulator's throttle, ``batch/simulator/throttle.py``).
- *1 s window*: ``write_window`` 1 s, ``write_quota`` q, ``time_scale`` 1.
- *150 s window*: ``write_window`` 150 s shortened by ``time_scale`` (default 10: the window
  lasts 15 s of wall time, and every Retry-After is 10x shorter); ``write_quota`` is
  ``q x 150 / time_scale`` (300, 1,500 and 3,000 writes per window at 10) so that the
  sustained quota stays q writes per second of wall time. The shape is Graph's: a first
  window's worth of writes goes at once, then hard throttling with a long Retry-After.
- *Run length*: enough operations for the quota to be the bound: ``--seconds`` (30 s) of
  writes at q for the 1 s window, ``--windows`` (4) windows' worth for the 150 s one.
- The per-tenant write quota (18,000 per 300 s) is moved out of the way (it is another
  limit, and successive cases on one simulator would add up against it); the resource-unit
  quota stays (writes cost 1 RU; it does not bind here). Between cases the script waits for
  the last window to empty.

*Quota use* is measured on the simulator's side, from the times it admitted each write:
accepted writes per second over the quota-bound part of the run, divided by q. The
quota-bound part starts one window after the first write, and no earlier than the first
item answered 429: during the first window Graph lets a whole window's worth of writes
through at once (with the 150 s window that burst is free quota: counting it would put
the use above 100 %), and the pacer starts below any quota and ramps up until the service
first pushes back (with the 1 s window that takes a few seconds, which a longer run makes
up for). It ends at the last write admitted, or with a long window at the end of the last
whole window before it (a pacer that fills each window as the service frees it sends in
bursts: a part of a window ending on a burst would count above 100 %). ``overall`` is the
whole run's accepted writes per second of wall time over q, ramp and first burst included.

Figures are wall-clock figures: on a loaded machine latencies stretch and the engine's
threads are late, which costs quota use and adds 429s.

Usage::

    python scripts/bench_pacing.py                           # every case (about 15 minutes)
    python scripts/bench_pacing.py --quotas 100 --windows-s 1 --latencies 200
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_engine import client_settings, tenant_file

from batch.graph.client import GraphClient
from batch.graph.engine import BatchEngine, EngineSettings, EngineStats, assign_license
from batch.simulator import SimulatorOptions, start_simulator

MAX_SHARE_429 = 0.05
MIN_QUOTA_USE = 0.95
USERS = 20_000


@dataclass
class Case:
    """One (latency, quota, window) combination and how it is simulated."""

    latency_ms: int
    quota: int  #: writes per second of wall time
    window: float  #: the service's window, in simulated seconds
    time_scale: float

    @property
    def wall_window(self) -> float:
        return self.window / self.time_scale

    @property
    def write_quota(self) -> int:
        return round(self.quota * self.wall_window)


@dataclass
class Figures:
    """What one case measured."""

    items: int
    throttled: int
    quota_use: float
    overall: float
    wall: float
    learnt_rate: float
    learnt_window: float | None
    outcomes_ok: bool

    @property
    def share(self) -> float:
        return self.throttled / max(1, self.items)

    @property
    def passed(self) -> bool:
        return self.outcomes_ok and self.share <= MAX_SHARE_429 and self.quota_use >= MIN_QUOTA_USE


class Pool:
    """The tenant's users, handed out in turn; a user holding the SKU gets it removed."""

    def __init__(self, users: list[str], sku: str) -> None:
        self.users, self.sku = users, sku
        self.holding: set[str] = set()
        self.next = 0

    def operations(self, count: int) -> list[Any]:
        ops = []
        for i in range(count):
            uid = self.users[(self.next + i) % len(self.users)]
            if uid in self.holding:
                ops.append(assign_license(f"row {i + 2}", uid, remove=[self.sku]))
            else:
                ops.append(assign_license(f"row {i + 2}", uid, add={self.sku: []}))
        self.next += count
        return ops

    def applied(self, op: Any) -> None:
        uid = op.url.split("/")[2]
        self.holding ^= {uid}


def run_case(sim: Any, client: GraphClient, pool: Pool, case: Case, args: Any) -> Figures:
    """Configure the simulator for ``case``, run the engine, measure."""
    opts = sim.options
    opts.latency_ms, opts.item_latency_ms = case.latency_ms, args.item_latency_ms
    opts.time_scale, opts.write_window, opts.write_quota = (
        case.time_scale,
        case.window,
        case.write_quota,
    )
    seconds = args.windows * case.wall_window if case.window > 1 else args.seconds
    ops = pool.operations(round(case.quota * seconds))
    by_key = {op.key: op for op in ops}
    first_429: list[float] = []

    def progress(stats: EngineStats) -> None:
        if stats.throttled_items and not first_429:
            first_429.append(time.monotonic())

    engine = BatchEngine(client, EngineSettings(verify_delay=0.2), on_progress=progress)
    started = time.monotonic()
    stats = engine.run(ops, total=len(ops))
    wall = time.monotonic() - started
    done = 0
    for key, result in engine.results.items():
        if result.outcome.done:
            done += 1
            pool.applied(by_key[key])
    times = sorted(t for t in list(sim.counters.write_times) if t >= started)
    quota_use = overall = 0.0
    if times:
        overall = len(times) / wall / case.quota
        bound_from = max(times[0] + case.wall_window, *first_429)
        span = times[-1] - bound_from
        if case.window > 1 and span >= case.wall_window:  # whole windows only
            span = math.floor(span / case.wall_window) * case.wall_window
        bound = [t for t in times if bound_from <= t < bound_from + span]
        if len(bound) > 1 and span > 0:
            quota_use = len(bound) / span / case.quota
    return Figures(
        items=stats.items_sent,
        throttled=stats.throttled_items,
        quota_use=quota_use,
        overall=overall,
        wall=wall,
        learnt_rate=stats.quota_rate,
        learnt_window=stats.quota_window,
        outcomes_ok=done == len(ops) == len(engine.results),
    )


def _print(case: Case, fig: Figures) -> None:
    window = f"{case.window:g} s" + (f" (/{case.time_scale:g})" if case.time_scale != 1 else "")
    learnt_window = f"{fig.learnt_window:.1f} s" if fig.learnt_window else "short"
    print(
        f"{case.latency_ms:>4} ms  {case.quota:>4}/s  {window:<13} "
        f"{fig.items:>6} {fig.throttled:>5} {fig.share:>6.1%}  {fig.quota_use:>6.1%} "
        f"{fig.overall:>6.1%}  {fig.wall:>6.1f} s  {fig.learnt_rate:>6.1f}/s {learnt_window:>8}  "
        f"{'PASS' if fig.passed else 'FAIL'}{'' if fig.outcomes_ok else ' (operations lost)'}",
        flush=True,
    )


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    """Run every case and print one line of figures per case; exit 1 if any case fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotas", default="20,100,200", help="writes per second")
    parser.add_argument("--windows-s", default="1,150", help="the service's quota windows")
    parser.add_argument("--latencies", default="200,30", help="ms per request")
    parser.add_argument("--item-latency-ms", type=int, default=10)
    parser.add_argument("--time-scale", type=float, default=10.0, help="for windows above 1 s")
    parser.add_argument("--seconds", type=float, default=30.0, help="run length, 1 s window")
    parser.add_argument("--windows", type=float, default=4.0, help="run length, long windows")
    args = parser.parse_args(argv)
    cases = [
        Case(int(lat), int(q), w, args.time_scale if w > 1 else 1.0)
        for lat in _numbers(args.latencies)
        for w in _numbers(args.windows_s)
        for q in _numbers(args.quotas)
    ]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="m365batch-pacing-") as tmp:
        folder = Path(tmp)
        seed_path, sku = tenant_file(folder, USERS)
        options = SimulatorOptions(seed=5, tenant_write_quota=10**9)
        sim = start_simulator(folder / "sim", options, seed_path=seed_path)
        try:
            client = GraphClient(client_settings(sim, folder / "home"))
            users = [u["id"] for u in client.get_all("/users", {"$select": "id", "$top": 999})]
            pool = Pool(users, sku)
            print(
                "latency   quota  window         items   429  share    use   overall"
                "     wall     learnt   window  verdict"
            )
            previous = 0.0
            for case in cases:
                # the last case's writes leave the window (this case's window decides)
                time.sleep(max(previous, case.wall_window) + 0.5)
                fig = run_case(sim, client, pool, case, args)
                previous = case.wall_window
                _print(case, fig)
                failed += not fig.passed
        finally:
            sim.stop()
    print(f"\n{len(cases) - failed} of {len(cases)} cases PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
