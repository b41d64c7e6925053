"""Helpers for the simulated tenant's tests: msal tokens, a Graph session, SKU ids."""

from __future__ import annotations

from typing import Any

import msal
import requests

from batch.simulator import RunningSimulator

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"
SPE_E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
SPE_E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"
SPB = "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46"
POWER_BI_PRO = "f8a1db68-be16-40ed-86d5-cb42ce701560"
COMMUNICATIONS_CREDITS = "47794cd0-f0e5-45c5-9033-2eb6b5fc84e0"


def acquire_token(
    sim: RunningSimulator, client_id: str | None = None, credential: Any = None
) -> dict[str, Any]:
    """A token from the simulator through real msal."""
    app = msal.ConfidentialClientApplication(
        client_id or sim.client_id,
        client_credential=credential or sim.client_secret,
        authority=f"{sim.authority_host}/{sim.tenant_id}",
        verify=str(sim.ca_path),
        instance_discovery=False,
        token_cache=msal.TokenCache(),
    )
    return app.acquire_token_for_client(GRAPH_SCOPE)


class Graph:
    """A thin requests session for a simulator: relative URLs, bearer token, CA trusted."""

    def __init__(self, sim: RunningSimulator, token: str | None = None) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.session.verify = str(sim.ca_path)
        token = token or acquire_token(sim)["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.sim.graph_url}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def assign(
        self, user: str, add: list[Any] | None = None, remove: list[str] | None = None
    ) -> requests.Response:
        body = {
            "addLicenses": [
                a if isinstance(a, dict) else {"skuId": a, "disabledPlans": []} for a in (add or [])
            ],
            "removeLicenses": remove or [],
        }
        return self.post(f"/users/{user}/assignLicense", json=body)

    def batch(self, items: list[dict[str, Any]]) -> requests.Response:
        return self.post("/$batch", json={"requests": items})


def error_of(response: requests.Response) -> dict[str, Any]:
    """The ``error`` object of a Graph error response, checking its shape."""
    body = response.json()
    error = body["error"]
    assert set(error) >= {"code", "message", "innerError"}
    assert response.headers["request-id"]
    assert response.headers["client-request-id"]
    return error


def user_with(sim: RunningSimulator, predicate: Any) -> dict[str, Any]:
    """The first sample user matching ``predicate`` (on the full user object)."""
    db = sim.store.connection()
    for (uid,) in db.execute("SELECT id FROM users ORDER BY seq"):
        user = sim.store.user(uid)
        if user and predicate(user):
            return user
    raise LookupError("no such user in the sample")
