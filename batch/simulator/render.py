"""Simulated tenant, resource shapes: rows from the store rendered as Graph JSON.

Users carry the documented properties; ``assignedLicenses``, ``assignedPlans``,
``licenseAssignmentStates`` and ``signInActivity`` are computed from the license rows.
``licenseAssignmentStates[].error`` is the string ``"None"`` when there is no error: that is
what the service returns, although the reference page says null, so clients must not
treat any non-empty value as an error.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from functools import lru_cache
from typing import Any

from batch.simulator.schema import ACTIVE_STATES

USER_PROPERTIES = (
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "accountEnabled",
    "usageLocation",
    "department",
    "employeeId",
    "jobTitle",
    "country",
    "userType",
    "createdDateTime",
    "signInActivity",
    "assignedLicenses",
    "assignedPlans",
    "licenseAssignmentStates",
    "businessPhones",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
)
DEFAULT_USER_SELECT = (
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)
LICENSE_PROPERTIES = {"assignedLicenses", "assignedPlans", "licenseAssignmentStates"}
GROUP_PROPERTIES = (
    "id",
    "displayName",
    "description",
    "mailNickname",
    "securityEnabled",
    "mailEnabled",
    "groupTypes",
    "createdDateTime",
    "assignedLicenses",
)
DEFAULT_GROUP_SELECT = tuple(p for p in GROUP_PROPERTIES if p != "assignedLicenses")

# Service names on assignedPlans, by service-plan name prefix (first match wins).
_SERVICES = (
    ("EXCHANGE", "exchange"),
    ("SHAREPOINT", "SharePoint"),
    ("ONEDRIVE", "SharePoint"),
    ("MCO", "MicrosoftCommunicationsOnline"),
    ("TEAMS", "TeamsForBusiness"),
    ("INTUNE", "SCO"),
    ("AAD", "AADPremiumService"),
    ("BI_", "PowerBI"),
    ("POWER_BI", "PowerBI"),
    ("FLOW", "ProcessSimple"),
    ("POWERAPPS", "PowerAppsService"),
    ("YAMMER", "YammerEnterprise"),
    ("OFFICESUBSCRIPTION", "MicrosoftOffice"),
    ("RMS", "RMSOnline"),
    ("PROJECT", "ProjectWorkManagement"),
    ("VISIO", "Visio"),
)


def service_name(plan_name: str) -> str:
    """The ``service`` value of an assignedPlan for a service-plan name."""
    upper = plan_name.upper()
    for prefix, service in _SERVICES:
        if upper.startswith(prefix):
            return service
    return plan_name


def sku_plans(db: sqlite3.Connection) -> dict[str, list[dict[str, str]]]:
    """skuId -> its servicePlans list."""
    return {
        r["sku_id"]: json.loads(r["service_plans"])
        for r in db.execute("SELECT sku_id, service_plans FROM skus")
    }


def license_rows(db: sqlite3.Connection, user_ids: list[str]) -> dict[str, list[sqlite3.Row]]:
    """user id -> its license rows, for many users at once."""
    result: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for start in range(0, len(user_ids), 900):
        chunk = user_ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
            f"SELECT * FROM licenses WHERE user_id IN ({marks}) ORDER BY rowid",
            chunk,  # noqa: S608
        ):
            result[row["user_id"]].append(row)
    return result


def effective_licenses(rows: list[sqlite3.Row]) -> dict[str, set[str]]:
    """skuId -> disabled plans, over the active rows (a plan is on if any source enables it)."""
    result: dict[str, set[str]] = {}
    for row in rows:
        if row["state"] not in ACTIVE_STATES:
            continue
        disabled = set(_plan_list(row["disabled_plans"]))
        sku = row["sku_id"]
        result[sku] = result[sku] & disabled if sku in result else disabled
    return result


@lru_cache(maxsize=4096)
def _plan_list(text: str) -> tuple[str, ...]:
    """A license row's ``disabled_plans`` JSON, parsed once per distinct text (few exist)."""
    return tuple(json.loads(text))


def render_users(
    db: sqlite3.Connection,
    rows: list[Any],
    select: list[str] | None = None,
    known_licenses: dict[str, list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Graph user objects for ``rows``; every property when ``select`` is None.

    ``known_licenses`` gives the license rows of some users (a lagging read's snapshot)
    instead of reading them from the store.
    """
    wanted = list(select) if select is not None else list(USER_PROPERTIES)
    licenses: dict[str, list[Any]] = {}
    plans: dict[str, list[dict[str, str]]] = {}
    if LICENSE_PROPERTIES & set(wanted):
        known = known_licenses or {}
        licenses = license_rows(db, [r["id"] for r in rows if r["id"] not in known])
        licenses.update({k: v for k, v in known.items()})
        if "assignedPlans" in wanted:
            plans = sku_plans(db)
    return [_render_user(r, wanted, licenses.get(r["id"], []), plans) for r in rows]


#: user properties read straight from a column of the users table
_COLUMNS = {
    "id": "id",
    "userPrincipalName": "upn",
    "displayName": "display_name",
    "givenName": "given_name",
    "surname": "surname",
    "mail": "mail",
    "usageLocation": "usage_location",
    "department": "department",
    "employeeId": "employee_id",
    "jobTitle": "job_title",
    "country": "country",
    "userType": "user_type",
    "createdDateTime": "created",
}


def _render_user(
    row: Any, wanted: list[str], lic_rows: list[Any], plans: dict[str, list[dict[str, str]]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    effective: dict[str, set[str]] | None = None  # computed once, when a property needs it
    for prop in wanted:
        column = _COLUMNS.get(prop)
        if column is not None:
            out[prop] = row[column]
        elif prop == "signInActivity":
            # Missing data (issue 1898) is null; absent for users who never signed in
            # (documented); an object when any of the three times is known.
            if row["sign_in_missing"]:
                out[prop] = None
            elif row["last_sign_in"] or row["last_non_interactive"] or row["last_successful"]:
                out[prop] = {
                    "lastSignInDateTime": row["last_sign_in"],
                    "lastNonInteractiveSignInDateTime": row["last_non_interactive"],
                    "lastSuccessfulSignInDateTime": row["last_successful"],
                }
        elif prop in ("assignedLicenses", "assignedPlans"):
            if effective is None:
                effective = effective_licenses(lic_rows)
            out[prop] = _license_value(prop, effective, lic_rows, plans)
        else:
            out[prop] = _user_value(row, prop, lic_rows)
    return out


def _user_value(row: sqlite3.Row, prop: str, lic_rows: list[sqlite3.Row]) -> Any:
    if prop == "accountEnabled":
        return bool(row["account_enabled"])
    if prop == "businessPhones":
        return []
    if prop in ("mobilePhone", "officeLocation", "preferredLanguage"):
        return None
    if prop == "licenseAssignmentStates":
        return [
            {
                "assignedByGroup": r["source"] or None,
                "disabledPlans": list(_plan_list(r["disabled_plans"])),
                "error": r["error"],
                "lastUpdatedDateTime": r["updated"],
                "skuId": r["sku_id"],
                "state": r["state"],
            }
            for r in lic_rows
        ]
    raise KeyError(prop)


def _license_value(
    prop: str,
    effective: dict[str, set[str]],
    lic_rows: list[sqlite3.Row],
    plans: dict[str, list[dict[str, str]]],
) -> Any:
    """``assignedLicenses`` or ``assignedPlans`` from the user's effective licenses."""
    if prop == "assignedLicenses":
        return [{"disabledPlans": sorted(d), "skuId": s} for s, d in effective.items()]
    result = []
    seen: set[str] = set()
    assigned = {r["sku_id"]: r["assigned"] for r in lic_rows}
    for sku, disabled in effective.items():
        for plan in plans.get(sku, []):
            pid = plan["servicePlanId"]
            if pid in disabled or pid in seen:
                continue
            seen.add(pid)
            result.append(
                {
                    "assignedDateTime": assigned.get(sku),
                    "capabilityStatus": "Enabled",
                    "service": service_name(plan["servicePlanName"]),
                    "servicePlanId": pid,
                }
            )
    return result


def consumed_units(db: sqlite3.Connection) -> dict[str, int]:
    """skuId -> number of users holding it (one seat per user however many sources)."""
    # kept by triggers on the licenses table (see schema.SCHEMA)
    return {r[0]: r[1] for r in db.execute("SELECT sku_id, consumed FROM seat_use")}


def render_skus(db: sqlite3.Connection, tenant_id: str) -> list[dict[str, Any]]:
    """The subscribedSkus collection."""
    consumed = consumed_units(db)
    return [
        {
            "accountName": "Contoso",
            "accountId": tenant_id,
            "appliesTo": r["applies_to"],
            "capabilityStatus": r["capability_status"],
            "consumedUnits": consumed.get(r["sku_id"], 0),
            "id": f"{tenant_id}_{r['sku_id']}",
            "skuId": r["sku_id"],
            "skuPartNumber": r["part_number"],
            "subscriptionIds": [],
            "prepaidUnits": {
                "enabled": r["enabled"],
                "suspended": r["suspended"],
                "warning": r["warning"],
                "lockedOut": r["locked_out"],
            },
            "servicePlans": json.loads(r["service_plans"]),
        }
        for r in db.execute("SELECT * FROM skus ORDER BY position")
    ]


def render_group(row: sqlite3.Row, select: list[str] | None = None) -> dict[str, Any]:
    """A Graph group object."""
    values = {
        "id": row["id"],
        "displayName": row["display_name"],
        "description": row["description"],
        "mailNickname": row["mail_nickname"],
        "securityEnabled": bool(row["security_enabled"]),
        "mailEnabled": bool(row["mail_enabled"]),
        "groupTypes": json.loads(row["group_types"]),
        "createdDateTime": row["created"],
        "assignedLicenses": json.loads(row["licenses"]),
    }
    return {p: values[p] for p in (select if select is not None else DEFAULT_GROUP_SELECT)}
