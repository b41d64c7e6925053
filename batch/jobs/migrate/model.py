"""The migration's model: each user's move, its steps, the groups, the waves, the whole.

Built by :func:`batch.jobs.migrate.moves.plan_migration`, run wave by wave, switched group by
group (:mod:`batch.jobs.migrate.groups`) and written out by :mod:`batch.jobs.migrate.report`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batch.errors import BatchError, ExitCode
from batch.jobs.migrate.mapping import MapLine, MapRule
from batch.reports.run import ChangeLine
from batch.run.tenant import SkuSeats
from batch.status import RowStatus


@dataclass
class Step:
    """What one rule does to one user."""

    rule: MapRule
    kind: str  # swap | remove | inherited
    disabled_to: frozenset[str] = frozenset()
    kept: tuple[str, ...] = ()
    untranslated: tuple[str, ...] = ()
    newly: tuple[str, ...] = ()


@dataclass
class Move:
    """One user in the migration: the steps, and the outcome once a wave ran."""

    upn: str
    user_id: str | None
    display_name: str
    steps: list[Step] = field(default_factory=list)
    status: str = RowStatus.PLANNED
    detail: str = ""
    error_code: str = ""
    wave: int | None = None
    run_id: str = ""
    added: str = ""
    removed: str = ""
    request_id: str = ""
    verified: bool | None = None  #: the read-back's answer; None: not checked
    licenses_after: str = ""

    @property
    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.kind in ("swap", "remove")]

    def needs(self) -> Counter[str]:
        """Seats of each ToSku this user takes (a swap takes one; a removal none)."""
        return Counter(s.rule.to_id for s in self.steps if s.kind == "swap")

    def note(self, text: str) -> None:
        self.detail = "; ".join(filter(None, [self.detail, text]))


@dataclass
class GroupLine:
    """A licensed group that grants a FromSku: its license is what must change."""

    group_id: str
    name: str
    members: int
    rule: MapRule
    #: with ``change_groups``: "switch" (add ToSku, then remove FromSku), "finish" (ToSku is
    #: already on the group: remove FromSku), or "" (reported only)
    action: str = ""
    status: str = ""
    detail: str = ""
    member_ids: frozenset[str] = frozenset()
    #: the group's licenses before: {skuId: [disabled plan ids]}
    before: dict[str, list[str]] = field(default_factory=dict)
    disabled_to: frozenset[str] = frozenset()
    need: int = 0  # ToSku seats its members take (those not holding ToSku already)
    step_one: str = ""
    step_two: str = ""
    run_id: str = ""


@dataclass
class WaveResult:
    """What one wave did."""

    number: int
    run_id: str
    report: Path
    users: int
    counts: Counter[str]
    free_before: dict[str, int]
    free_after: dict[str, int]
    started: dt.datetime
    finished: dt.datetime


@dataclass
class Migration:
    """The whole migration: the map, every user's move, the waves, seats before and after."""

    map_path: Path
    map_sha256: str
    users_path: Path | None
    lines: list[MapLine]
    moves: list[Move]
    groups: list[GroupLine]
    seats_before: list[SkuSeats]
    seats_after: list[SkuSeats] | None = None
    map_headers: tuple[str, ...] = ()
    waves: list[WaveResult] = field(default_factory=list)
    changes: list[tuple[int | None, ChangeLine]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    migration_id: str = ""
    started: dt.datetime = field(default_factory=dt.datetime.now)
    finished: dt.datetime | None = None
    mode: str = "plan"
    #: what stopped the migration early (breaker, permissions); raised after the report
    error: BatchError | None = None
    #: the run that changed groups' licenses (a part of the migration, like each wave)
    groups_run_id: str = ""

    @property
    def wrote(self) -> bool:
        """Whether any wave or group change ran (so there is something to undo)."""
        return bool(self.waves or self.groups_run_id)

    @property
    def rules(self) -> list[MapRule]:
        return [line.rule for line in self.lines if line.rule and not line.rule.same_sku]

    def counts(self) -> Counter[str]:
        """Users per status."""
        return Counter(m.status for m in self.moves)

    def seats_needed(self) -> Counter[str]:
        """ToSku seats the planned moves take, by skuId."""
        total: Counter[str] = Counter()
        for move in self.moves:
            if move.status == RowStatus.PLANNED:
                total.update(move.needs())
        return total

    def shortfalls(self, seats: Iterable[SkuSeats] | None = None) -> dict[str, int]:
        """skuId -> seats missing for every planned move to fit now."""
        free = {s.sku_id: s.free for s in (seats if seats is not None else self.seats_before)}
        return {
            sku: n - free.get(sku, 0)
            for sku, n in self.seats_needed().items()
            if n > free.get(sku, 0)
        }

    @property
    def exit_code(self) -> ExitCode:
        bad = (
            any(
                m.status in (RowStatus.FAILED, RowStatus.PLANNED, RowStatus.DEFERRED)
                for m in self.moves
            )
            and self.mode != "plan"
        )
        bad = bad or any(line.status == RowStatus.INVALID for line in self.lines)
        bad = bad or (
            self.mode == "plan"
            and any(m.status in (RowStatus.FAILED, RowStatus.DEFERRED) for m in self.moves)
        )
        return ExitCode.ROWS_FAILED if bad else ExitCode.SUCCESS

    def summary_lines(self) -> list[str]:
        """What the admin sees before confirming and after the run."""
        names = {s.sku_id: s.part_number for s in self.seats_before}
        free = {s.sku_id: s.free for s in self.seats_before}
        lines = []
        for line in self.lines:
            text = f"Map row {line.row}: {line.status}"
            if line.rule:
                text += f" {line.rule.label}"
            if line.rule and not line.rule.same_sku:
                text += f", {line.users} users"
            lines.append(text + (f" ({line.detail})" if line.detail else ""))
        counts = self.counts()
        lines.append(
            "Users: " + (", ".join(f"{s} {n}" for s, n in sorted(counts.items())) or "none")
        )
        for sku, need in sorted(
            self.seats_needed().items(), key=lambda kv: names.get(kv[0], kv[0])
        ):
            text = f"  {names.get(sku, sku)}: {need} seats needed, {free.get(sku, 0)} free"
            if need > free.get(sku, 0):
                short = need - free.get(sku, 0)
                text += (
                    f": short by {short}; users beyond the free seats wait for seats "
                    "(Deferred) unless --wait-for-seats brings more"
                )
            lines.append(text)
        for group in self.groups:
            if group.status:
                lines.append(
                    f"  Group '{group.name}' ({group.members} members, {group.rule.label}): "
                    f"{group.status}" + (f" ({group.detail})" if group.detail else "")
                )
                continue
            lines.append(
                f"  Group '{group.name}' grants {group.rule.from_part} to {group.members} members: "
                f"change the group's license to {group.rule.to_part}"
            )
        for wave in self.waves:
            lines.append(
                f"Wave {wave.number} (run {wave.run_id}): {wave.users} users, "
                + ", ".join(f"{s} {n}" for s, n in sorted(wave.counts.items()))
            )
        lines += [f"Note: {note}" for note in self.notes]
        return lines


# -- planning -------------------------------------------------------------------------------------


def translate_plans(
    rule: MapRule,
    from_plans: Mapping[str, str],
    to_plans: Mapping[str, str],
    disabled_from: Iterable[str],
) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """ToSku's disabled plans for a user who had ``disabled_from`` disabled in FromSku.

    Plans are matched by servicePlanId, then by service-plan name (case-insensitive).
    Returns ``(disabled ToSku plan ids, kept names, untranslated names, newly enabled names)``.

    :param from_plans: FromSku's ``{servicePlanId: name}``; ``to_plans`` likewise.
    """
    to_by_name = {name.casefold(): pid for pid, name in to_plans.items()}

    def counterpart(pid: str) -> str | None:
        if pid in to_plans:
            return pid
        return to_by_name.get(from_plans.get(pid, "").casefold())

    disabled_from = set(disabled_from)
    disabled: set[str] = set()
    kept, untranslated = [], []
    if rule.keep_disabled:
        for pid in sorted(disabled_from, key=lambda p: from_plans.get(p, p).casefold()):
            target = counterpart(pid)
            if target:
                disabled.add(target)
                kept.append(to_plans[target])
            else:
                untranslated.append(from_plans.get(pid, pid))
    disabled |= set(rule.disable_plans) & set(to_plans)
    had_enabled = {counterpart(p) for p in from_plans if p not in disabled_from} - {None}
    new = {pid for pid in to_plans if pid not in had_enabled and pid not in disabled}
    if rule.disable_new:
        disabled |= new
        new = set()
    newly = tuple(sorted((to_plans[p] for p in new), key=str.casefold))
    return frozenset(disabled), tuple(kept), tuple(untranslated), newly


def reconcile_text(seat: SkuSeats) -> str:
    """The same-SKU seat reconciliation in one line."""
    short = max(0, seat.consumed - seat.enabled)
    text = (
        f"same SKU: no user changes. {seat.part_number}: {seat.consumed} assigned; "
        f"{seat.enabled} enabled, {seat.warning} in warning, {seat.suspended} suspended, "
        f"{seat.locked_out} locked out; {seat.purchased} purchased (enabled + warning)"
    )
    if short:
        text += (
            f". SHORT by {short} once the units in warning and suspended expire: buy {short} more "
            "from the new CSP or remove that many assignments"
        )
    elif seat.warning or seat.suspended:
        text += ". The enabled units cover every assignment: the old units can expire"
    return text
