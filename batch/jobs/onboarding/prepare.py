"""Onboarding, the plan: read, validate and plan a sheet against the tenant. Writes nothing.

    read -> validate -> read the tenant -> plan

The :class:`Prepared` value is what ``plan`` shows and ``apply`` executes: the same object,
so a dry run and a real run cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from batch.graph.client import GraphClient
from batch.intake.sources import paused_gc
from batch.intake.validate import ValidationResult
from batch.jobs.onboarding.options import RunOptions
from batch.jobs.onboarding.reading import (
    SheetAndTenant,
    name_groups_later,
    read_sheet_and_tenant,
)
from batch.run.plan import Plan, build_plan
from batch.run.tenant import SkuSeats, UserState, seats_from_skus
from batch.status import SETTLED_BAD, RowStatus

__all__ = ["Prepared", "prepare"]

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A sheet read, validated and planned against the tenant: everything ``apply`` needs."""

    path: Path
    sha256: str
    validation: ValidationResult
    plan: Plan
    seats: list[SkuSeats]
    names: dict[str, str]  # sku id -> part number
    options: RunOptions
    started: dt.datetime = field(default_factory=dt.datetime.now)
    #: the rows' users as read when planning, by casefolded name (the read-back reads
    #: again only the users that were written to)
    users: dict[str, UserState] = field(default_factory=dict)
    #: the names of the groups those users hold licenses through, being read
    group_naming: Future[dict[str, str]] | None = field(default=None, repr=False)

    @property
    def group_names(self) -> dict[str, str]:
        """Group id -> display name of the groups the users hold licenses through, as far
        as they could be read (a group left out is read again, or named by its id)."""
        if self.group_naming is None:
            return {}
        try:
            return dict(self.group_naming.result())
        except Exception:  # the read-back names what is missing itself
            log.debug("naming the licensing groups failed", exc_info=True)
            return {}

    @property
    def has_bad_rows(self) -> bool:
        """Whether some rows are invalid, failed or deferred already in the plan (exit 3)."""
        counts = self.plan.counts()
        return any(counts.get(status) for status in SETTLED_BAD)

    def summary_lines(self) -> list[str]:
        """What the admin sees before confirming: rows, writes and seats."""
        counts, ops = self.plan.counts(), self.plan.op_counts()
        lines = [
            f"Rows: {len(self.plan.rows)} ("
            + ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
            + ")",
            f"Users to change: {counts.get(RowStatus.PLANNED, 0)}; writes: {len(self.plan.ops)}"
            + (
                " (" + ", ".join(f"{kind} {n}" for kind, n in sorted(ops.items())) + ")"
                if ops
                else ""
            ),
            f"Licenses removed: {self.plan.removals}",
        ]
        for seat in self.plan.seats:
            if seat.taken or seat.freed or seat.shortfall:
                line = (
                    f"  {seat.part_number}: free {seat.free_before} -> {seat.free_after} "
                    f"(+{seat.freed} freed, -{seat.taken} taken)"
                )
                if seat.shortfall:
                    line += f"  SHORT by {seat.shortfall}: buy {seat.shortfall} more or drop rows"
                lines.append(line)
        return lines


def prepare(client: GraphClient, path: Path, options: RunOptions) -> Prepared:
    """Read, validate and plan ``path`` against the tenant. Writes nothing anywhere.

    The tenant is read while the sheet is read and validated (:mod:`.reading`); the groups
    the users hold licenses through are named in the background, unless the plan names one.
    """
    started = dt.datetime.now()
    with paused_gc():  # the rows, the users and the plan: many small acyclic objects
        read = read_sheet_and_tenant(client, path, options)
        seats = seats_from_skus(read.skus)
        naming = name_groups_later(client, read.users)
        plan = _plan(client, read, seats, options, {})
        if _names_a_group(plan, read.users):  # a clash with an inherited license: name it
            plan = _plan(client, read, seats, options, naming.result())
    return Prepared(
        path=path,
        sha256=read.sheet.sha256,
        validation=read.validation,
        plan=plan,
        seats=seats,
        names={s.sku_id: s.part_number for s in seats},
        options=options,
        started=started,
        users=read.users,
        group_naming=naming,
    )


def _plan(
    client: GraphClient,
    read: SheetAndTenant,
    seats: list[SkuSeats],
    options: RunOptions,
    group_names: dict[str, str],
) -> Plan:
    return build_plan(
        read.validation,
        seats=seats,
        users=read.users,
        groups=read.groups,
        group_problems=read.group_problems,
        options=options.plan_options,
        graph_url=client.graph_url,
        group_names=dict(group_names),
    )


def _names_a_group(plan: Plan, users: dict[str, UserState]) -> bool:
    """Whether a row's detail names a group the users inherit licenses from (by its id)."""
    ids = {g for state in users.values() for held in state.licenses.values() for g in held.groups}
    return bool(ids) and any(g in row.detail for row in plan.rows if row.detail for g in ids)
