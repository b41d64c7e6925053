"""Simulated tenant, Graph v1.0 resources: users, subscribedSkus, groups, organization.

:func:`resolve` maps a method and a raw relative URL to a handler and the roles it needs;
handlers take a :class:`Call` and return a :class:`Reply` or raise :class:`GraphFault`.
The raw path is split on ``/`` first and each segment is percent-decoded exactly once, so
``%23EXT%23`` is a ``#`` and ``%2523`` stays ``%23``. A key may also be given as
``users('...')`` (quotes doubled), which is the documented way to address a UPN that starts
with ``$``; a raw ``/users/$x@y`` is refused with 400 as the docs describe (``%24`` is
accepted, a choice: the docs are silent). Query strings are form-decoded, so a raw ``+`` is
a space: clients must send ``%2B``, as with the real service.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from batch.simulator import licensing
from batch.simulator.lag import ReadLag, UserSnapshot, matching, take_snapshot
from batch.simulator.odata import (
    GROUP_FILTERS,
    USER_FILTERS,
    Condition,
    compile_filter,
    make_skiptoken,
    parse_select,
    parse_top,
    read_skiptoken,
)
from batch.simulator.options import SimulatorOptions
from batch.simulator.render import (
    DEFAULT_USER_SELECT,
    GROUP_PROPERTIES,
    USER_PROPERTIES,
    render_group,
    render_skus,
    render_users,
    sku_plans,
)
from batch.simulator.responses import NOT_ALLOWED, GraphFault, Reply, bad_request, not_found
from batch.simulator.schema import count_applied
from batch.simulator.store import TenantStore

READ_USERS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
WRITE_USERS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
ASSIGN = frozenset(
    {"LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
)
READ_LICENSES = READ_USERS | {"LicenseAssignment.Read.All", "LicenseAssignment.ReadWrite.All"}
READ_SKUS = frozenset(
    {
        "LicenseAssignment.Read.All",
        "LicenseAssignment.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Organization.Read.All",
        "Organization.ReadWrite.All",
    }
)
READ_ORG = frozenset(
    {
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
READ_GROUPS = frozenset(
    {
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.Read.All",
        "GroupMember.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
WRITE_MEMBERS = frozenset(
    {"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
)
GROUP_ASSIGN = frozenset(
    {"LicenseAssignment.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
)
AUDIT_LOG = "AuditLog.Read.All"
#: users after this many in one page answer ``signInActivity: null`` when the list also asks
#: ``$count=true`` with ``ConsistencyLevel: eventual`` (see :meth:`GraphApi.list_users`)
SIGN_IN_COUNT_LIMIT = 120
ALL_ROLES = sorted(
    READ_USERS
    | WRITE_USERS
    | ASSIGN
    | READ_LICENSES
    | READ_SKUS
    | READ_ORG
    | READ_GROUPS
    | WRITE_MEMBERS
    | GROUP_ASSIGN
    | {AUDIT_LOG}
)

_KEY_SYNTAX = re.compile(
    r"^(users|groups|subscribedSkus)\((?:id=)?'((?:[^']|'')*)'\)$", re.IGNORECASE
)
_PATCHABLE = {
    "accountEnabled": bool,
    "usageLocation": (str, type(None)),
    "department": (str, type(None)),
    "jobTitle": (str, type(None)),
    "employeeId": (str, type(None)),
    "displayName": str,
    "givenName": (str, type(None)),
    "surname": (str, type(None)),
    "country": (str, type(None)),
}
_COLUMNS = {
    "accountEnabled": "account_enabled",
    "usageLocation": "usage_location",
    "department": "department",
    "jobTitle": "job_title",
    "employeeId": "employee_id",
    "displayName": "display_name",
    "givenName": "given_name",
    "surname": "surname",
    "country": "country",
}


@dataclass
class Call:
    """One Graph operation: a standalone request or one ``$batch`` item."""

    method: str
    segments: list[str]
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    base_url: str  # https://host:port/v1.0
    roles: frozenset[str] = frozenset()
    path: str = ""  # canonical relative path, e.g. /users
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def eventual(self) -> bool:
        return self.headers.get("consistencylevel", "").lower() == "eventual"


Handler = Callable[["GraphApi", Call], Reply]


def split_url(url: str) -> tuple[list[str], dict[str, str]]:
    """Segments (decoded once) and query options of a relative Graph URL."""
    path, _, query = url.partition("?")
    segments: list[str] = []
    for index, raw in enumerate(s for s in path.split("/") if s):
        match = _KEY_SYNTAX.match(unquote(raw)) if "(" in raw else None
        if match:
            segments += [match.group(1), match.group(2).replace("''", "'")]
            continue
        if raw.startswith("$") and index > 0 and raw not in ("$ref", "$count", "$batch"):
            raise bad_request(
                f"Bad request: the segment '{raw}' is not valid here. A key starting with '$' "
                f"must be addressed with the key syntax, e.g. /users('{raw}')."
            )
        segments.append(unquote(raw))
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.lower() if key.startswith("$") else key
        if name in params:
            raise bad_request(
                f"Query option '{key}' was specified more than once, but it "
                "must be specified at most once."
            )
        params[name] = value
    return segments, params


class GraphApi:
    """The resource handlers over one tenant store."""

    def __init__(
        self, store: TenantStore, options: SimulatorOptions, lag: ReadLag | None = None
    ) -> None:
        self.store = store
        self.options = options
        self.lag = lag

    # -- routing --------------------------------------------------------------------------

    def resolve(self, method: str, segments: list[str]) -> tuple[Handler, frozenset[str]]:
        """The handler and the roles (any of) for a request; GraphFault when none."""
        s = segments
        n = len(s)
        routes: dict[str, tuple[Handler, frozenset[str]]] = {}
        head = s[0].lower() if s else ""
        if head == "users":
            if n == 1:
                routes = {"GET": (GraphApi.list_users, READ_USERS)}
            elif n == 2 and s[1] == "$count":
                routes = {"GET": (GraphApi.count_users, READ_USERS)}
            elif n == 2:
                routes = {
                    "GET": (GraphApi.get_user, READ_USERS),
                    "PATCH": (GraphApi.patch_user, WRITE_USERS),
                }
            elif n == 3:
                action = s[2].lower()
                routes = {
                    "assignlicense": {"POST": (GraphApi.assign_license, ASSIGN)},
                    "licensedetails": {"GET": (GraphApi.license_details, READ_LICENSES)},
                    "reprocesslicenseassignment": {"POST": (GraphApi.reprocess, ASSIGN)},
                    "memberof": {"GET": (GraphApi.member_of, READ_USERS)},
                }.get(action, {})
        elif head == "subscribedskus" and n <= 2:
            routes = {"GET": (GraphApi.subscribed_skus, READ_SKUS)}
        elif head == "organization" and n <= 2:
            routes = {"GET": (GraphApi.organization, READ_ORG | READ_USERS)}
        elif head == "groups":
            if n == 1:
                routes = {"GET": (GraphApi.list_groups, READ_GROUPS)}
            elif n == 2:
                routes = {"GET": (GraphApi.get_group, READ_GROUPS)}
            elif n == 3 and s[2].lower() == "members":
                routes = {"GET": (GraphApi.group_members, READ_GROUPS)}
            elif n == 3 and s[2].lower() == "memberswithlicenseerrors":
                routes = {"GET": (GraphApi.members_with_errors, READ_GROUPS)}
            elif n == 3 and s[2].lower() == "assignlicense":
                routes = {"POST": (GraphApi.assign_group_license, GROUP_ASSIGN)}
            elif n == 4 and s[2].lower() == "members" and s[3] == "$ref":
                routes = {"POST": (GraphApi.add_member, WRITE_MEMBERS)}
            elif n == 5 and s[2].lower() == "members" and s[4] == "$ref":
                routes = {"DELETE": (GraphApi.remove_member, WRITE_MEMBERS)}
        if not routes:
            raise GraphFault(
                400 if head in ("users", "groups") else 404,
                "Request_BadRequest" if head in ("users", "groups") else "BadRequest",
                f"Resource not found for the segment '{s[-1] if s else ''}'."
                if head in ("users", "groups")
                else f"Invalid request URL: resource '{head}' does not exist in v1.0.",
            )
        if method not in routes:
            raise GraphFault(405, "Request_BadRequest", NOT_ALLOWED)
        return routes[method]

    # -- helpers --------------------------------------------------------------------------

    def _user(self, db: sqlite3.Connection, key: str) -> sqlite3.Row:
        row = self.store.user_row(db, key)
        if row is None:
            raise not_found(key)
        return row

    def _group(self, db: sqlite3.Connection, key: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM groups WHERE id=?", (key,)).fetchone()
        if row is None:
            raise not_found(key)
        return row

    def _json_body(self, call: Call) -> dict[str, Any]:
        if not isinstance(call.body, dict):
            raise bad_request("Empty Payload. JSON content expected.")
        return call.body

    def _context(self, call: Call, entity: str, select: list[str] | None) -> str:
        suffix = f"({','.join(select)})" if select else ""
        return f"{call.base_url}/$metadata#{entity}{suffix}"

    def _next_link(self, call: Call, last_seq: int) -> str:
        params = {k: v for k, v in call.params.items() if k != "$skiptoken"}
        params["$skiptoken"] = make_skiptoken(last_seq)
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        return f"{call.base_url}{call.path}?{query}"

    def _advanced_allowed(self, call: Call) -> bool:
        return call.eventual and call.params.get("$count", "").lower() == "true"

    def _page(
        self,
        call: Call,
        db: sqlite3.Connection,
        table: str,
        condition: Condition,
        top: int,
        *,
        extra_sql: str = "",
        extra_params: tuple[Any, ...] = (),
    ) -> tuple[list[sqlite3.Row], str | None, int | None]:
        after = read_skiptoken(call.params.get("$skiptoken"))
        where = f"{table}.seq > ? AND {condition.sql}{extra_sql}"
        rows = list(
            db.execute(
                f"SELECT {table}.* FROM {table} WHERE {where} ORDER BY {table}.seq LIMIT ?",  # noqa: S608
                (after, *condition.params, *extra_params, top + 1),
            )
        )
        next_link = None
        if len(rows) > top:
            rows = rows[:top]
            next_link = self._next_link(call, rows[-1]["seq"])
        count = None
        if self._advanced_allowed(call) and "$skiptoken" not in call.params:
            count = db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {condition.sql}{extra_sql}",  # noqa: S608
                (*condition.params, *extra_params),
            ).fetchone()[0]
        return rows, next_link, count

    def _collection(
        self, context: str, values: list[Any], next_link: str | None, count: int | None
    ) -> Reply:
        body: dict[str, Any] = {"@odata.context": context}
        if count is not None:
            body["@odata.count"] = count
        body["value"] = values
        if next_link:
            body["@odata.nextLink"] = next_link
        return Reply(200, body)

    def _check_query_options(self, call: Call, allowed: set[str]) -> None:
        for name in call.params:
            if name.startswith("$") and name not in allowed:
                if name in (
                    "$orderby",
                    "$skip",
                    "$expand",
                    "$search",
                    "$count",
                    "$filter",
                    "$select",
                    "$top",
                    "$skiptoken",
                    "$format",
                ):
                    raise bad_request(
                        f"Query option '{name}' is not supported for this request.",
                        code="Request_UnsupportedQuery",
                    )
                raise bad_request(f"Unrecognized query option '{name}'.")

    # -- users ----------------------------------------------------------------------------

    def list_users(self, call: Call) -> Reply:
        """GET /users: $select, $filter, $top, $count, paging.

        Choice (msgraph-sdk-powershell issue 1898 reports empty values, the docs say
        nothing): when ``signInActivity`` is selected and the request carries ``$count=true``
        with ``ConsistencyLevel: eventual``, every user after the 120th of the page answers
        ``"signInActivity": null``. A plain ``$select`` with ``$top`` up to 500 is complete.
        """
        self._check_query_options(
            call, {"$select", "$filter", "$top", "$count", "$skiptoken", "$search"}
        )
        select = parse_select(call.params.get("$select"), USER_PROPERTIES, "User")
        condition = Condition()
        if "$filter" in call.params:
            condition = compile_filter(call.params["$filter"], USER_FILTERS, "User")
        sign_in = condition.sign_in or (select is not None and "signInActivity" in select)
        if sign_in and AUDIT_LOG not in call.roles:
            raise GraphFault(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        top = parse_top(call.params.get("$top"), 100, 500 if sign_in else 999)
        extra_sql, extra_params = "", ()
        if "$search" in call.params:
            if not call.eventual:
                raise bad_request(
                    "Request with $search query parameter only works through MSGraph with a "
                    "special request header: 'ConsistencyLevel: eventual'"
                )
            extra_sql, extra_params = _search_sql(call.params["$search"])
        if condition.advanced and not self._advanced_allowed(call):
            raise bad_request("Unsupported Query.", code="Request_UnsupportedQuery")
        with self.store.read() as db:
            rows, next_link, count = self._page(
                call, db, "users", condition, top, extra_sql=extra_sql, extra_params=extra_params
            )
            rows, next_link, known = self._lagging_page(
                call,
                db,
                rows,
                next_link,
                top,
                condition.sql + extra_sql,
                (*condition.params, *extra_params),
            )
            values = render_users(db, rows, select or list(DEFAULT_USER_SELECT), known)
        if select and "signInActivity" in select and self._advanced_allowed(call):
            for value in values[SIGN_IN_COUNT_LIMIT:]:
                value["signInActivity"] = None
        return self._collection(self._context(call, "users", select), values, next_link, count)

    def _lagging_page(
        self,
        call: Call,
        db: sqlite3.Connection,
        rows: list[Any],
        next_link: str | None,
        top: int,
        where: str,
        params: tuple[Any, ...],
    ) -> tuple[list[Any], str | None, dict[str, list[Any]]]:
        """The page as this read sees it when some of its users lag a recent write.

        Users of the page's range (by sequence) whose older state this read shows replace
        their current rows, leave the page when that state fails the filter, or join it when
        it matches although the current one does not (see :mod:`batch.simulator.lag`).
        """
        if self.lag is None:
            return rows, next_link, {}
        pending = self.lag.pending()
        if not pending:
            return rows, next_link, {}
        after = read_skiptoken(call.params.get("$skiptoken"))
        upper = rows[-1]["seq"] if next_link and rows else None
        in_range = [s for s in pending if s.seq > after and (upper is None or s.seq <= upper)]
        shown: list[UserSnapshot] = self.lag.lagging(in_range)
        if not shown:
            return rows, next_link, {}
        old_ids = {s.user_id for s in shown}
        keep = matching(db, shown, where, params)
        merged = [r for r in rows if r["id"] not in old_ids]
        merged += [s.row for s in shown if s.user_id in keep]
        merged.sort(key=lambda r: r["seq"])
        if len(merged) > top:
            merged = merged[:top]
            next_link = self._next_link(call, merged[-1]["seq"])
        return merged, next_link, {s.user_id: s.licenses for s in shown}

    def _lagging_user(self, row: Any) -> tuple[Any, dict[str, list[Any]]]:
        """The row (and license rows) one read of a user shows."""
        snapshot = self.lag.view(row["id"]) if self.lag is not None else None
        if snapshot is None:
            return row, {}
        return snapshot.row, {snapshot.user_id: snapshot.licenses}

    def _snapshots(self, db: sqlite3.Connection, user_ids: list[str]) -> list[UserSnapshot]:
        return self.lag.snapshots(db, user_ids) if self.lag is not None else []

    def _written(self, snapshots: list[UserSnapshot]) -> None:
        if self.lag is not None:
            self.lag.record(snapshots)

    def count_users(self, call: Call) -> Reply:
        """GET /users/$count (needs ConsistencyLevel: eventual)."""
        if not call.eventual:
            raise bad_request("$count is not currently supported.")
        condition = Condition()
        if "$filter" in call.params:
            condition = compile_filter(call.params["$filter"], USER_FILTERS, "User")
        count = (
            self.store.connection()
            .execute(
                f"SELECT COUNT(*) FROM users WHERE {condition.sql}",
                condition.params,  # noqa: S608
            )
            .fetchone()[0]
        )
        return Reply(200, str(count), {"Content-Type": "text/plain"})

    def get_user(self, call: Call) -> Reply:
        """GET /users/{id | userPrincipalName}."""
        self._check_query_options(call, {"$select"})
        select = parse_select(call.params.get("$select"), USER_PROPERTIES, "User")
        if select and "signInActivity" in select and AUDIT_LOG not in call.roles:
            raise GraphFault(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        with self.store.read() as db:
            row, known = self._lagging_user(self._user(db, call.segments[1]))
            body = render_users(db, [row], select or list(DEFAULT_USER_SELECT), known)[0]
        body = {"@odata.context": self._context(call, "users", select) + "/$entity", **body}
        return Reply(200, body)

    def patch_user(self, call: Call) -> Reply:
        """PATCH /users/{id}: the few properties a licensing tool changes."""
        body = self._json_body(call)
        updates: dict[str, Any] = {}
        for prop, value in body.items():
            canonical = next((p for p in _PATCHABLE if p.lower() == prop.lower()), None)
            if canonical is None:
                if prop.lower() in {p.lower() for p in USER_PROPERTIES}:
                    raise bad_request(f"Property '{prop}' is read-only and cannot be set.")
                raise bad_request(
                    f"Property '{prop}' does not exist as a declared property or extension "
                    "property."
                )
            expected = _PATCHABLE[canonical]
            if isinstance(value, bool) is not (expected is bool) or not isinstance(value, expected):
                raise bad_request(
                    f"Invalid value specified for property '{canonical}' of resource 'User'."
                )
            if (
                canonical == "usageLocation"
                and value is not None
                and not re.fullmatch(r"[A-Z]{2}", value)
            ):
                raise bad_request(
                    "Invalid value specified for property 'usageLocation' of resource 'User'."
                )
            updates[canonical] = value
        with self.store.write() as db:
            row = self._user(db, call.segments[1])
            snapshots = self._snapshots(db, [row["id"]])
            for prop, value in updates.items():
                db.execute(
                    f"UPDATE users SET {_COLUMNS[prop]}=? WHERE id=?",  # noqa: S608
                    (int(value) if isinstance(value, bool) else value, row["id"]),
                )
            if "usageLocation" in updates and updates["usageLocation"] != row["usage_location"]:
                db.execute(
                    "UPDATE users SET usage_location_changed=? WHERE id=?", (time.time(), row["id"])
                )
            count_applied(db, row["id"], "patch")
        self._written(snapshots)
        return Reply(204)

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

    def member_of(self, call: Call) -> Reply:
        """GET /users/{id}/memberOf (groups only)."""
        with self.store.read() as db:
            row = self._user(db, call.segments[1])
            groups = db.execute(
                "SELECT g.* FROM groups g JOIN members m ON m.group_id = g.id "
                "WHERE m.user_id=? ORDER BY g.seq",
                (row["id"],),
            ).fetchall()
        values = [{"@odata.type": "#microsoft.graph.group", **render_group(g)} for g in groups]
        return self._collection(f"{call.base_url}/$metadata#directoryObjects", values, None, None)

    # -- tenant ---------------------------------------------------------------------------

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

    # -- groups ---------------------------------------------------------------------------

    def list_groups(self, call: Call) -> Reply:
        """GET /groups with $filter (displayName eq '...'), $select, $top, paging."""
        self._check_query_options(call, {"$select", "$filter", "$top", "$count", "$skiptoken"})
        select = parse_select(call.params.get("$select"), GROUP_PROPERTIES, "Group")
        condition = Condition()
        if "$filter" in call.params:
            condition = compile_filter(call.params["$filter"], GROUP_FILTERS, "Group")
        if condition.advanced and not self._advanced_allowed(call):
            raise bad_request("Unsupported Query.", code="Request_UnsupportedQuery")
        top = parse_top(call.params.get("$top"), 100, 999)
        with self.store.read() as db:
            rows, next_link, count = self._page(call, db, "groups", condition, top)
        values = [render_group(r, select) for r in rows]
        return self._collection(self._context(call, "groups", select), values, next_link, count)

    def get_group(self, call: Call) -> Reply:
        """GET /groups/{id}."""
        self._check_query_options(call, {"$select"})
        select = parse_select(call.params.get("$select"), GROUP_PROPERTIES, "Group")
        with self.store.read() as db:
            row = self._group(db, call.segments[1])
        return Reply(
            200,
            {
                "@odata.context": f"{call.base_url}/$metadata#groups/$entity",
                **render_group(row, select),
            },
        )

    def group_members(self, call: Call) -> Reply:
        """GET /groups/{id}/members (users), paged."""
        return self._members(call, errors_only=False)

    def members_with_errors(self, call: Call) -> Reply:
        """GET /groups/{id}/membersWithLicenseErrors."""
        return self._members(call, errors_only=True)

    def _members(self, call: Call, *, errors_only: bool) -> Reply:
        self._check_query_options(call, {"$select", "$top", "$skiptoken"})
        select = parse_select(call.params.get("$select"), USER_PROPERTIES, "User")
        top = parse_top(call.params.get("$top"), 100, 999)
        with self.store.read() as db:
            group = self._group(db, call.segments[1])
            sql = " AND users.id IN (SELECT user_id FROM members WHERE group_id = ?)"
            params: tuple[Any, ...] = (group["id"],)
            if errors_only:
                sql += (
                    " AND users.id IN (SELECT user_id FROM licenses WHERE source = ? "
                    "AND state = 'Error')"
                )
                params += (group["id"],)
            rows, next_link, _ = self._page(
                call, db, "users", Condition(), top, extra_sql=sql, extra_params=params
            )
            values = [
                {"@odata.type": "#microsoft.graph.user", **u}
                for u in render_users(db, rows, select or list(DEFAULT_USER_SELECT))
            ]
        return self._collection(
            f"{call.base_url}/$metadata#directoryObjects", values, next_link, None
        )

    def add_member(self, call: Call) -> Reply:
        """POST /groups/{id}/members/$ref: 204; 400 if already a member; 404 if unknown."""
        body = self._json_body(call)
        ref = body.get("@odata.id")
        if not isinstance(ref, str) or "/" not in ref:
            raise bad_request("Invalid object identifier '@odata.id'.")
        member_id = unquote(ref.rstrip("/").rsplit("/", 1)[-1])
        with self.store.write() as db:
            group = self._group(db, call.segments[1])
            user = db.execute("SELECT id FROM users WHERE id=?", (member_id,)).fetchone()
            if user is None:
                raise not_found(member_id)
            if db.execute(
                "SELECT 1 FROM members WHERE group_id=? AND user_id=?", (group["id"], member_id)
            ).fetchone():
                raise bad_request(
                    "One or more added object references already exist for the "
                    "following modified properties: 'members'."
                )
            db.execute("INSERT INTO members VALUES(?, ?)", (group["id"], member_id))
            licensing.mark_group_due(db, group["id"], self._due())
            count_applied(db, f"{group['id']}/{member_id}", "addMember")
        return Reply(204)

    def remove_member(self, call: Call) -> Reply:
        """DELETE /groups/{id}/members/{id}/$ref: 204; 404 if not a member."""
        with self.store.write() as db:
            group = self._group(db, call.segments[1])
            member_id = call.segments[3]
            gone = db.execute(
                "DELETE FROM members WHERE group_id=? AND user_id=?", (group["id"], member_id)
            ).rowcount
            if not gone:
                raise not_found(member_id)
            licensing.mark_group_due(db, group["id"], self._due())
            count_applied(db, f"{group['id']}/{member_id}", "removeMember")
        return Reply(204)

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

    def _due(self) -> float:
        return time.time() + self.options.scaled(self.options.group_processing_delay)

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


def _search_sql(text: str) -> tuple[str, tuple[Any, ...]]:
    match = re.fullmatch(r'"(displayName|mail|userPrincipalName):([^"]*)"', text.strip())
    if not match:
        raise bad_request(
            "Syntax error: invalid $search expression.", code="Request_UnsupportedQuery"
        )
    column = {"displayName": "display_name", "mail": "mail", "userPrincipalName": "upn"}[
        match.group(1)
    ]
    needle = match.group(2).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f" AND users.{column} LIKE ? ESCAPE '\\'", (f"%{needle}%",)


def dump_json(body: Any) -> bytes:
    """Serialise a reply body."""
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
