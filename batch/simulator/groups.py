"""Simulated tenant, the groups resource: list, get, members, membership changes.

A membership change marks the group's license processing due (see
:mod:`batch.simulator.licensing`); ``membersWithLicenseErrors`` lists the members whose
inherited license is in error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from batch.simulator import licensing
from batch.simulator.calls import Call
from batch.simulator.endpoints import Endpoints
from batch.simulator.odata import GROUP_FILTERS, Condition, compile_filter, parse_select, parse_top
from batch.simulator.render import (
    DEFAULT_USER_SELECT,
    GROUP_PROPERTIES,
    USER_PROPERTIES,
    render_group,
    render_users,
)
from batch.simulator.responses import Reply, bad_request, not_found
from batch.simulator.schema import count_applied


class GroupEndpoints(Endpoints):
    """GET /groups, the members of a group, adding and removing members."""

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
