"""Onboarding, reading: the sheet and the tenant facts it needs, the slow parts side by side.

    read the sheet      | sign in, GET /subscribedSkus
    look up its users   |   (every user cell, before validation)
    validate (needs the SKUs) -> groups | the users validation found that were not asked

At 200 ms a round trip, a small sheet's run is mostly waiting: so the sign-in and the SKUs
are asked for while the sheet is read, and the users the sheet names are looked up while
it is validated (validation needs the SKUs, the user lookup does not). A user cell that
validation reads differently (an ObjectId normalised) is looked up afterwards, so the
result is the same as reading after validation: only sooner.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.intake.catalog import Catalog, normalise_guid
from batch.intake.model import ValidationResult
from batch.intake.sheet import Sheet
from batch.intake.sources import read_sheet
from batch.intake.validate import validate_sheet
from batch.intake.values import upn_problem
from batch.jobs.onboarding.options import RunOptions
from batch.run.tenant import GroupInfo, UserState, name_licensing_groups, read_groups, read_users

__all__ = ["SheetAndTenant", "name_groups_later", "read_sheet_and_tenant", "sheet_users"]

log = logging.getLogger(__name__)


@dataclass
class SheetAndTenant:
    """A sheet read and validated, and what the tenant says about it."""

    sheet: Sheet
    validation: ValidationResult
    skus: list[dict[str, Any]]
    users: dict[str, UserState]
    groups: dict[str, GroupInfo] = field(default_factory=dict)
    group_problems: dict[str, str] = field(default_factory=dict)


def sheet_users(sheet: Sheet) -> set[str]:
    """Every user a sheet's rows name (valid UPNs, ObjectIds), as validation will read them."""
    names: set[str] = set()
    for row in sheet.rows:
        upn = sheet.value(row, "upn")
        if upn and upn_problem(upn) is None:
            names.add(upn)
        object_id = normalise_guid(sheet.value(row, "object_id"))
        if object_id:
            names.add(object_id)
    return names


def read_sheet_and_tenant(client: Any, path: Path, options: RunOptions) -> SheetAndTenant:
    """Read and validate ``path`` and read the tenant's SKUs, users and groups for it."""
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="prepare") as pool:
        skus_read = pool.submit(lambda: list(client.get_all("/subscribedSkus")))
        sheet = read_sheet(path, sheet=options.sheet)
        asked = sheet_users(sheet)
        users_read = pool.submit(read_users, client, asked)
        skus = skus_read.result()
        log.info("phase: SKUs read (%d); looking up %d users", len(skus), len(asked))
        validation = validate_sheet(sheet, Catalog.load(skus), as_of=options.as_of)
        ready = [row for row in validation.rows if row.ready]
        names = {g for row in ready for g in (*row.join_groups, *row.leave_groups)}
        groups_read: Future[tuple[dict[str, GroupInfo], dict[str, str]]] | None = (
            pool.submit(read_groups, client, names) if names else None
        )
        users = users_read.result()
        users.update(_not_asked(client, [row.user for row in ready], asked))
        groups, problems = groups_read.result() if groups_read else ({}, {})
        log.info("phase: users read (%d found)", len(users))
    return SheetAndTenant(sheet, validation, skus, users, groups, problems)


def name_groups_later(client: Any, users: dict[str, UserState]) -> Future[dict[str, str]]:
    """Name the groups ``users`` hold licenses through, in the background.

    Nothing before the first write needs the names, unless a row clashes with a license
    inherited from a group (the plan then names the group); the report needs them for
    LicensesAfter, long after.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-names")
    try:
        return pool.submit(name_licensing_groups, client, users, {})
    finally:
        pool.shutdown(wait=False)


def _not_asked(client: Any, wanted: Iterable[str], asked: set[str]) -> dict[str, UserState]:
    """The users of ``wanted`` that the early lookup did not ask for, read now."""
    seen = {name.casefold() for name in asked}
    rest = {name for name in wanted if name and name.casefold() not in seen}
    return read_users(client, rest) if rest else {}
