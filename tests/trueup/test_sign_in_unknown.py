"""Sign-in activity read the reliable way, and missing sign-in data is "unknown".

graph-reference.md section 11 (msgraph-sdk-powershell issue 1898): ``signInActivity`` listed
with ``$count=true`` + ``ConsistencyLevel: eventual`` comes back empty past the 120th user of
a page. The true-up reads it with a plain ``$select`` and ``$top`` <= 500, and a user whose
value is missing (``null``) is "unknown": never "never signed in", never in Reclaim for it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from batch.config import Settings
from batch.graph.client import GraphClient
from batch.jobs.trueup.snapshot import read_tenant
from tests.trueup.conftest import run_cli, sim_env, summary_table, table


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A tenant of its own: these tests change users' sign-in data."""
    from batch.simulator import SimulatorOptions, start_simulator

    running = start_simulator(tmp_path_factory.mktemp("sim"), SimulatorOptions(seed=5))
    yield running
    running.stop()


def _licensed_enabled(sim: Any) -> list[sqlite3.Row]:
    db = sqlite3.connect(sim.store.path)
    db.row_factory = sqlite3.Row
    try:
        return list(
            db.execute(
                "SELECT * FROM users WHERE account_enabled = 1 AND id IN "
                "(SELECT user_id FROM licenses WHERE state IN ('Active', 'ActiveWithError')) "
                "ORDER BY upn"
            )
        )
    finally:
        db.close()


def _old(row: sqlite3.Row) -> bool:
    created = dt.datetime.fromisoformat(row["created"].replace("Z", "+00:00"))
    return dt.datetime.now(dt.UTC) - created > dt.timedelta(days=200)


def test_missing_sign_in_data_is_unknown_not_never(sim: Any, tmp_path: Path) -> None:
    users = [u for u in _licensed_enabled(sim) if _old(u)]
    signed_long_ago = [u for u in users if u["last_sign_in"] or u["last_non_interactive"]][:3]
    never = [u for u in users if not (u["last_sign_in"] or u["last_non_interactive"])]
    assert signed_long_ago and len(never) >= 2
    missing = {u["upn"] for u in signed_long_ago} | {never[0]["upn"]}
    for upn in missing:
        sim.store.set_sign_in(upn, None)  # Graph answers "signInActivity": null
    still_never = never[1]["upn"]

    out = tmp_path / "trueup.xlsx"
    result = run_cli(["true-up", "--output", str(out)], env=sim_env(sim))
    assert result.exit_code == 0, result.output

    by_upn = {row["UPN"]: row for row in table(out, "Users")}
    assert {upn for upn, row in by_upn.items() if row["Last sign-in"] == "unknown"} == missing
    assert by_upn[still_never]["Last sign-in"] == "never"
    reclaim = table(out, "Reclaim")
    sign_in_categories = {"Inactive", "Never signed in"}
    assert not [r for r in reclaim if r["UPN"] in missing and r["Category"] in sign_in_categories]
    assert any(r["UPN"] == still_never and r["Category"] == "Never signed in" for r in reclaim)
    info, _, rows = summary_table(out)
    assert info["Sign-in unknown"] == len(missing)
    assert any("unknown" in str(r[0]) for r in rows if r and r[0])  # the note says so


def test_sign_in_is_read_without_advanced_query_parameters(sim: Any, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        tenant_id=sim.tenant_id,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        authority_host=sim.authority_host,
        graph_url=sim.graph_url,
        ca_bundle=str(sim.ca_path),
    )
    client = GraphClient(settings)
    sent: list[requests.PreparedRequest] = []
    client.session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    snapshot = read_tenant(client)
    reads = [r for r in sent if urlparse(r.url or "").path.endswith("/users")]
    reads += [r for r in sent if "skiptoken" in (r.url or "").lower()]
    with_sign_in = [r for r in reads if "signInActivity" in (r.url or "")]
    assert with_sign_in
    for request in with_sign_in:
        query = parse_qs(urlparse(request.url or "").query)
        assert "$count" not in query and "$filter" not in query
        assert "ConsistencyLevel" not in request.headers
        assert int(query.get("$top", ["100"])[0]) <= 500
    # the directory is larger than the 120 users a page would show complete with $count:
    # only users whose data is missing in the tenant itself are unknown
    assert len(snapshot.users) > 120
    db = sqlite3.connect(sim.store.path)
    try:
        gaps = {r[0] for r in db.execute("SELECT upn FROM users WHERE sign_in_missing = 1")}
    finally:
        db.close()
    assert {u.upn for u in snapshot.users if u.sign_in_unknown} <= gaps
    assert len([u for u in snapshot.users if u.sign_in_unknown]) <= 4
    assert all(u.licenses for u in snapshot.users)  # filtered locally: licensed users only
