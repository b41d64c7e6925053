"""Report: the migration workbook of ``migrate`` (plan and run).

Sheets:

- ``Summary``: the answer first: users per status as big figures, every user who needs
  attention with the reason and what to do, seats per product before -> after and a chart;
  then tenant, map and its SHA-256, migration id, mode, start and end and the notes;
- ``Rows``: one row per user: FromSku, ToSku, Wave, Status, Added, Removed, the disabled plans
  kept, the plans the user newly has, the plans with no counterpart, Detail, ErrorCode,
  RequestId, Verified, LicensesAfter and the wave's run id;
- ``Map``: the map as given plus Row, Status, Users, Detail (unknown SKUs are Invalid here);
- ``Licenses``: per SKU purchased (enabled), warning, suspended, locked out, assigned and free,
  before and after;
- ``Waves``: what each wave did: users, statuses, ToSku free seats before and after, its run
  and report;
- ``Groups``: licensed groups that grant a FromSku: the change each needs, and with
  ``--groups`` its status, the ToSku seats its members take, and the two steps (ToSku
  added, FromSku removed) with their times;
- ``Reconciliation``: for same-SKU rows, enabled against warning/suspended units and the
  shortfall;
- ``Changes``: every write sent, with its wave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batch.intake.catalog import name_ids, name_parts, sku_label
from batch.jobs.migrate.mapping import MapRule
from batch.jobs.migrate.model import Migration, reconcile_text
from batch.reports.printing import PrintedWorkbook
from batch.reports.run import (
    CHANGE_HEADERS,
    CHANGE_KINDS,
    add_licenses_sheet,
    chart_rows,
    product_names,
    seat_line,
    yes_no,
)
from batch.reports.summary import AttentionLine, Dashboard, write_dashboard
from batch.run.tenant import SkuSeats
from batch.status import STATUS_ORDER, RowStatus

__all__ = ["write_migration_report"]

ROW_HEADERS = (
    "UserPrincipalName",
    "DisplayName",
    "FromSku",
    "ToSku",
    "Wave",
    "Status",
    "Added",
    "Removed",
    "KeptDisabledPlans",
    "NewlyEnabledPlans",
    "UntranslatedPlans",
    "Detail",
    "ErrorCode",
    "RequestId",
    "Verified",
    "LicensesAfter",
    "RunId",
)


WAVE_HEADERS = (
    "Wave",
    "RunId",
    "Started",
    "Finished",
    "Users",
    "Applied",
    "NoChange",
    "Failed",
    "Other",
    "ToSku free before",
    "ToSku free after",
    "Report",
)
#: the statuses the Waves sheet counts in their own columns (the rest is "Other")
WAVE_STATUSES = (RowStatus.APPLIED, RowStatus.NO_CHANGE, RowStatus.FAILED)
GROUP_HEADERS = (
    "Group",
    "GroupId",
    "Members",
    "FromSku",
    "ToSku",
    "Status",
    "SeatsNeeded",
    "Step 1",
    "Step 2",
    "Detail",
    "RunId",
    "Change needed",
)
RECONCILE_HEADERS = (
    "SKU",
    "SkuId",
    "Enabled",
    "Warning",
    "Suspended",
    "LockedOut",
    "Purchased",
    "Assigned",
    "Free",
    "Shortfall",
    "Detail",
)


def write_migration_report(migration: Migration, path: Path, *, tenant: str) -> Path:
    """Write the migration workbook atomically; return its path."""
    names = product_names(migration.seats_before)
    with PrintedWorkbook(path) as book:
        board = _dashboard(migration, names)
        board.facts = _named(_summary(migration, tenant), names)
        board.chart_rows = chart_rows(len(migration.seats_before))
        placed = write_dashboard(book, "Summary", board)
        rows = _named(_rows(migration), names)
        book.add_table("Rows", ROW_HEADERS, rows, kinds={"Wave": "int"}, freeze_columns=1)
        book.fit_table_to_page(
            "Rows",
            ROW_HEADERS,
            rows,
            kinds={"Wave": "int"},
            keep=[ROW_HEADERS[0], "Status", "Detail"],
        )
        width = len(migration.map_headers)
        map_headers = (*migration.map_headers, "Row", "Status", "Users", "Detail")
        book.add_table(
            "Map",
            map_headers,
            [
                (
                    *(tuple(line.values) + ("",) * width)[:width],
                    line.row,
                    line.status,
                    line.users,
                    name_parts(name_ids(line.detail), names),
                )
                for line in migration.lines
            ],
            kinds={"Row": "int", "Users": "int"},
        )
        add_licenses_sheet(
            book,
            _licenses(migration.seats_before, migration.seats_after),
            summary=placed.sheet,
            chart_at=placed.chart_at,
            title="Seats per product after the migration",
        )
        book.add_table(
            "Waves",
            WAVE_HEADERS,
            _named(_waves(migration), names),
            kinds={h: "int" for h in ("Wave", "Users", "Applied", "NoChange", "Failed", "Other")}
            | {"Started": "datetime", "Finished": "datetime"},
            status_column=None,
        )
        book.add_table(
            "Groups",
            GROUP_HEADERS,
            _named(_groups(migration), names),
            kinds={"Members": "int", "SeatsNeeded": "int"},
            status_column="Status",
        )
        book.add_table(
            "Reconciliation",
            RECONCILE_HEADERS,
            [
                _reconcile(rule, migration.seats_before, names)
                for rule in (
                    line.rule for line in migration.lines if line.rule and line.rule.same_sku
                )
            ],
            kinds={h: "int" for h in RECONCILE_HEADERS[2:-1]},
            status_column=None,
        )
        book.add_table(
            "Changes",
            ("Wave", *CHANGE_HEADERS),
            _named([(wave, *c.cells()) for wave, c in migration.changes], names),
            kinds={"Wave": "int", **CHANGE_KINDS},
            status_column=None,
        )
        book.fit_for_print()
    return book.path


def _named(rows: Sequence[Sequence[object]], names: Mapping[str, str]) -> list[tuple[Any, ...]]:
    """Every text cell with its SKUs and plans by name: "Office 365 E3 (ENTERPRISEPACK)"."""
    return [
        tuple(name_parts(name_ids(v), names) if isinstance(v, str) else v for v in row)
        for row in rows
    ]


#: what to do about a user the migration did not move
TODO = {
    "NoSeats": "Buy more seats of the new SKU, then run the migration again: it picks them up.",
    "UserNotFound": "Check the address in the users sheet.",
    "InheritedFromGroup": "Run with --groups to switch the group, or change it yourself.",
}


def _dashboard(migration: Migration, names: Mapping[str, str]) -> Dashboard:
    """The answer first: users per status, who needs attention and why, seats per product."""
    planning = migration.mode == "plan"
    counts = migration.counts()
    fine = {RowStatus.APPLIED, RowStatus.NO_CHANGE} | ({RowStatus.PLANNED} if planning else set())
    after = {s.sku_id: s for s in migration.seats_after or []}
    involved = {r.from_id for r in migration.rules} | {r.to_id for r in migration.rules}
    seats = []
    for seat in migration.seats_before:
        if seat.sku_id in involved:
            now = after.get(seat.sku_id, seat)
            name = names.get(seat.part_number, seat.part_number)
            seats.append((name, seat.part_number, f"{seat.consumed} -> {now.consumed}", now.free))
    return Dashboard(
        title=f"License migration by {migration.map_path.name}",
        subtitle=(
            "Dry run: nothing has been written. Statuses say what a run would do now."
            if planning
            else "Migration finished. Seats below are as read back after it."
            if migration.wrote
            else "Migration ran, but nothing was changed: see who waits and why below."
        ),
        counts=[("Users", len(migration.moves))]
        + [(str(s), counts[s]) for s in STATUS_ORDER if counts.get(s)],
        attention=[
            AttentionLine(
                m.upn,
                m.display_name,
                m.status,
                name_parts(name_ids(m.detail or m.error_code), names),
                TODO.get(m.error_code, "Read the reason; fix it and run again."),
            )
            for m in migration.moves
            if m.status not in fine
        ],
        attention_title="Users who need your attention",
        attention_headers=("User", "Name", "Status", "Reason", "What to do"),
        all_fine="No user needs your attention.",
        table_title="Seats per product" + (" (now)" if planning else ""),
        table_headers=("Product", "SKU", "Assigned", "Free after"),
        table_rows=seats,
        facts_title="About this migration",
    )


def _waves(migration: Migration) -> list[tuple[object, ...]]:
    return [
        (
            w.number,
            w.run_id,
            w.started.replace(microsecond=0),
            w.finished.replace(microsecond=0),
            w.users,
            *(w.counts.get(s, 0) for s in WAVE_STATUSES),
            w.users - sum(w.counts.get(s, 0) for s in WAVE_STATUSES),
            _pairs(w.free_before),
            _pairs(w.free_after),
            str(w.report),
        )
        for w in migration.waves
    ]


def _groups(migration: Migration) -> list[tuple[object, ...]]:
    return [
        (
            g.name,
            g.group_id,
            g.members,
            g.rule.from_part,
            g.rule.to_part,
            g.status or "NotChanged",
            g.need,
            g.step_one,
            g.step_two,
            g.detail,
            g.run_id,
            f"POST /groups/{g.group_id}/assignLicense adding {g.rule.to_part}; once "
            f"Entra has processed every member without error, the same call removing "
            f"{g.rule.from_part} (migrate --groups does both)",
        )
        for g in migration.groups
    ]


def _summary(migration: Migration, tenant: str) -> list[tuple[str, object]]:
    counts = migration.counts()
    pairs: list[tuple[str, object]] = [
        ("Tenant", tenant),
        ("Mode", migration.mode),
        ("Migration id", migration.migration_id or "(plan only: nothing written)"),
        ("Map file", str(migration.map_path)),
        ("Map SHA-256", migration.map_sha256),
        (
            "Users sheet",
            str(migration.users_path) if migration.users_path else "(every holder of a FromSku)",
        ),
        ("Started", migration.started.replace(microsecond=0)),
        ("Finished", (migration.finished or migration.started).replace(microsecond=0)),
        ("Users", len(migration.moves)),
    ]
    pairs += [(f"Users {status}", n) for status, n in sorted(counts.items())]
    pairs.append(("Waves", len(migration.waves)))
    pairs.append(("Writes sent", len(migration.changes)))
    pairs += [("Note", note) for note in migration.notes]
    if migration.waves:
        pairs.append(("Undo", f"m365batch undo {migration.migration_id}"))
    return pairs


def _rows(migration: Migration) -> list[tuple[object, ...]]:
    table: list[tuple[object, ...]] = []
    for move in migration.moves:
        swaps = [s for s in move.steps if s.kind == "swap"]
        table.append(
            (
                move.upn,
                move.display_name,
                "; ".join(s.rule.from_part for s in move.steps),
                "; ".join(s.rule.to_part for s in move.steps),
                move.wave,
                move.status,
                move.added,
                move.removed,
                "; ".join(p for s in swaps for p in s.kept),
                "; ".join(p for s in swaps for p in s.newly),
                "; ".join(p for s in swaps for p in s.untranslated),
                move.detail,
                move.error_code,
                move.request_id,
                yes_no(move.verified),
                move.licenses_after,
                move.run_id,
            )
        )
    return table


def _licenses(before: list[SkuSeats], after: list[SkuSeats] | None) -> list[tuple[object, ...]]:
    now = {s.sku_id: s for s in after or before}
    return [
        seat_line(seat, now.get(seat.sku_id, seat).consumed, now.get(seat.sku_id, seat).free)
        for seat in before
    ]


def _reconcile(
    rule: MapRule, seats: list[SkuSeats], names: Mapping[str, str]
) -> tuple[object, ...]:
    seat = next(s for s in seats if s.sku_id == rule.from_id)
    return (
        sku_label(seat.part_number, names.get(seat.part_number)),
        seat.sku_id,
        seat.enabled,
        seat.warning,
        seat.suspended,
        seat.locked_out,
        seat.purchased,
        seat.consumed,
        seat.free,
        max(0, seat.consumed - seat.enabled),
        name_parts(reconcile_text(seat), names),
    )


def _pairs(values: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())
