"""Onboarding, the plan: read, validate and plan a sheet against the tenant. Writes nothing.

    read -> validate -> read the tenant -> plan

The :class:`Prepared` value is what ``plan`` shows and ``apply`` executes: the same object,
so a dry run and a real run cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from batch.graph.client import GraphClient
from batch.intake.validate import ValidationResult
from batch.jobs.onboarding.options import RunOptions
from batch.jobs.onboarding.reading import read_sheet_and_tenant
from batch.run.plan import Plan, build_plan
from batch.run.tenant import SkuSeats, UserState, seats_from_skus
from batch.status import SETTLED_BAD, RowStatus

__all__ = ["Prepared", "prepare"]


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
    #: group id -> display name of the groups those users hold licenses through
    group_names: dict[str, str] = field(default_factory=dict)

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

    The tenant is read while the sheet is read and validated (:mod:`.reading`).
    """
    started = dt.datetime.now()
    read = read_sheet_and_tenant(client, path, options)
    seats = seats_from_skus(read.skus)
    plan = build_plan(
        read.validation,
        seats=seats,
        users=read.users,
        groups=read.groups,
        group_problems=read.group_problems,
        options=options.plan_options,
        graph_url=client.graph_url,
        group_names=dict(read.group_names),
    )
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
        group_names=read.group_names,
    )
