"""Simulated tenant, rehearsal: clone a tenant (real or simulated) into a simulator seed.

    GET /organization, /subscribedSkus, /users, /groups (+ members) -> samples/tenant.json format

The seed holds the SKUs with their seats and service plans, every user with the licenses
assigned *directly* (with disabled plans) and the account state, and every group with its
members and licenses; group-granted licenses are recomputed by the simulator when the seed is
loaded, as Entra does. ``simulator reset --seed-file clone.json`` then loads it, so a
migration (or any sheet) can be planned and applied offline first and its report shown
before the real run.

With ``pseudonymise`` the people and the organisation are replaced, consistently within one
clone: display and given names, surnames, UPNs and mail (the domain's shape is kept: the
first label of each domain is renamed, the rest such as ``onmicrosoft.com`` stays, and a guest
keeps its ``#EXT#`` form), departments, job titles, employee ids, group names and every
object id (the organisation's, users', groups'). Microsoft's own ids (skuId, servicePlanId),
usage locations, account states and license assignments are kept: they are what a rehearsal
needs. Sign-in times are read when the app may (``AuditLog.Read.All``) and stored as "days
ago" like the sample; without that permission they are left out.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from batch.errors import GraphStatusError, ReportError
from batch.files import atomic_write
from batch.simulator.seed import FORMAT

__all__ = ["CLONE_USER_SELECT", "clone_tenant", "pseudonymise_tenant", "write_seed"]

CLONE_USER_SELECT = (
    "id,userPrincipalName,displayName,givenName,surname,mail,accountEnabled,usageLocation,"
    "country,department,jobTitle,employeeId,userType,createdDateTime,licenseAssignmentStates,"
    "assignedLicenses"
)
_GROUP_SELECT = (
    "id,displayName,description,mailNickname,securityEnabled,mailEnabled,groupTypes,"
    "createdDateTime,assignedLicenses"
)
_SKU_UNITS = ("enabled", "warning", "suspended", "lockedOut")


def clone_tenant(
    client: Any, *, pseudonymise: bool = False, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Read the tenant through ``client`` into a seed dict (``samples/tenant.json`` format)."""
    say = progress or (lambda _message: None)
    now = dt.datetime.now(dt.UTC)
    orgs = list(client.get_all("/organization"))
    org = orgs[0] if orgs else {}
    domains = org.get("verifiedDomains") or []
    default = next((d.get("name") for d in domains if d.get("isDefault")), None)
    say("reading SKUs")
    skus = [_sku(s) for s in client.get_all("/subscribedSkus")]
    say("reading users")
    users = [_user(u, now) for u in _read_users(client)]
    say(f"read {len(users)} users; reading groups")
    groups = []
    for group in client.get_all("/groups", params={"$select": _GROUP_SELECT, "$top": 999}):
        members = [
            str(m["id"])
            for m in client.get_all(
                f"/groups/{group['id']}/members", params={"$select": "id", "$top": 999}
            )
        ]
        groups.append(
            {
                "id": str(group["id"]),
                "displayName": group.get("displayName") or "",
                "description": group.get("description"),
                "mailNickname": group.get("mailNickname"),
                "securityEnabled": bool(group.get("securityEnabled", True)),
                "mailEnabled": bool(group.get("mailEnabled", False)),
                "groupTypes": list(group.get("groupTypes") or []),
                "createdDateTime": group.get("createdDateTime"),
                "assignedLicenses": [
                    {
                        "skuId": str(a["skuId"]).lower(),
                        "disabledPlans": sorted(
                            str(p).lower() for p in a.get("disabledPlans") or []
                        ),
                    }
                    for a in group.get("assignedLicenses") or []
                ],
                "members": members,
            }
        )
    user_ids = {u["id"] for u in users}
    for group in groups:  # members that are not users (devices, nested groups) are left out
        group["members"] = [m for m in group["members"] if m in user_ids]
    tenant = {
        "format": FORMAT,
        "organization": {
            "id": str(org.get("id") or uuid.uuid4()),
            "displayName": org.get("displayName") or "Cloned tenant",
            "domain": default or _domain_of(users) or "contoso.example",
            "countryLetterCode": org.get("countryLetterCode") or "US",
            "createdDateTime": org.get("createdDateTime") or now.isoformat(timespec="seconds"),
        },
        "skus": skus,
        "users": users,
        "groups": groups,
    }
    if pseudonymise:
        say("pseudonymising")
        tenant = pseudonymise_tenant(tenant)
    return tenant


def _read_users(client: Any) -> list[dict[str, Any]]:
    """Every user, with sign-in activity when the app is allowed to read it."""
    params = {"$select": CLONE_USER_SELECT + ",signInActivity", "$top": 500}
    try:
        return list(client.get_all("/users", params=params))
    except GraphStatusError as exc:
        if exc.status not in (400, 403):
            raise
    # signInActivity needs AuditLog.Read.All (and Entra ID P1): clone without it
    return list(client.get_all("/users", params={"$select": CLONE_USER_SELECT, "$top": 999}))


def _sku(item: Mapping[str, Any]) -> dict[str, Any]:
    units = item.get("prepaidUnits") or {}
    return {
        "skuId": str(item["skuId"]).lower(),
        "skuPartNumber": item.get("skuPartNumber") or str(item["skuId"]),
        "displayName": item.get("skuPartNumber") or str(item["skuId"]),
        "appliesTo": item.get("appliesTo") or "User",
        "capabilityStatus": item.get("capabilityStatus") or "Enabled",
        "prepaidUnits": {k: int(units.get(k) or 0) for k in _SKU_UNITS},
        "servicePlans": [
            {
                "servicePlanId": str(p["servicePlanId"]).lower(),
                "servicePlanName": p.get("servicePlanName") or "",
                "provisioningStatus": p.get("provisioningStatus") or "Success",
                "appliesTo": p.get("appliesTo") or "User",
            }
            for p in item.get("servicePlans") or []
        ],
    }


def _user(user: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    states = user.get("licenseAssignmentStates")
    if states is None:  # no states: every assigned license is taken as direct
        direct = [
            (a["skuId"], a.get("disabledPlans") or []) for a in user.get("assignedLicenses") or []
        ]
    else:
        direct = [
            (s["skuId"], s.get("disabledPlans") or [])
            for s in states
            if not s.get("assignedByGroup")
        ]
    result: dict[str, Any] = {
        "id": str(user["id"]),
        "userPrincipalName": str(user.get("userPrincipalName") or user["id"]),
        "displayName": user.get("displayName"),
        "givenName": user.get("givenName"),
        "surname": user.get("surname"),
        "mail": user.get("mail"),
        "accountEnabled": bool(
            True if user.get("accountEnabled") is None else user.get("accountEnabled")
        ),
        "usageLocation": user.get("usageLocation"),
        "country": user.get("country"),
        "department": user.get("department"),
        "jobTitle": user.get("jobTitle"),
        "employeeId": user.get("employeeId"),
        "userType": user.get("userType") or "Member",
        "createdDateTime": user.get("createdDateTime"),
        "licenses": [
            {"skuId": str(sku).lower(), "disabledPlans": sorted(str(p).lower() for p in plans)}
            for sku, plans in sorted(dict(direct).items())
        ],
    }
    activity = user.get("signInActivity")
    if "signInActivity" in user and activity is None:
        result["signIn"] = "missing"  # selected, but the service had no data for the user
    elif activity:
        result["signIn"] = {
            key: _days_ago(activity.get(source), now)
            for key, source in (
                ("lastSignInDaysAgo", "lastSignInDateTime"),
                ("lastNonInteractiveDaysAgo", "lastNonInteractiveSignInDateTime"),
                ("lastSuccessfulDaysAgo", "lastSuccessfulSignInDateTime"),
            )
        }
    return result


def _days_ago(text: str | None, now: dt.datetime) -> float | None:
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return round(max(0.0, (now - at).total_seconds() / 86400), 3)


def _domain_of(users: list[dict[str, Any]]) -> str | None:
    for user in users:
        upn = user["userPrincipalName"]
        if "@" in upn and "#EXT#" not in upn:
            return upn.rsplit("@", 1)[1]
    return None


# -- pseudonymisation -----------------------------------------------------------------------------


class _Names:
    """Consistent replacements: the same original always gets the same stand-in."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        self.departments: dict[str, str] = {}
        self.titles: dict[str, str] = {}

    def id(self, original: str) -> str:
        key = original.lower()
        if key not in self.ids:
            self.ids[key] = str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
        return self.ids[key]

    def domain(self, domain: str) -> str:
        first, dot, rest = domain.partition(".")
        key = first.lower()
        if key not in self.labels:
            self.labels[key] = f"org{len(self.labels) + 1}"
        return self.labels[key] + dot + rest

    @staticmethod
    def numbered(table: dict[str, str], original: str | None, prefix: str) -> str | None:
        if not original:
            return original
        key = original.casefold()
        if key not in table:
            table[key] = f"{prefix} {len(table) + 1}"
        return table[key]


def pseudonymise_tenant(tenant: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a seed with people and organisation replaced consistently (see the module)."""
    names = _Names()
    org = dict(tenant["organization"])
    org["id"] = names.id(org["id"])
    org["displayName"] = "Pseudonymised tenant"
    org["domain"] = names.domain(org["domain"])
    users = []
    for number, user in enumerate(tenant["users"], start=1):
        upn = _upn(user["userPrincipalName"], number, names)
        users.append(
            {
                **user,
                "id": names.id(user["id"]),
                "userPrincipalName": upn,
                "displayName": f"User {number:05d}",
                "givenName": "User",
                "surname": f"{number:05d}",
                "mail": upn if user.get("mail") else None,
                "department": names.numbered(
                    names.departments, user.get("department"), "Department"
                ),
                "jobTitle": names.numbered(names.titles, user.get("jobTitle"), "Job title"),
                "employeeId": f"E{number:06d}" if user.get("employeeId") else None,
            }
        )
    groups = []
    for number, group in enumerate(tenant.get("groups", []), start=1):
        groups.append(
            {
                **group,
                "id": names.id(group["id"]),
                "displayName": f"Group {number:03d}"
                + (" (licensing)" if group.get("assignedLicenses") else ""),
                "description": None,
                "mailNickname": f"group{number:03d}",
                "members": [names.id(m) for m in group.get("members", [])],
            }
        )
    return {**tenant, "organization": org, "users": users, "groups": groups}


def _upn(upn: str, number: int, names: _Names) -> str:
    local, _, domain = upn.rpartition("@")
    if "#EXT#" in local.upper():
        home = local[: local.upper().index("#EXT#")]
        external = home.rpartition("_")[2] or "example.com"
        return f"user{number:05d}_{names.domain(external)}#EXT#@{names.domain(domain)}"
    return f"user{number:05d}@{names.domain(domain)}" if domain else f"user{number:05d}"


def write_seed(tenant: Mapping[str, Any], path: Path) -> Path:
    """Write a seed as JSON atomically, readable by its owner only (it may hold personal data)."""
    if path.exists():
        raise ReportError(f"{path} already exists; choose another --output name.")
    if not path.parent.is_dir():
        raise ReportError(f"cannot write {path}: the folder {path.parent} does not exist.")

    def write(handle: IO[str]) -> None:
        json.dump(tenant, handle, indent=1, ensure_ascii=False)
        handle.write("\n")

    try:
        return atomic_write(path, write, mode=0o600)
    except FileExistsError as exc:
        raise ReportError(f"{path} already exists; choose another --output name.") from exc
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc
