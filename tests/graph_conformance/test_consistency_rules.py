"""Eventual consistency: reads may lag writes (graph-reference.md sections 4 and 10).

"A successful write to Microsoft Entra does not guarantee that an immediate read will reflect
that change." — https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/
With ``read_lag`` 1.0 every read inside the window lags; the window is 20 simulated seconds at
``time_scale`` 10 (2 s), and the tests poll with a deadline for the write to show.
"""

from __future__ import annotations

import pytest
from conformhelpers import ENTERPRISEPACK, FLOW_FREE, OBRIEN, poll, user_id
from simhelpers import Graph

from batch.simulator import RunningSimulator, SimulatorOptions

EVENTUAL = {"ConsistencyLevel": "eventual"}


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(seed=5, time_scale=10, read_lag=1.0, read_lag_window=20.0)


def _skus(body: dict) -> set[str]:
    return {a["skuId"] for a in body["assignedLicenses"]}


def test_get_user_lags_a_write_then_catches_up(graph: Graph, sim: RunningSimulator) -> None:
    """GET /users/{id} shows the user as before the write, then the write. The write itself
    is applied at once (the store has it)."""
    user = user_id(sim, OBRIEN)
    assert graph.assign(user, [FLOW_FREE]).status_code == 200
    assert FLOW_FREE in sim.store.user_licenses(user)
    stale = graph.get(f"/users/{user}?$select=id,assignedLicenses").json()
    assert FLOW_FREE not in _skus(stale)
    poll(
        lambda: FLOW_FREE in _skus(graph.get(f"/users/{user}?$select=assignedLicenses").json()),
        timeout=15,
    )


def test_license_details_lag(graph: Graph, sim: RunningSimulator) -> None:
    """GET /users/{id}/licenseDetails lags the same way."""
    user = user_id(sim, OBRIEN)
    assert graph.assign(user, [], [ENTERPRISEPACK]).status_code == 200
    details = graph.get(f"/users/{user}/licenseDetails").json()["value"]
    assert ENTERPRISEPACK in {d["skuId"] for d in details}
    poll(lambda: not graph.get(f"/users/{user}/licenseDetails").json()["value"], timeout=15)


def test_filtered_list_lags_membership_and_values(graph: Graph, sim: RunningSimulator) -> None:
    """A users list (an in filter by id, and a filter by SKU) shows the older state: the
    values, and membership decided on the older state."""
    user = user_id(sim, OBRIEN)
    assert graph.assign(user, [FLOW_FREE]).status_code == 200
    by_id = graph.get(
        "/users", params={"$filter": f"id in ('{user}')", "$select": "id,assignedLicenses"}
    ).json()["value"]
    assert len(by_id) == 1 and FLOW_FREE not in _skus(by_id[0])
    by_sku = graph.get(
        "/users",
        params={
            "$filter": f"assignedLicenses/any(x:x/skuId eq {FLOW_FREE})",
            "$select": "id",
            "$top": "999",
        },
    ).json()["value"]
    assert user not in {u["id"] for u in by_sku}
    poll(
        lambda: (
            user
            in {
                u["id"]
                for u in graph.get(
                    "/users",
                    params={
                        "$filter": f"assignedLicenses/any(x:x/skuId eq {FLOW_FREE})",
                        "$select": "id",
                        "$top": "999",
                    },
                ).json()["value"]
            }
        ),
        timeout=15,
    )


def test_removed_license_still_listed_while_lagging(graph: Graph, sim: RunningSimulator) -> None:
    """A user whose older state matches the filter is listed although the current one does
    not (a choice: the list is what a lagging replica would answer)."""
    user = user_id(sim, OBRIEN)
    assert graph.assign(user, [], [ENTERPRISEPACK]).status_code == 200
    params = {
        "$filter": f"assignedLicenses/any(x:x/skuId eq {ENTERPRISEPACK})",
        "$select": "id,assignedLicenses",
        "$top": "999",
    }
    listed = {u["id"]: u for u in graph.get("/users", params=params).json()["value"]}
    assert user in listed and ENTERPRISEPACK in _skus(listed[user])


def test_patch_and_batch_reads_lag(graph: Graph, sim: RunningSimulator) -> None:
    """A PATCH lags too, and reads inside $batch lag like standalone ones."""
    user = user_id(sim, OBRIEN)
    before = sim.store.user(user)["department"]
    patched = graph.request("PATCH", f"/users/{user}", json={"department": "Lagging"})
    assert patched.status_code == 204 and sim.store.user(user)["department"] == "Lagging"
    answer = graph.batch(
        [{"id": "1", "method": "GET", "url": f"/users/{user}?$select=department"}]
    ).json()["responses"][0]
    assert answer["body"]["department"] == before


def test_no_lag_at_rate_zero(graph: Graph, sim: RunningSimulator) -> None:
    """read_lag 0 (the default): every read shows the write at once."""
    sim.options.read_lag = 0.0
    user = user_id(sim, OBRIEN)
    assert graph.assign(user, [FLOW_FREE]).status_code == 200
    assert FLOW_FREE in _skus(graph.get(f"/users/{user}?$select=assignedLicenses").json())


def test_group_licensing_change_lags(graph: Graph, sim: RunningSimulator) -> None:
    """A license a member receives through group-based licensing is also seen late."""
    sim.options.group_processing_delay = 1.0  # 0.1 s at time_scale 10
    group = next(g for g in sim.store.groups() if g["displayName"] == "Sales Team")
    member = next(m for m in group["members"] if sim.store.user(m)["usageLocation"])
    body = {"addLicenses": [{"skuId": FLOW_FREE, "disabledPlans": []}], "removeLicenses": []}
    assert graph.post(f"/groups/{group['id']}/assignLicense", json=body).status_code == 202

    def processed() -> bool:
        graph.get("/organization")
        return FLOW_FREE in sim.store.user_licenses(member)

    poll(processed, timeout=10)
    stale = graph.get(f"/users/{member}?$select=assignedLicenses").json()
    assert FLOW_FREE not in _skus(stale)
