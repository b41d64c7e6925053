"""Benchmark: ``m365batch true-up`` on a large simulated tenant; prints time, memory and 429s.

Usage::

    python scripts/bench_trueup.py                 # 100,000 users
    python scripts/bench_trueup.py --users 20000 --in-process

The tenant is generated into a temporary state directory. By default the simulator runs in
its own process (as a real tenant would be elsewhere) and the CLI is pointed at it through
the AZURE_* variables, so the CLI's own peak memory is measured alone. ``--in-process`` runs
the CLI with no credentials instead, starting the simulator inside the same process (the
figure then includes the simulator). Targets: at most 30 s, under 1 GB, no 429 at the
default throttling limits; each figure says PASS or FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WALL_SECONDS = 30.0  #: target wall time of the CLI
PEAK_MIB = 1024.0  #: target peak memory

SERVER = """
import json, sys
from pathlib import Path
from batch.simulator import start_simulator
sim = start_simulator(Path(sys.argv[1]))
print(json.dumps({"tenant_id": sim.tenant_id, "client_id": sim.client_id,
                  "client_secret": sim.client_secret, "authority_host": sim.authority_host,
                  "graph_url": sim.graph_url, "ca_path": str(sim.ca_path)}), flush=True)
sys.stdin.read()
sim.stop()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="let the CLI start the simulator itself (same process)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    from batch.simulator import reset_tenant

    with tempfile.TemporaryDirectory(prefix="bench-trueup-") as temp:
        home = Path(temp) / "home"
        state = home / "simulator"
        state.mkdir(parents=True)
        started = time.monotonic()
        summary = reset_tenant(state, users=args.users)
        print(
            f"tenant: {summary['users']:,} users, {summary['licensed_users']:,} licensed, "
            f"generated in {time.monotonic() - started:.1f} s"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
        env["M365BATCH_HOME"] = str(home)
        server = None
        if not args.in_process:
            server = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(state)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            sim = json.loads(server.stdout.readline())
            env.update(
                {
                    "AZURE_TENANT_ID": sim["tenant_id"],
                    "AZURE_CLIENT_ID": sim["client_id"],
                    "AZURE_CLIENT_SECRET": sim["client_secret"],
                    "AZURE_AUTHORITY_HOST": sim["authority_host"],
                    "M365BATCH_GRAPH_URL": sim["graph_url"],
                    "REQUESTS_CA_BUNDLE": sim["ca_path"],
                }
            )
        output = Path(temp) / "true-up.xlsx"
        try:
            started = time.monotonic()
            cli = subprocess.Popen(
                [sys.executable, "-m", "batch", "true-up", "--output", str(output)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                out, err = cli.communicate(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                cli.kill()
                print(f"FAILED: no result within {args.timeout:.0f} s")
                return 1
            elapsed = time.monotonic() - started
            # The simulator child is still running, so this is the CLI's peak (KiB on Linux).
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        finally:
            if server is not None:
                server.communicate(input="", timeout=30)
        print(out.strip())
        if cli.returncode:
            print(err.strip())
            print(f"FAILED: exit code {cli.returncode}")
            return 1
        throttled = re.search(r"(\d+) throttled \(429\)", out)
        peak = peak_kib / 1024
        print(
            f"wall time: {elapsed:.1f} s (target <= {WALL_SECONDS:.0f} s: "
            f"{_verdict(elapsed <= WALL_SECONDS)})"
        )
        measured = "CLI process + simulator" if args.in_process else "CLI process alone"
        print(
            f"peak memory ({measured}): "
            f"{peak:,.0f} MiB (target < {PEAK_MIB:,.0f} MiB: {_verdict(peak < PEAK_MIB)})"
        )
        count = throttled.group(1) if throttled else "?"
        print(f"429 responses: {count} (target 0: {_verdict(count == '0')})")
        print(f"workbook: {output.stat().st_size / 1e6:.1f} MB")
    return 0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    raise SystemExit(main())
