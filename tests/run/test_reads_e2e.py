"""A sheet naming a small share of a big directory is looked up, never paged: the CLI on the
simulated tenant, the requests counted as the tenant answers them."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from batch.simulator import SimulatorOptions, start_simulator
from batch.simulator.seed import generate_tenant
from tests.run.runkit import Tenant, write_csv

FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"
USERS = 3_000


def _count_reads(sim: Any) -> Counter[str]:
    """Count the tenant's GET /users operations by kind (standalone or inside a $batch)."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    service = sim._core.service
    operation = service.operation

    def counted(call: Any, *args: Any) -> Any:
        if call.method == "GET" and call.segments == ["users"]:
            params = call.params
            kind = "count" if "$count" in params else "lookup" if "$filter" in params else "page"
            with lock:
                counts[kind] += 1
        return operation(call, *args)

    service.operation = counted
    return counts


def test_a_small_sheet_on_a_big_directory_is_looked_up_not_paged(tmp_path: Path) -> None:
    tenant = generate_tenant(users=USERS, seed=2)
    for sku in tenant["skus"]:
        if sku["skuId"] == FLOW_FREE:
            sku["prepaidUnits"]["enabled"] = USERS * 2
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(tenant), encoding="utf-8")
    lacking = [
        u["userPrincipalName"]
        for u in tenant["users"]
        if u["accountEnabled"]
        and u.get("usageLocation")
        and not any(lic["skuId"] == FLOW_FREE for lic in u.get("licenses", []))
    ]
    holding = [
        u["userPrincipalName"]
        for u in tenant["users"]
        if u["accountEnabled"] and any(lic["skuId"] == FLOW_FREE for lic in u.get("licenses", []))
    ]
    with start_simulator(tmp_path / "sim", SimulatorOptions(seed=1), seed_path=seed) as sim:
        counts = _count_reads(sim)
        run = Tenant(sim, tmp_path / "home")
        # 45 users to license and 5 who hold the license already (NoChange)
        names = [*lacking[:45], *holding[:5]]
        small = write_csv(
            tmp_path / "small.csv", ["UPN", "AddLicenses"], [[u, "FLOW_FREE"] for u in names]
        )
        result = run.cli("apply", str(small), "--yes", "--output", str(tmp_path / "r.xlsx"))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Applied 45, NoChange 5" in result.stdout, result.stdout
        # 50 users: 4 lookups to plan; the read-back looks up only the 45 written to, in 3;
        # no page of the directory, no $count
        assert counts == Counter(lookup=7), counts
        for upn in lacking[:45]:
            assert FLOW_FREE in {a["skuId"] for a in sim.store.user(upn)["assignedLicenses"]}

        counts.clear()
        # 400 of 3,000 users: a request count rule paged the directory (4 pages < 27
        # lookups); the lookups are quicker, being in flight side by side
        wide = write_csv(
            tmp_path / "wide.csv",
            ["UPN", "AddLicenses"],
            [[u, "FLOW_FREE"] for u in lacking[50:450]],
        )
        result = run.cli("plan", str(wide), "--output", str(tmp_path / "p.xlsx"))
        assert result.returncode == 0, result.stdout + result.stderr
        assert counts == Counter(lookup=27), counts
