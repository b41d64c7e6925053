"""Export: the tenant's current license assignments as a sheet in the input format.

    read users, groups and SKUs -> one row per licensed user -> XLSX (default) or CSV

The sheet is a snapshot that ``apply --exact`` restores: each row lists the user's *direct*
licenses (``AddLicenses``), their disabled plans as ``SKU:PLAN`` names (``DisabledPlans``),
the usage location and the licensed groups the user belongs to (``Groups``). Information
columns (DisplayName, Department, AccountEnabled, InheritedLicenses with the group each comes
from, LicenseSource) are carried through untouched by every command that reads the sheet.
Applied with ``--exact`` to an unchanged tenant it sends no write at all.

Names are used where they are unambiguous and safe to read back: a group whose display name is
shared with another group, contains a list separator or would start a formula is written by
its id; a plan or SKU name likewise falls back to its GUID. In the CSV form every cell that
Excel could take for a formula gets a leading ``'`` (OWASP CSV injection advice), so for an
exact snapshot of such names prefer the XLSX form, where the text is stored as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from batch.errors import ReportError
from batch.files import atomic_write
from batch.reports.printing import PrintedWorkbook
from batch.reports.workbook import needs_quote_prefix
from batch.run.tenant import GROUP_SELECT, SkuSeats, UserState, seats_from_skus, user_state

__all__ = ["EXPORT_HEADERS", "Snapshot", "read_snapshot", "write_snapshot"]

#: the export's columns: the input columns first, then information columns
EXPORT_HEADERS = (
    "UserPrincipalName",
    "UsageLocation",
    "AddLicenses",
    "DisabledPlans",
    "Groups",
    "DisplayName",
    "Department",
    "AccountEnabled",
    "InheritedLicenses",
    "LicenseSource",
)
#: what every user read needs (the planner's fields plus the department for the sheet)
EXPORT_USER_SELECT = (
    "id,userPrincipalName,displayName,accountEnabled,usageLocation,department,"
    "assignedLicenses,licenseAssignmentStates"
)
_UNSAFE_IN_LIST = (";", ",", "\n", "\r")


@dataclass(frozen=True)
class LicensedGroup:
    """A group that carries licenses, with its direct members."""

    id: str
    display_name: str
    sku_ids: frozenset[str]
    members: frozenset[str]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Snapshot:
    """The tenant's assignments as read: users, licensed groups, seats, and the sheet rows."""

    users: list[UserState]
    groups: list[LicensedGroup]
    seats: list[SkuSeats]
    headers: tuple[str, ...] = EXPORT_HEADERS
    rows: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def licensed_users(self) -> int:
        return len(self.rows)


def read_all_users(client: Any, select: str = EXPORT_USER_SELECT) -> list[UserState]:
    """Every user in the directory, paged 999 at a time."""
    return [
        user_state(u) for u in client.get_all("/users", params={"$select": select, "$top": 999})
    ]


def read_licensed_groups(client: Any) -> tuple[list[LicensedGroup], list[str]]:
    """Every group with licenses assigned, with its direct members; and every group's name."""
    found, names = [], []
    for group in client.get_all("/groups", params={"$select": GROUP_SELECT, "$top": 999}):
        names.append(str(group.get("displayName") or ""))
        skus = frozenset(str(a["skuId"]).lower() for a in group.get("assignedLicenses") or [])
        if not skus:
            continue
        members = frozenset(
            str(m["id"])
            for m in client.get_all(
                f"/groups/{group['id']}/members", params={"$select": "id", "$top": 999}
            )
        )
        found.append(
            LicensedGroup(
                str(group["id"]), str(group.get("displayName") or group["id"]), skus, members, group
            )
        )
    return sorted(found, key=lambda g: (g.display_name.casefold(), g.id)), names


def read_snapshot(client: Any) -> Snapshot:
    """Read the tenant and build the export rows (sorted by UPN). Writes nothing."""
    seats = seats_from_skus(client.get_all("/subscribedSkus"))
    users = read_all_users(client)
    groups, names = read_licensed_groups(client)
    snapshot = Snapshot(users=users, groups=groups, seats=seats)
    snapshot.rows = export_rows(users, groups, seats, group_names=names)
    return snapshot


def sku_labels(seats: Iterable[SkuSeats]) -> dict[str, str]:
    """skuId -> the part number, or the GUID where two SKUs share a part number."""
    seats = list(seats)
    counts: dict[str, int] = {}
    for seat in seats:
        counts[seat.part_number.casefold()] = counts.get(seat.part_number.casefold(), 0) + 1
    return {
        s.sku_id: s.part_number
        if counts[s.part_number.casefold()] == 1 and _safe(s.part_number)
        else s.sku_id
        for s in seats
    }


def group_labels(groups: Iterable[LicensedGroup], all_names: Iterable[str] = ()) -> dict[str, str]:
    """group id -> display name, or the id when the name is shared, unsafe or a list.

    :param all_names: every group's name in the tenant (licensed or not); empty: only ``groups``.
    """
    groups = list(groups)
    counts: dict[str, int] = {}
    for name in list(all_names) or [g.display_name for g in groups]:
        counts[name.strip().casefold()] = counts.get(name.strip().casefold(), 0) + 1
    return {
        g.id: g.display_name
        if counts.get(g.display_name.strip().casefold(), 0) == 1
        and _safe(g.display_name)
        and g.display_name == g.display_name.strip()
        else g.id
        for g in groups
    }


def export_rows(
    users: Iterable[UserState],
    groups: Iterable[LicensedGroup],
    seats: Iterable[SkuSeats],
    *,
    group_names: Iterable[str] | None = None,
) -> list[tuple[str, ...]]:
    """One row per user who holds a license or belongs to a licensed group, by UPN.

    :param group_names: every group's display name (a shared name is written as the id).
    """
    seats = list(seats)
    groups = list(groups)
    skus = sku_labels(seats)
    plans = {s.sku_id: dict(s.service_plans) for s in seats}
    glabel = group_labels(groups, [] if group_names is None else group_names)
    gname = {g.id: g.display_name for g in groups}
    member_of: dict[str, list[LicensedGroup]] = {}
    for group in groups:
        for member in group.members:
            member_of.setdefault(member, []).append(group)
    rows: list[tuple[str, ...]] = []
    for user in sorted(users, key=lambda u: (u.upn.casefold(), u.id)):
        its_groups = member_of.get(user.id, [])
        if not user.licenses and not its_groups:
            continue
        direct = sorted(
            (sku for sku, held in user.licenses.items() if held.direct),
            key=lambda s: _label(skus, s).casefold(),
        )
        disabled = []
        for sku in direct:
            names = plans.get(sku, {})
            for plan in sorted(
                user.licenses[sku].disabled_plans, key=lambda p: _label(names, p).casefold()
            ):
                name = names.get(plan, plan)
                disabled.append(
                    f"{skus.get(sku, sku)}:{name if _safe(name) and ':' not in name else plan}"
                )
        inherited = sorted(
            f"{skus.get(sku, sku)} ({gname.get(g, g)})"
            for sku, held in user.licenses.items()
            for g in held.groups
        )
        sources = [
            name
            for name, present in (
                ("Direct", bool(direct)),
                ("Group", any(h.inherited for h in user.licenses.values())),
            )
            if present
        ]
        rows.append(
            (
                user.upn,
                (user.usage_location or "").upper(),
                ";".join(skus.get(s, s) for s in direct),
                ";".join(disabled),
                ";".join(sorted((glabel[g.id] for g in its_groups), key=str.casefold)),
                user.display_name,
                str(user.raw.get("department") or ""),
                "Yes" if user.account_enabled else "No",
                "; ".join(inherited),
                " + ".join(sources),
            )
        )
    return rows


def write_snapshot(snapshot: Snapshot, path: Path, *, as_csv: bool = False) -> Path:
    """Write the rows as XLSX (sheet ``Assignments``) or CSV, atomically; never overwrite."""
    if as_csv:
        return _write_csv(path, snapshot.headers, snapshot.rows)
    with PrintedWorkbook(path) as book:
        book.add_table("Assignments", snapshot.headers, snapshot.rows, status_column=None)
        # printed one page wide, narrowed first to stay readable (the user kept whole)
        book.fit_table_to_page(
            "Assignments", snapshot.headers, snapshot.rows, keep=snapshot.headers[:1]
        )
        book.fit_for_print(no_repeat=())
    return book.path


def _write_csv(path: Path, headers: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> Path:
    if not path.parent.is_dir():
        raise ReportError(f"cannot write {path}: the folder {path.parent} does not exist.")

    def write(handle: IO[str]) -> None:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(headers)
        for row in rows:
            writer.writerow(["'" + c if needs_quote_prefix(c) else c for c in row])

    try:
        # UTF-8 with a BOM: Excel opens it with the right encoding, and the reader accepts it
        return atomic_write(path, write, mode=None, encoding="utf-8-sig", newline="")
    except FileExistsError as exc:
        raise ReportError(f"{path} already exists; choose another --output name.") from exc
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _label(labels: Mapping[str, str], key: str) -> str:
    """The label of ``key``, or ``key`` itself when it has none."""
    return labels.get(key, key)


def _safe(text: str) -> bool:
    """Whether ``text`` reads back as itself inside a list cell."""
    return (
        bool(text) and not needs_quote_prefix(text) and not any(c in text for c in _UNSAFE_IN_LIST)
    )
