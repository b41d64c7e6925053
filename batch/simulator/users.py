"""Simulated tenant, the users resource: list, count, get, patch, memberOf.

``GET /users`` supports ``$select``, ``$filter``, ``$top``, ``$count``, ``$search`` and
paging; ``signInActivity`` (selected or filtered on) needs ``AuditLog.Read.All``. A read
may show a user as before a recent write (see :mod:`batch.simulator.lag`).
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from batch.simulator.calls import Call
from batch.simulator.endpoints import Endpoints
from batch.simulator.lag import UserSnapshot, matching
from batch.simulator.odata import (
    USER_FILTERS,
    Condition,
    compile_filter,
    parse_select,
    parse_top,
    read_skiptoken,
)
from batch.simulator.render import DEFAULT_USER_SELECT, USER_PROPERTIES, render_group, render_users
from batch.simulator.responses import GraphFault, Reply, bad_request
from batch.simulator.schema import count_applied

AUDIT_LOG = "AuditLog.Read.All"
#: users after this many in one page answer ``signInActivity: null`` when the list also asks
#: ``$count=true`` with ``ConsistencyLevel: eventual`` (see :meth:`UserEndpoints.list_users`)
SIGN_IN_COUNT_LIMIT = 120
#: the properties PATCH accepts, with the Python types their JSON values may have
_PATCHABLE: dict[str, type | tuple[type, ...]] = {
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


class UserEndpoints(Endpoints):
    """GET/PATCH /users and the user's group memberships."""

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
                and isinstance(value, str)
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
