"""Benchmark the whole ``apply`` command, process start to exit, and print the figures.

    python scripts/bench_e2e.py                          # sheets of 50, 2,000 and 10,000 rows
    python scripts/bench_e2e.py --rows 50,2000 --quota 200
    python scripts/bench_e2e.py --window 150 --quota 20  # Graph's own window, a lower quota

The simulated tenant (in this process, over HTTPS, with msal) holds 20,000 generated users;
every request takes 200 ms plus 10 ms per Graph operation (each ``$batch`` item), and writes
are limited to ``--quota`` per ``--window`` seconds (default 100 per 1 s). Each sheet adds a
license with seats to spare to users who lack it; a fresh copy of the tenant serves each run.

For each sheet, ``m365batch apply SHEET --yes`` runs in a subprocess and the script prints:

- the whole command (process start to exit) and its phases: before the first write (from
  the journal's first ``sent_at``), writing (to the last ``done_at``), read-back and report
  (from the ``phase`` lines the run writes to its log file), and what is left (exit);
- the requests the tenant answered, by kind (counted by the simulator as they arrive);
- the share of write items answered 429, and lower bound / whole command, where the lower
  bound is writes / quota (the writes cannot go faster);
- the same sheet through two yardsticks written here: a per-user loop (one assignLicense per
  user, one after the other, as common PowerShell scripts do) and SDK-style batches (20 to a
  ``$batch``, one batch at a time, a 429 item sent again after its Retry-After). Both sign in
  and read subscribedSkus first, then write by UPN; neither reads back nor writes a report.
  The per-user loop is timed on ``--loop-sample`` users and extrapolated (printed as such).

Figures are wall times on this machine; the targets are printed beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_apply import FLOW_FREE, make_tenant, write_sheet
from bench_engine import client_settings

import batch.simulator.server as sim_server
from batch.graph.client import GraphClient
from batch.graph.queries import user_path
from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator

TENANT_USERS = 20_000
TARGETS = {50: "whole command <= 2.5 s", 2000: "ratio >= 0.85 (<= 23.5 s)", 10000: "ratio >= 0.90"}


# -- requests by kind -------------------------------------------------------------------------


class RequestKinds:
    """Counts what the simulated tenant answers, by kind, wrapping its Graph service."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.write_items = 0
        self.write_429 = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.counts[kind] += n

    def install(self, sim: RunningSimulator) -> None:
        service = sim._core.service  # noqa: SLF001 - a benchmark looks inside
        operation = service.operation
        kinds = self

        def counted_operation(call: Any, caller: Any, *args: Any) -> Any:
            reply = operation(call, caller, *args)
            write = call.method != "GET"
            if write:
                with kinds._lock:
                    kinds.write_items += 1
                    kinds.write_429 += int(reply.status == 429)
            if not getattr(kinds._local, "in_batch", False):
                kinds.add(_single_kind(call))
            return reply

        service.operation = counted_operation

    @contextlib.contextmanager
    def patched_batches(self) -> Iterator[None]:
        original = sim_server.handle_batch
        kinds = self

        def counted_batch(service: Any, raw_body: bytes, *args: Any) -> Any:
            try:
                items = json.loads(raw_body.decode("utf-8")).get("requests") or []
                reads = all(str(i.get("method", "")).upper() == "GET" for i in items)
            except (ValueError, AttributeError):
                reads = False
            kinds.add("$batch of reads" if reads else "$batch of writes")
            kinds._local.in_batch = True
            try:
                return original(service, raw_body, *args)
            finally:
                kinds._local.in_batch = False

        sim_server.handle_batch = counted_batch  # type: ignore[assignment]
        try:
            yield
        finally:
            sim_server.handle_batch = original  # type: ignore[assignment]


def _single_kind(call: Any) -> str:
    path = "/" + "/".join(call.segments[:1])
    if call.segments[:1] == ["users"] and len(call.segments) == 1:
        if "$filter" in call.params:
            return "GET /users?$filter"
        if "$count" in call.params:
            return "GET /users?$count"
        return "GET /users (pages)"
    if len(call.segments) > 1:
        path += "/{id}/" + "/".join(call.segments[2:]) if len(call.segments) > 2 else "/{id}"
    return f"{call.method} {path}"


# -- one run of the real command --------------------------------------------------------------


def run_apply(sim: RunningSimulator, sheet: Path, home: Path) -> dict[str, Any]:
    """``m365batch apply SHEET --yes`` in a subprocess; its wall time and phases."""
    env = {**os.environ, "M365BATCH_HOME": str(home), **sim.environment()}
    env.pop("M365BATCH_SIMULATOR", None)
    report = sheet.with_suffix(".report.xlsx")
    args = [sys.executable, "-m", "batch", "apply", str(sheet), "--yes", "--output", str(report)]
    started_wall = time.time()
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    ended_wall = started_wall + elapsed
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-2000:])
        raise SystemExit(f"apply exited {result.returncode}")
    first_sent, last_done = _journal_times(home)
    phases = _log_phases(home)
    figures: dict[str, Any] = {"whole": elapsed}
    figures["before first write"] = first_sent - started_wall if first_sent else None
    figures["writing"] = last_done - first_sent if first_sent and last_done else None
    rb = phases.get("read-back started"), phases.get("read-back finished")
    figures["read-back"] = rb[1] - rb[0] if all(rb) else None  # type: ignore[operator]
    rp = phases.get("report started"), phases.get("report written")
    figures["report"] = rp[1] - rp[0] if all(rp) else None  # type: ignore[operator]
    figures["after the report (exit)"] = ended_wall - rp[1] if rp[1] else None
    figures["phases"] = {name: at - started_wall for name, at in phases.items()}
    if first_sent:
        figures["phases"]["first write sent"] = first_sent - started_wall
    return figures


def _journal_times(home: Path) -> tuple[float | None, float | None]:
    journals = sorted((home / "runs").glob("*/journal.sqlite"))
    if not journals:
        return None, None
    with contextlib.closing(sqlite3.connect(journals[-1])) as db:
        first, last = db.execute("SELECT MIN(sent_at), MAX(done_at) FROM ops").fetchone()

    def stamp(text: str | None) -> float | None:
        return dt.datetime.fromisoformat(text).timestamp() if text else None

    return stamp(first), stamp(last)


_PHASE = re.compile(r"^(\S+ \S+) INFO .*phase: (.+?)(?: \(|$)")


def _log_phases(home: Path) -> dict[str, float]:
    """``phase: NAME`` lines of the run's log file, by name, as epoch seconds."""
    found: dict[str, float] = {}
    for path in (home / "logs").glob("*.log"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _PHASE.match(line)
            if match:
                when = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                found[match.group(2)] = when.timestamp()
    return found


# -- the yardsticks ---------------------------------------------------------------------------


def _client(sim: RunningSimulator, home: Path) -> GraphClient:
    return GraphClient(client_settings(sim, home))


def _body() -> dict[str, Any]:
    return {"addLicenses": [{"skuId": FLOW_FREE, "disabledPlans": []}], "removeLicenses": []}


def per_user_loop(sim: RunningSimulator, upns: list[str], home: Path) -> float:
    """One assignLicense request per user, one after the other; seconds for ``upns``."""
    started = time.perf_counter()
    client = _client(sim, home)
    list(client.get_all("/subscribedSkus"))
    for upn in upns:
        client.post(f"{user_path(upn)}/assignLicense", _body())  # 429: Retry-After honoured
    return time.perf_counter() - started


def sdk_batches(sim: RunningSimulator, upns: list[str], home: Path) -> float:
    """20 assignLicense to a ``$batch``, one batch at a time, 429 items sent again."""
    started = time.perf_counter()
    client = _client(sim, home)
    list(client.get_all("/subscribedSkus"))
    for start in range(0, len(upns), 20):
        pending = {
            str(i): {
                "id": str(i),
                "method": "POST",
                "url": f"{user_path(upn)}/assignLicense",
                "headers": {"Content-Type": "application/json"},
                "body": _body(),
            }
            for i, upn in enumerate(upns[start : start + 20])
        }
        while pending:
            reply = client.send_batch(list(pending.values()))
            wait = 0.0
            for key, answer in (reply.responses or {}).items():
                if int(answer.get("status", 0)) == 429:
                    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
                    wait = max(wait, float(headers.get("retry-after") or 1))
                else:
                    pending.pop(key, None)
            if reply.responses is None:
                wait = float(reply.headers.get("Retry-After") or 1)
            if wait:
                time.sleep(wait)
    return time.perf_counter() - started


# -- the report -------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _print_timeline(admitted: list[float], rate: float, step: float = 0.5) -> None:
    """Writes the service admitted per ``step`` seconds from the command's start."""
    if not admitted:
        return
    counts = [0] * (int(max(admitted) / step) + 1)
    for t in admitted:
        counts[int(t / step)] += 1
    print(f"  writes admitted per {step:g} s (quota {rate * step:g}):")
    for i in range(0, len(counts), 10):
        chunk = " ".join(f"{n:>4}" for n in counts[i : i + 10])
        print(f"    {i * step:>6.1f} s  {chunk}")


def bench_sheet(args: argparse.Namespace, folder: Path, seed: Path, upns: list[str]) -> None:
    rows = len(upns)
    options = SimulatorOptions(
        seed=3,
        latency_ms=args.latency_ms,
        item_latency_ms=args.item_latency_ms,
        write_quota=args.quota,
        write_window=args.window,
    )
    sheet = write_sheet(folder / f"adds-{rows}.csv", upns)
    kinds = RequestKinds()
    with (
        kinds.patched_batches(),
        start_simulator(folder / f"sim-{rows}", options, seed_path=seed) as sim,
    ):
        kinds.install(sim)
        kinds.add("token", -sim.counters["token_requests"])
        started = time.monotonic()
        figures = run_apply(sim, sheet, folder / f"home-{rows}")
        kinds.add("token", sim.counters["token_requests"])
        admitted = [t - started for t in sim.counters.write_times if t >= started]
    rate = args.quota / args.window
    bound = rows / rate
    share = kinds.write_429 / max(1, kinds.write_items)
    print(f"\n== {rows:,} rows of adds on a {TENANT_USERS:,}-user tenant")
    print(f"  whole command        {_fmt(figures['whole'])}   target: {TARGETS.get(rows, '-')}")
    for name in ("before first write", "writing", "read-back", "report", "after the report (exit)"):
        print(f"    {name:<22} {_fmt(figures[name])}")
    print(
        f"  lower bound          {bound:.2f} s ({rows:,} writes / {rate:g} per s)"
        f"; ratio bound/whole {bound / figures['whole']:.2f}"
    )
    print(
        f"  429 share of writes  {share:.1%} ({kinds.write_429} of {kinds.write_items} items)"
        "   target: <= 5%"
    )
    print(
        "  requests by kind     " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.counts.items()))
    )
    if args.timeline:
        for name, at in sorted(figures["phases"].items(), key=lambda item: item[1]):
            print(f"    {at:>6.2f} s  {name}")
        _print_timeline(admitted, rate)
    if args.no_yardsticks:
        return
    with start_simulator(folder / f"sim-{rows}-loop", options, seed_path=seed) as sim:
        sample = upns[: args.loop_sample]
        loop = per_user_loop(sim, sample, folder / "home-loop") * rows / len(sample)
    with start_simulator(folder / f"sim-{rows}-sdk", options, seed_path=seed) as sim:
        sdk = sdk_batches(sim, upns, folder / "home-sdk")
    note = f" (timed on {len(sample)} users, extrapolated)" if len(sample) < rows else ""
    print(f"  per-user loop        {loop:.1f} s{note}; speed-up {loop / figures['whole']:.1f}x")
    print(
        f"  SDK-style batches    {sdk:.1f} s; speed-up {sdk / figures['whole']:.2f}x"
        "   target: >= 1.8x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="50,2000,10000", help="sheet sizes, comma-separated")
    parser.add_argument("--quota", type=int, default=100, help="writes per window")
    parser.add_argument("--window", type=float, default=1.0, help="the write window, seconds")
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--item-latency-ms", type=int, default=10)
    parser.add_argument("--loop-sample", type=int, default=50, help="users the loop is timed on")
    parser.add_argument("--no-yardsticks", action="store_true")
    parser.add_argument(
        "--timeline", action="store_true", help="print the writes admitted per half second"
    )
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.rows.split(",") if n.strip()]
    with tempfile.TemporaryDirectory(prefix="m365batch-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        seed, lacking = make_tenant(folder, TENANT_USERS)
        print(
            f"tenant: {TENANT_USERS:,} users ({len(lacking):,} lack the license), generated in "
            f"{time.perf_counter() - started:.1f} s; latency {args.latency_ms} ms + "
            f"{args.item_latency_ms} ms per item; quota {args.quota} writes per {args.window:g} s"
        )
        for rows in sizes:
            if rows > len(lacking):
                raise SystemExit(f"only {len(lacking)} users lack the license, not {rows}")
            bench_sheet(args, folder, seed, lacking[:rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
