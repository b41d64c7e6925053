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
from batch.intake.catalog import Catalog
from batch.intake.sources import read_sheet
from batch.intake.validate import ValidationResult, validate_sheet
from batch.jobs.onboarding.options import RunOptions
from batch.run.plan import Plan, build_plan
from batch.run.tenant import (
    SkuSeats,
    name_licensing_groups,
    read_groups,
    read_users,
    seats_from_skus,
)
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
    """Read, validate and plan ``path`` against the tenant. Writes nothing anywhere."""
    sheet = read_sheet(path, sheet=options.sheet)
    skus = list(client.get_all("/subscribedSkus"))
    catalog = Catalog.load(skus)
    validation = validate_sheet(sheet, catalog, as_of=options.as_of)
    ready = [row for row in validation.rows if row.ready]
    users = read_users(client, [row.user for row in ready])
    group_names = {g for row in ready for g in (*row.join_groups, *row.leave_groups)}
    groups, problems = read_groups(client, group_names) if group_names else ({}, {})
    seats = seats_from_skus(skus)
    plan = build_plan(
        validation,
        seats=seats,
        users=users,
        groups=groups,
        group_problems=problems,
        options=options.plan_options,
        graph_url=client.graph_url,
        group_names=name_licensing_groups(client, users, {}),
    )
    return Prepared(
        path=path,
        sha256=sheet.sha256,
        validation=validation,
        plan=plan,
        seats=seats,
        names={s.sku_id: s.part_number for s in seats},
        options=options,
    )
