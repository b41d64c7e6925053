"""Simulated tenant, the licensing endpoints: assignLicense, licenseDetails, reprocessing.

The rules themselves (what a valid assignment is, how group-based licensing settles) are
in :mod:`batch.simulator.licensing`; these handlers run them inside a write transaction,
keep the lag snapshots of the users they change and render the answer.
"""

from __future__ import annotations

import time

from batch.simulator import licensing
from batch.simulator.calls import Call
from batch.simulator.endpoints import Endpoints
from batch.simulator.lag import UserSnapshot, take_snapshot
from batch.simulator.render import (
    DEFAULT_USER_SELECT,
    GROUP_PROPERTIES,
    render_group,
    render_users,
    sku_plans,
)
from batch.simulator.responses import Reply


class LicenseEndpoints(Endpoints):
    """assignLicense on users and groups, licenseDetails, reprocessLicenseAssignment."""

    def assign_license(self, call: Call) -> Reply:
        """POST /users/{id}/assignLicense: 200 with the user, or the documented 400s."""
        with self.store.write() as db:
            row = self._user(db, call.segments[1])
            snapshots = self._snapshots(db, [row["id"]])
            licensing.assign_user_licenses(
                db,
                row,
                call.body,
                usage_location_lag=self.options.scaled(self.options.usage_location_lag),
            )
            body = render_users(db, [self._user(db, row["id"])], list(DEFAULT_USER_SELECT))[0]
        self._written(snapshots)
        return Reply(200, {"@odata.context": f"{call.base_url}/$metadata#users/$entity", **body})

    def license_details(self, call: Call) -> Reply:
        """GET /users/{id}/licenseDetails."""
        with self.store.read() as db:
            row, known = self._lagging_user(self._user(db, call.segments[1]))
            plans = sku_plans(db)
            parts = {
                r["sku_id"]: r["part_number"]
                for r in db.execute("SELECT sku_id, part_number FROM skus")
            }
            user = render_users(db, [row], ["assignedLicenses"], known)[0]
        values = []
        for lic in user["assignedLicenses"]:
            sku = lic["skuId"]
            values.append(
                {
                    "id": f"{row['id'][:8]}{sku.replace('-', '')}",
                    "skuId": sku,
                    "skuPartNumber": parts.get(sku),
                    "servicePlans": [
                        {
                            **p,
                            "provisioningStatus": "Disabled"
                            if p["servicePlanId"] in lic["disabledPlans"]
                            else "Success",
                        }
                        for p in plans.get(sku, [])
                    ],
                }
            )
        context = f"{call.base_url}/$metadata#users('{row['id']}')/licenseDetails"
        return self._collection(context, values, None, None)

    def reprocess(self, call: Call) -> Reply:
        """POST /users/{id}/reprocessLicenseAssignment: re-evaluate inherited licenses now."""
        with self.store.write() as db:
            row = self._user(db, call.segments[1])
            snapshots = self._snapshots(db, [row["id"]])
            licensing.reprocess_user(db, row["id"])
            body = render_users(db, [row], list(DEFAULT_USER_SELECT))[0]
        self._written(snapshots)
        return Reply(200, {"@odata.context": f"{call.base_url}/$metadata#users/$entity", **body})

    def assign_group_license(self, call: Call) -> Reply:
        """POST /groups/{id}/assignLicense: 202; processed after the processing delay."""
        with self.store.write() as db:
            group = self._group(db, call.segments[1])
            licensing.assign_group_licenses(db, group, call.body, due=self._due())
            row = self._group(db, group["id"])
        return Reply(
            202,
            {
                "@odata.context": f"{call.base_url}/$metadata#groups/$entity",
                **render_group(row, list(GROUP_PROPERTIES)),
            },
            {"Location": f"{call.base_url}/groups/{group['id']}"},
        )

    def process_due(self) -> None:
        """Run group-license processing that has come due (cheap when nothing is due)."""
        db = self.store.connection()
        now = time.time()
        if (
            db.execute(
                "SELECT 1 FROM groups WHERE due IS NOT NULL AND due <= ? LIMIT 1", (now,)
            ).fetchone()
            is None
        ):
            return
        with self.store.write() as wdb:
            snapshots: list[UserSnapshot] = []
            if self.lag is not None and self.lag.enabled:
                affected = [
                    r[0]
                    for r in wdb.execute(
                        "SELECT user_id FROM members WHERE group_id IN (SELECT id FROM groups "
                        "WHERE due IS NOT NULL AND due <= ?) UNION SELECT user_id FROM licenses "
                        "WHERE source IN (SELECT id FROM groups WHERE due IS NOT NULL "
                        "AND due <= ?)",
                        (now, now),
                    )
                ]
                snapshots = self._snapshots(wdb, affected)
            licensing.process_due_groups(wdb, now)
            # only members whose licenses the processing changed lag behind it
            snapshots = [
                s
                for s in snapshots
                if (after := take_snapshot(wdb, s.user_id)) is None or after.licenses != s.licenses
            ]
        self._written(snapshots)
