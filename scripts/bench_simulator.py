"""Print figures for the simulated tenant: generating a large tenant, paging it, batch writes.

Usage: python scripts/bench_simulator.py [--users 100000] [--writes 400]

Runs in a temporary M365BATCH_HOME; nothing else is touched. Figures are printed, never
asserted (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import msal
import requests

from batch.simulator import SimulatorOptions, reset_tenant, start_simulator

FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"


def main() -> None:
    """Generate, page and write; print how long each took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=400)
    args = parser.parse_args()
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)  # requests would prefer them to the simulator's CA
    with tempfile.TemporaryDirectory() as home:
        state = Path(home) / "simulator"
        started = time.perf_counter()
        summary = reset_tenant(state, users=args.users, seed=1)
        print(
            f"reset --users {args.users}: {time.perf_counter() - started:.1f} s "
            f"({summary['licensed_users']} licensed)"
        )
        with start_simulator(state, SimulatorOptions(throttling=False)) as sim:
            app = msal.ConfidentialClientApplication(
                sim.client_id,
                client_credential=sim.client_secret,
                authority=sim.authority,
                verify=str(sim.ca_path),
                instance_discovery=False,
            )
            token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
            session = requests.Session()
            session.verify = str(sim.ca_path)
            session.headers["Authorization"] = f"Bearer {token['access_token']}"
            started = time.perf_counter()
            url: str | None = (
                f"{sim.graph_url}/users?$top=999"
                "&$select=id,userPrincipalName,assignedLicenses,accountEnabled"
            )
            users, pages = [], 0
            while url:
                body = session.get(url, timeout=60).json()
                users += [u["id"] for u in body["value"]]
                pages += 1
                url = body.get("@odata.nextLink")
            print(
                f"paged {len(users)} users in {pages} pages ($top=999, with licenses): "
                f"{time.perf_counter() - started:.1f} s"
            )
            started = time.perf_counter()
            for start in range(0, args.writes, 20):
                items = [
                    {
                        "id": str(i),
                        "method": "POST",
                        "url": f"/users/{users[start + i]}/assignLicense",
                        "headers": {"Content-Type": "application/json"},
                        "body": {"addLicenses": [{"skuId": FLOW_FREE}], "removeLicenses": []},
                    }
                    for i in range(min(20, args.writes - start))
                ]
                session.post(f"{sim.graph_url}/$batch", json={"requests": items}, timeout=60)
            elapsed = time.perf_counter() - started
            print(
                f"{args.writes} assignLicense writes in batches of 20: {elapsed:.1f} s "
                f"({args.writes / elapsed:.0f} writes/s, one client thread)"
            )


if __name__ == "__main__":
    main()
