"""State: persisted between runs and processes, consistent after SIGKILL, sample deterministic."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from simhelpers import FLOW_FREE, Graph

from batch.simulator import reset_tenant, start_simulator
from batch.simulator.catalog import SKUS
from batch.simulator.seed import generate_tenant

REPO = Path(__file__).resolve().parents[2]


def test_changes_survive_a_restart(state_dir: Path) -> None:
    with start_simulator(state_dir) as first:
        user = first.store.user("o'brien@contoso.example")["id"]
        assert Graph(first).assign(user, [FLOW_FREE]).status_code == 200
    with start_simulator(state_dir) as second:
        assert FLOW_FREE in second.store.user_licenses(user)
        assert len(second.store.license_history(user)) == 2


def test_two_servers_on_one_state_see_each_other(state_dir: Path) -> None:
    with start_simulator(state_dir) as one, start_simulator(state_dir) as two:
        user = one.store.user("o'brien@contoso.example")["id"]
        assert Graph(one).assign(user, [FLOW_FREE]).status_code == 200
        body = Graph(two).get(f"/users/{user}?$select=assignedLicenses").json()
        assert FLOW_FREE in [a["skuId"] for a in body["assignedLicenses"]]


def test_sigkill_leaves_a_consistent_state(state_dir: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from batch.simulator import start_simulator
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from simhelpers import Graph
        sim = start_simulator(Path({str(state_dir)!r}))
        graph = Graph(sim)
        ids = [r[0] for r in sim.store.connection().execute(
            "SELECT id FROM users WHERE usage_location IS NOT NULL LIMIT 40")]
        print("ready", flush=True)
        for n in range(100000):
            graph.assign(ids[n % 40], ["{FLOW_FREE}"] if n % 80 < 40 else [],
                         [] if n % 80 < 40 else ["{FLOW_FREE}"])
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    db = sqlite3.connect(state_dir / "tenant.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with start_simulator(state_dir) as sim:
        writes = sum(
            n for (_, op), n in sim.store.applied_writes().items() if op == "assignLicense"
        )
        assert writes > 0
        # Every user's last recorded history entry matches what they hold now.
        for (uid,) in sim.store.connection().execute("SELECT DISTINCT user_id FROM history"):
            history = sim.store.license_history(uid)
            assert history[-1][1] == sim.store.user_licenses(uid)


def test_sample_file_matches_the_generator() -> None:
    from scripts.make_sample_tenant import render  # type: ignore[import-not-found]

    assert (REPO / "samples" / "tenant.json").read_text(encoding="utf-8") == render()


def test_sample_has_the_awkward_cases() -> None:
    tenant = json.loads((REPO / "samples" / "tenant.json").read_text(encoding="utf-8"))
    upns = {u["userPrincipalName"] for u in tenant["users"]}
    assert {
        "o'brien@contoso.example",
        "jordan+sales@contoso.example",
        "$svc-backup@contoso.example",
        "adele.vance_fabrikam.example#EXT#@contoso.example",
    } <= upns
    names = {u["displayName"] for u in tenant["users"]}
    assert {"Zoë Ångström", "José Núñez", "Łukasz Żółć"} <= names
    assert any(u["usageLocation"] is None for u in tenant["users"])
    assert any(not u["accountEnabled"] and u["licenses"] for u in tenant["users"])
    assert any(u["signIn"] is None for u in tenant["users"])
    by_part = {s["skuPartNumber"]: s for s in tenant["skus"]}
    for part, (sku_id, _, plans) in SKUS.items():
        assert by_part[part]["skuId"] == sku_id
        assert [p["servicePlanId"] for p in by_part[part]["servicePlans"]] == [p for _, p in plans]
    assert by_part["MCOPSTNC"]["appliesTo"] == "Company"
    assert 250 <= len(tenant["users"]) <= 350
    assert all(u["userPrincipalName"].endswith("@contoso.example") for u in tenant["users"])


def test_generated_tenant_is_deterministic_and_sized() -> None:
    assert generate_tenant(120, seed=4) == generate_tenant(120, seed=4)
    assert generate_tenant(120, seed=4) != generate_tenant(120, seed=5)
    assert len(generate_tenant(2000)["users"]) == 2000


def test_reset_to_a_generated_tenant_and_back(state_dir: Path) -> None:
    summary = reset_tenant(state_dir, users=80, seed=2)
    assert summary["users"] == 80
    with start_simulator(state_dir) as sim:
        assert len(Graph(sim).get("/users?$top=999").json()["value"]) == 80
    back = reset_tenant(state_dir)
    assert back["users"] == 300
    assert any(s["skuPartNumber"] == "SPE_E3" and s["consumed"] > 0 for s in back["skus"])
