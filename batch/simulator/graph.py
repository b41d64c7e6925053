"""Simulated tenant, Graph v1.0 resources: users, subscribedSkus, groups, organization.

:meth:`GraphApi.resolve` maps a method and the segments of a relative URL (see
:mod:`batch.simulator.calls`) to a handler and the roles it needs (any of them). The
handlers live in one module per resource: :mod:`~batch.simulator.users`,
:mod:`~batch.simulator.groups`, :mod:`~batch.simulator.assignments` (the licensing
endpoints) and :mod:`~batch.simulator.organization` (subscribedSkus, organization).
"""

from __future__ import annotations

from collections.abc import Callable

from batch.simulator.assignments import LicenseEndpoints
from batch.simulator.calls import Call
from batch.simulator.groups import GroupEndpoints
from batch.simulator.organization import OrganizationEndpoints
from batch.simulator.responses import NOT_ALLOWED, GraphFault, Reply
from batch.simulator.users import AUDIT_LOG, UserEndpoints

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

Handler = Callable[["GraphApi", Call], Reply]
Route = tuple[Handler, frozenset[str]]


class GraphApi(UserEndpoints, LicenseEndpoints, GroupEndpoints, OrganizationEndpoints):
    """The resource handlers over one tenant store, and the routes to them."""

    def resolve(self, method: str, segments: list[str]) -> tuple[Handler, frozenset[str]]:
        """The handler and the roles (any of) for a request; GraphFault when none."""
        s = segments
        n = len(s)
        routes: dict[str, Route] = {}
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
                actions: dict[str, dict[str, Route]] = {
                    "assignlicense": {"POST": (GraphApi.assign_license, ASSIGN)},
                    "licensedetails": {"GET": (GraphApi.license_details, READ_LICENSES)},
                    "reprocesslicenseassignment": {"POST": (GraphApi.reprocess, ASSIGN)},
                    "memberof": {"GET": (GraphApi.member_of, READ_USERS)},
                }
                routes = actions.get(s[2].lower(), {})
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
