"""Plan: compute, read-only, exactly which writes a sheet needs, and whether seats suffice.

The plan is a value. ``plan`` renders it as a workbook; ``apply`` executes the very same
operations (see :mod:`batch.run.execute`). Every input row gets one :class:`RowPlan` with a
status:

- ``Planned``: changes are needed and will be sent;
- ``NoChange``: the user already is as the row asks;
- ``Invalid`` / ``Deferred`` / ``Skipped``: from validation (a duplicate row is Skipped);
- ``Failed``: cannot be applied: user not found, no free seat, no usage location, a group
  that does not exist or is dynamic; and a row whose licenses would enable two mutually
  exclusive service plans (Exchange Online Kiosk, Plan 1, Plan 2:
  :data:`batch.intake.catalog.MUTUALLY_EXCLUSIVE_PLANS`), counting what the user keeps
  directly and inherits from groups: Graph refuses that assignLicense, so nothing of the
  row is sent (ErrorCode ``MutuallyExclusiveViolation``) and its Detail says which
  products clash and how to resolve it (:mod:`batch.run.clashes`);
- ``Skipped`` also for rows that ask only for what Graph cannot do directly (removing a
  license inherited from a group) and for licenses asked for a disabled account.

Operations run in three waves: first what only gives seats back (removals, group leaves),
then swaps (one ``assignLicense`` that takes a seat of one SKU and gives back another's),
then what only takes seats (adds, group joins). So a sheet of leavers and joiners works
with the seats the leavers free. Seats are forecast per SKU, wave by wave and in sheet order
within a wave, before anything is written: a seat given back in a wave serves only the later
waves (writes within a wave run concurrently), and a row that cannot get every seat it
needs fails whole, with the shortfall, and is never sent to fail at Graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batch.intake.sources import paused_gc
from batch.intake.validate import Action, RowRequest, ValidationResult
from batch.run.changes import (
    Desire,
    LicenseChange,
    LicenseWant,
    license_change,
    plan_clash,
)
from batch.run.clashes import clash_detail, sku_plans
from batch.run.seats import FREE_WAVE, SWAP_WAVE, TAKE_WAVE, settle
from batch.run.tenant import GroupInfo, SkuSeats, UserState
from batch.status import RowStatus

#: the statuses of the report's Rows sheet
PLANNED, NO_CHANGE, INVALID, FAILED, DEFERRED, SKIPPED = (
    RowStatus.PLANNED,
    RowStatus.NO_CHANGE,
    RowStatus.INVALID,
    RowStatus.FAILED,
    RowStatus.DEFERRED,
    RowStatus.SKIPPED,
)
APPLIED = RowStatus.APPLIED


@dataclass(frozen=True)
class PlannedOp:
    """One Graph write the plan needs, in a JSON-friendly form the journal can keep."""

    key: str
    row: int
    user_id: str
    upn: str
    kind: str  # assignLicense | usageLocation | joinGroup | leaveGroup | groupAssignLicense
    method: str
    url: str
    body: Any
    wave: int
    summary: str  # one line for the report's Changes sheet
    #: for assignLicense: the usage location to set first (PATCH in the same $batch)
    usage_location: str | None = None
    #: what the user had before, for undo: {"usageLocation": .., "licenses": {sku: [plans]}};
    #: for groupAssignLicense (``user_id`` is the group's id): {"group": id, "licenses": ..}
    before: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy for the journal."""
        return {
            "key": self.key,
            "row": self.row,
            "user_id": self.user_id,
            "upn": self.upn,
            "kind": self.kind,
            "method": self.method,
            "url": self.url,
            "body": self.body,
            "wave": self.wave,
            "summary": self.summary,
            "usage_location": self.usage_location,
            "before": dict(self.before),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedOp:
        """The inverse of :meth:`as_dict`."""
        return cls(
            **{
                k: data[k]
                for k in (
                    "key",
                    "row",
                    "user_id",
                    "upn",
                    "kind",
                    "method",
                    "url",
                    "body",
                    "wave",
                    "summary",
                    "usage_location",
                    "before",
                )
            }
        )


@dataclass
class RowPlan:
    """What the plan says about one input row."""

    request: RowRequest
    status: str
    detail: str = ""
    error_code: str | None = None
    user_id: str | None = None
    added: list[str] = field(default_factory=list)  # part numbers
    removed: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)  # keys of this row's operations

    @property
    def row(self) -> int:
        return self.request.row


@dataclass
class SeatForecast:
    """One SKU's seats: free now, given back and taken by the plan, and any shortfall."""

    before: SkuSeats  # as read when planning
    freed: int = 0
    taken: int = 0
    shortfall: int = 0  # seats rows asked for beyond what was free

    @property
    def sku_id(self) -> str:
        return self.before.sku_id

    @property
    def part_number(self) -> str:
        return self.before.part_number

    @property
    def consumed(self) -> int:
        return self.before.consumed

    @property
    def free_before(self) -> int:
        return self.before.free

    @property
    def free_after(self) -> int:
        return self.free_before + self.freed - self.taken

    @property
    def consumed_after(self) -> int:
        return self.consumed - self.freed + self.taken


@dataclass
class Plan:
    """The whole plan: one RowPlan per input row, the operations, the seat forecast."""

    rows: list[RowPlan]
    ops: list[PlannedOp]
    seats: list[SeatForecast]
    exact: bool = False

    def counts(self) -> Counter[str]:
        """Rows per status."""
        return Counter(r.status for r in self.rows)

    def op_counts(self) -> Counter[str]:
        """Operations per kind; swaps (an add and a remove in one call) counted apart."""
        counts: Counter[str] = Counter()
        for op in self.ops:
            if op.kind == "assignLicense":
                body = op.body or {}
                adds, removes = body.get("addLicenses") or [], body.get("removeLicenses") or []
                counts["swaps" if adds and removes else "adds" if adds else "removes"] += 1
            else:
                counts[op.kind] += 1
        return counts

    @property
    def removals(self) -> int:
        """Licenses taken away from users by this plan (the removal guard counts these)."""
        return sum(
            len((op.body or {}).get("removeLicenses") or [])
            for op in self.ops
            if op.kind == "assignLicense"
        )

    def shortfalls(self) -> list[SeatForecast]:
        """SKUs the sheet asked more seats of than are free."""
        return [s for s in self.seats if s.shortfall]


@dataclass(frozen=True)
class PlanOptions:
    """How to read the sheet against the tenant."""

    exact: bool = False
    default_usage_location: str | None = None
    include_disabled: bool = False  # assign licenses to disabled accounts too
    #: an empty DisabledPlans means "enable every plan" rather than "not said" (undo uses it)
    exact_plans: bool = False


def desire_for(
    request: RowRequest, options: PlanOptions, *, leaving: frozenset[str] = frozenset()
) -> Desire:
    """What a validated row asks of its user, in the terms of :mod:`batch.run.changes`.

    :param leaving: ids of the groups the row's user leaves in the same row.
    """

    def plans(add: Any) -> frozenset[str] | None:
        given = frozenset(p.lower() for p in add.disabled_plans)
        return given if (given or options.exact_plans) else None

    return Desire(
        add=tuple(LicenseWant(a.sku_id.lower(), plans(a)) for a in request.add_licenses),
        remove=frozenset(s.lower() for s in request.remove_licenses),
        usage_location=request.usage_location,
        offboard=request.action is Action.OFFBOARD,
        exact=options.exact,
        exact_plans=options.exact_plans,
        leaving=leaving,
    )


def build_plan(
    validation: ValidationResult,
    *,
    seats: Iterable[SkuSeats],
    users: Mapping[str, UserState],
    groups: Mapping[str, GroupInfo] | None = None,
    group_problems: Mapping[str, str] | None = None,
    options: PlanOptions | None = None,
    graph_url: str = "https://graph.microsoft.com/v1.0",
    group_names: Mapping[str, str] | None = None,
) -> Plan:
    """Plan every row of ``validation`` against the tenant's state. Reads nothing, writes nothing.

    :param users: ``{casefolded UPN or object id: state}`` for the sheet's users.
    :param groups: ``{casefolded name or id: group}`` for the groups the sheet names.
    :param group_names: group id -> display name of other groups, to name the group a
        clashing license is inherited from (its id otherwise).
    """
    options = options or PlanOptions()
    groups = groups or {}
    group_problems = group_problems or {}
    forecast = {s.sku_id: SeatForecast(s) for s in seats}
    names = {s.sku_id: s.part_number for s in forecast.values()}
    planner = _Planner(options, users, groups, group_problems, forecast, names, graph_url)
    planner.group_names.update(group_names or {})
    with paused_gc():  # many small acyclic objects: see paused_gc
        rows = [
            planner.plan_row(request, validation.detail(request.row)) for request in validation.rows
        ]
        planner.settle_seats(rows)
    if "usage_location" in validation.sheet.fields:  # the sheet has the column: name it
        header = validation.sheet.column_name("usage_location")
        for row in rows:
            if row.error_code == "NoUsageLocation":
                row.detail = (
                    f"the user has no usage location and the '{header}' cell is empty: fill it "
                    "in (a country code such as US) or pass --default-usage-location"
                )
    ops = [op for op in planner.ops if op.key in planner.kept]
    return Plan(
        rows=rows,
        ops=ops,
        seats=sorted(forecast.values(), key=lambda s: s.part_number.lower()),
        exact=options.exact,
    )


class _Planner:
    """The row-by-row work of :func:`build_plan`."""

    def __init__(
        self,
        options: PlanOptions,
        users: Mapping[str, UserState],
        groups: Mapping[str, GroupInfo],
        group_problems: Mapping[str, str],
        forecast: dict[str, SeatForecast],
        names: dict[str, str],
        graph_url: str,
    ) -> None:
        self.options = options
        self.users = users
        self.groups = groups
        self.group_problems = group_problems
        self.forecast = forecast
        self.names = names
        self.graph_url = graph_url.rstrip("/")
        self.ops: list[PlannedOp] = []
        self.kept: set[str] = set()
        # per row: seats it takes and frees, settled in sheet order once all rows are planned
        self.takes: dict[int, list[tuple[int, str]]] = {}  # row -> (wave, sku)
        self.frees: dict[int, list[tuple[int, str]]] = {}
        self.sku_plans = sku_plans(f.before for f in forecast.values())
        self.group_names = {g.id: g.display_name for g in groups.values()}
        self._desires: dict[tuple[object, ...], Desire] = {}

    def label(self, sku: str) -> str:
        return self.names.get(sku, sku)

    def plan_row(self, request: RowRequest, findings: str) -> RowPlan:
        """Plan one row; ``findings`` is validation's word on it (errors, then warnings)."""
        if request.status is not RowStatus.READY:
            status = {RowStatus.INVALID: INVALID, RowStatus.DEFERRED: DEFERRED}.get(
                request.status, SKIPPED
            )
            return RowPlan(request, status, findings)
        state = self.users.get(request.user.casefold())
        if state is None:
            return RowPlan(request, FAILED, f"no user {request.user} in the tenant", "UserNotFound")
        plan = RowPlan(request, PLANNED, user_id=state.id)
        if not state.account_enabled and self._adds_to_disabled(request, state):  # or NoChange
            plan.status, plan.error_code = SKIPPED, "AccountDisabled"
            plan.detail = (
                "the account is disabled: licenses are not added (--include-disabled to add anyway)"
            )
            return plan

        joins, leaves, problem = self._group_changes(request, state)
        if problem:
            plan.status, plan.error_code, plan.detail = FAILED, "GroupProblem", problem
            return plan
        desire = self._desire(request, frozenset(g.id for g in leaves))
        change = license_change(
            desire,
            state,
            default_usage_location=self.options.default_usage_location,
            name=self.names,
        )
        if change.blocked:
            plan.status, plan.error_code, plan.detail = FAILED, "NoUsageLocation", change.blocked
            return plan
        clash = plan_clash(state, change, self.sku_plans)
        if clash:
            plan.status, plan.error_code = FAILED, "MutuallyExclusiveViolation"
            plan.detail = "; ".join(
                filter(None, [findings, clash_detail(clash, self.label, self.group_names)])
            )
            return plan
        # joining a licensed group takes a seat of each of its SKUs the user does not hold yet
        group_takes = [
            sku
            for group in joins
            for sku in sorted(group.sku_ids)
            if not state.holds(sku) and sku not in change.add
        ]
        wave = _license_wave(change)
        self.takes[request.row] = [(wave, sku) for sku in change.new_seats] + [
            (TAKE_WAVE, sku) for sku in group_takes
        ]
        self.frees[request.row] = [(wave, sku) for sku in change.freed_seats] + [
            (FREE_WAVE, sku)
            for group in leaves
            for sku in sorted(group.sku_ids)
            if state.holds(sku)
            and not state.licenses[sku].direct
            and state.licenses[sku].groups == (group.id,)
        ]
        self._emit(request, state, change, joins, leaves, plan, wave)
        plan.added = [self.label(s) for s in change.add if s in change.new_seats]
        plan.removed = [self.label(s) for s in change.remove]
        if not plan.ops:  # an offboarding asks only what it can: nothing left is NoChange
            refused = "cannot be removed" in str(change.notes) and request.action != Action.OFFBOARD
            plan.status = SKIPPED if refused else NO_CHANGE
        plan.detail = "; ".join(filter(None, [findings, *change.notes]))
        return plan

    def _desire(self, request: RowRequest, leaving: frozenset[str]) -> Desire:
        """:func:`desire_for`, made once for all the rows that ask the same (most do)."""
        key = (
            request.add_licenses,
            request.remove_licenses,
            request.usage_location,
            request.action,
            leaving,
        )
        desire = self._desires.get(key)
        if desire is None:
            desire = self._desires[key] = desire_for(request, self.options, leaving=leaving)
        return desire

    def _adds_to_disabled(self, request: RowRequest, state: UserState) -> bool:
        if not request.add_licenses or self.options.include_disabled:
            return False
        return bool(license_change(self._desire(request, frozenset()), state, name=self.names).add)

    def _group_changes(
        self, request: RowRequest, state: UserState
    ) -> tuple[list[GroupInfo], list[GroupInfo], str | None]:
        joins: list[GroupInfo] = []
        leaves: list[GroupInfo] = []
        for names, target, joining in (
            (request.join_groups, joins, True),
            (request.leave_groups, leaves, False),
        ):
            for name in names:
                key = name.strip().casefold()
                if key in self.group_problems:
                    return [], [], self.group_problems[key]
                group = self.groups.get(key)
                if group is None:
                    return [], [], f"no group named '{name}'"
                if group.dynamic:
                    return (
                        [],
                        [],
                        f"'{group.display_name}' has dynamic membership: "
                        "it cannot be joined or left",
                    )
                if (state.id in group.members) != joining:
                    target.append(group)
        return joins, leaves, None

    def _emit(
        self,
        request: RowRequest,
        state: UserState,
        change: LicenseChange,
        joins: list[GroupInfo],
        leaves: list[GroupInfo],
        plan: RowPlan,
        wave: int,
    ) -> None:
        """Add the row's writes: its licenses (or only its usage location), leaves, joins."""
        row = request.row
        before = _before(state, change)
        if change.writes_license:
            self._add(plan, self._license_op(row, state, change, wave, before))
        elif change.usage_location:
            self._add(plan, _usage_location_op(row, state, change.usage_location, before))
        for group in leaves:
            self._add(plan, _leave_op(row, state, group))
        for group in joins:
            self._add(plan, self._join_op(row, state, group))

    def _license_op(
        self,
        row: int,
        state: UserState,
        change: LicenseChange,
        wave: int,
        before: Mapping[str, Any],
    ) -> PlannedOp:
        """The user's one assignLicense: every add and remove, with the usage location first."""
        adds = {sku: sorted(plans) for sku, plans in change.add.items()}
        body = {
            "addLicenses": [{"skuId": sku, "disabledPlans": plans} for sku, plans in adds.items()],
            "removeLicenses": list(change.remove),
        }
        parts = [
            f"+{self.label(s)}" + (f" (disabled: {len(p)})" if p else "") for s, p in adds.items()
        ]
        parts += [f"-{self.label(s)}" for s in change.remove]
        if change.usage_location:
            parts.insert(0, f"usageLocation={change.usage_location}")
        return PlannedOp(
            key=f"row {row}: assignLicense {state.upn}",
            row=row,
            user_id=state.id,
            upn=state.upn,
            kind="assignLicense",
            method="POST",
            url=f"/users/{state.id}/assignLicense",
            body=body,
            wave=wave,
            summary=" ".join(parts),
            usage_location=change.usage_location,
            before=before,
        )

    def _join_op(self, row: int, state: UserState, group: GroupInfo) -> PlannedOp:
        return PlannedOp(
            key=f"row {row}: joinGroup {group.display_name} {state.upn}",
            row=row,
            user_id=state.id,
            upn=state.upn,
            kind="joinGroup",
            method="POST",
            url=f"/groups/{group.id}/members/$ref",
            body={"@odata.id": f"{self.graph_url}/directoryObjects/{state.id}"},
            wave=TAKE_WAVE,
            summary=f"join group {group.display_name}",
            before={"group": group.id},
        )

    def _add(self, plan: RowPlan, op: PlannedOp) -> None:
        """Keep an operation and tie it to its row."""
        self.ops.append(op)
        plan.ops.append(op.key)

    def settle_seats(self, rows: list[RowPlan]) -> None:
        """Give every row its seats, wave by wave and in sheet order; a short row fails whole
        (:func:`batch.run.seats.settle`)."""
        planned = [row for row in rows if row.status == PLANNED]
        free = {sku: f.free_before for sku, f in self.forecast.items()}
        settled = settle([row.row for row in planned], free, self.takes, self.frees)
        for sku, seats in self.forecast.items():
            seats.freed = settled.freed[sku]
            seats.taken = settled.taken[sku]
            seats.shortfall = settled.shortfall[sku]
        for row in planned:
            if row.row in settled.failed:
                self._fail_for_seats(row, settled.failed[row.row])
            else:
                self.kept.update(row.ops)

    def _fail_for_seats(self, row: RowPlan, short: list[str]) -> None:
        row.status, row.error_code = FAILED, "NoSeats"
        row.detail = "no free seat of " + ", ".join(self.label(s) for s in short)
        row.ops = []
        row.added, row.removed = [], []


def _license_wave(change: LicenseChange) -> int:
    """The wave of a user's assignLicense: only gives back, swaps, or only takes."""
    if change.add:
        return SWAP_WAVE if change.remove else TAKE_WAVE
    return FREE_WAVE


def _before(state: UserState, change: LicenseChange) -> dict[str, Any]:
    """What undo needs: the usage location and the disabled plans of the direct licenses touched."""
    return {
        "usageLocation": state.usage_location,
        "licenses": {
            sku: sorted(state.licenses[sku].disabled_plans)
            for sku in [*change.add, *change.remove]
            if sku in state.licenses and state.licenses[sku].direct
        },
    }


def _usage_location_op(
    row: int, state: UserState, usage_location: str, before: Mapping[str, Any]
) -> PlannedOp:
    """Set the usage location alone, when the row writes no license."""
    return PlannedOp(
        key=f"row {row}: usageLocation {state.upn}",
        row=row,
        user_id=state.id,
        upn=state.upn,
        kind="usageLocation",
        method="PATCH",
        url=f"/users/{state.id}",
        body={"usageLocation": usage_location},
        wave=FREE_WAVE,
        summary=f"usageLocation={usage_location}",
        before=before,
    )


def _leave_op(row: int, state: UserState, group: GroupInfo) -> PlannedOp:
    return PlannedOp(
        key=f"row {row}: leaveGroup {group.display_name} {state.upn}",
        row=row,
        user_id=state.id,
        upn=state.upn,
        kind="leaveGroup",
        method="DELETE",
        url=f"/groups/{group.id}/members/{state.id}/$ref",
        body=None,
        wave=FREE_WAVE,
        summary=f"leave group {group.display_name}",
        before={"group": group.id},
    )
