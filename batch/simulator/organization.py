"""Simulated tenant, the tenant's own resources: subscribedSkus and organization."""

from __future__ import annotations

from batch.simulator.calls import Call
from batch.simulator.endpoints import Endpoints
from batch.simulator.odata import parse_select
from batch.simulator.render import render_skus
from batch.simulator.responses import Reply, not_found


class OrganizationEndpoints(Endpoints):
    """GET /subscribedSkus, /subscribedSkus/{id} and /organization."""

    def subscribed_skus(self, call: Call) -> Reply:
        """GET /subscribedSkus (and /subscribedSkus/{id}); only $select is supported."""
        self._check_query_options(call, {"$select"})
        with self.store.read() as db:
            skus = render_skus(db, self.store.meta("tenant_id") or "")
        select = parse_select(
            call.params.get("$select"), tuple(skus[0]) if skus else ("id",), "SubscribedSku"
        )
        if select:
            skus = [{k: s[k] for k in select} for s in skus]
        if len(call.segments) == 2:
            match = [
                s
                for s in render_skus(self.store.connection(), self.store.meta("tenant_id") or "")
                if s["id"] == call.segments[1]
            ]
            if not match:
                raise not_found(call.segments[1])
            chosen = match[0] if not select else {k: match[0][k] for k in select}
            return Reply(
                200,
                {"@odata.context": f"{call.base_url}/$metadata#subscribedSkus/$entity", **chosen},
            )
        return self._collection(self._context(call, "subscribedSkus", select), skus, None, None)

    def organization(self, call: Call) -> Reply:
        """GET /organization."""
        org = self.store.organization()
        value = {
            "id": org.get("id"),
            "displayName": org.get("displayName"),
            "countryLetterCode": org.get("countryLetterCode"),
            "createdDateTime": org.get("createdDateTime"),
            "tenantType": "AAD",
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": True,
                    "isInitial": True,
                    "name": org.get("domain"),
                    "type": "Managed",
                }
            ],
        }
        return self._collection(f"{call.base_url}/$metadata#organization", [value], None, None)
