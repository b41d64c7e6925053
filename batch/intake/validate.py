"""Validate: check every row of a read sheet and turn it into a clean per-row request.

Validation never stops at the first problem. Each row yields a :class:`RowRequest` (the
planner's input) with a status, and any number of :class:`Finding` s (the report's
``Problems`` sheet). Invalid rows never stop the others; only input that cannot be read at
all raises, and that happens earlier, in :mod:`batch.intake.sources`.

Statuses: ``Ready`` (the planner takes it), ``Invalid`` (an error finding), ``Deferred``
(its effective date is after ``as_of``), ``Skipped`` (an exact repeat of an earlier row for
the same user: it adds nothing, so it is reported and not applied twice).

Rules (the ``rule`` of a finding):

==========================  ========  ==================================================
rule                        severity  meaning
==========================  ========  ==================================================
missing-user                error     neither a UPN nor an ObjectId
invalid-upn                 error     not a user principal name Entra accepts
invalid-object-id           error     not a GUID
unknown-license             error     no SKU by that part number, name or GUID
license-not-in-tenant       error     a real SKU, but not one of the tenant's subscriptions
ambiguous-license           error     the name means several of the tenant's SKUs
company-license             error     the SKU applies to the company, not to users
license-not-enabled         error     the subscription is suspended, locked out or deleted
remove-not-in-tenant        warning   nothing to remove: the tenant has no such SKU
add-and-remove              error     the same SKU is both added and removed
unknown-plan                error     no service plan by that name or GUID
plan-not-in-license         error     the plan is not part of any license the row adds
plan-without-license        error     plans to disable but no license added
invalid-usage-location      error     not an ISO 3166-1 alpha-2 code or a country name
usage-location-name         info      a country name or alias turned into its code
invalid-date                error     the date cannot be read, or is ambiguous (3/4/2025)
future-date                 warning   effective after ``as_of``: the row is Deferred
unknown-action              error     not ``assign`` or ``offboard``
offboard-with-licenses      error     an offboard row that also adds licenses or plans
group-join-and-leave        error     the same group is joined and left
extra-cells                 error     values beyond the last column (an unquoted delimiter?)
nothing-to-do               warning   the row asks for no change
duplicate-row               warning   repeats an earlier row for the same user: Skipped
conflicting-rows            error     two different rows for the same user
==========================  ========  ==================================================

Design choices: licenses and plans in one cell are separated by ``;``, ``,`` or line
breaks (a whole cell that is one product name with a comma in it is recognised first).
Numeric dates must be unambiguous: ``2025-04-03``, ``03.04.2025`` (day first), or
``13/4/2025`` where one part is over 12; ``3/4/2025`` is refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections import defaultdict
from dataclasses import replace

from batch.intake.catalog import Catalog, Sku, normalise_guid
from batch.intake.licenses import Issue, LicenseCells
from batch.intake.model import (
    Action,
    Finding,
    LicenseAdd,
    RowRequest,
    Severity,
    ValidationResult,
    summary_lines,
)
from batch.intake.sheet import FIELD_ALIASES, Sheet, SourceRow
from batch.intake.sources import paused_gc
from batch.intake.values import parse_date, parse_usage_location, split_list, upn_problem
from batch.status import RowStatus

__all__ = [
    "Action",
    "Finding",
    "LicenseAdd",
    "RowRequest",
    "Severity",
    "ValidationResult",
    "parse_date",
    "parse_usage_location",
    "summary_lines",
    "upn_problem",
    "validate_sheet",
]


_ACTIONS = {
    "": Action.ASSIGN,
    "assign": Action.ASSIGN,
    "add": Action.ASSIGN,
    "onboard": Action.ASSIGN,
    "update": Action.ASSIGN,
    "offboard": Action.OFFBOARD,
    "leaver": Action.OFFBOARD,
}


# --------------------------------------------------------------------------- the validator


#: the cells that decide a row's request apart from its user
_REQUEST_FIELDS = (
    "action",
    "add_licenses",
    "remove_licenses",
    "disabled_plans",
    "usage_location",
    "groups",
    "remove_groups",
    "effective_date",
    "start_date",
    "leave_date",
)
_DATE_ORDER_ASSIGN = ("effective_date", "start_date", "leave_date")
_DATE_ORDER_OFFBOARD = ("effective_date", "leave_date", "start_date")

#: (action, licenses to add, skuIds to remove, usage location, groups to join, to leave, date)
_Analysis = tuple[
    Action,
    tuple[LicenseAdd, ...],
    tuple[str, ...],
    str | None,
    tuple[str, ...],
    tuple[str, ...],
    dt.date | None,
]


class _Validator:
    """Per-run state: the catalog, caches of resolved cell texts, the findings so far."""

    def __init__(self, sheet: Sheet, catalog: Catalog, as_of: dt.date) -> None:
        self.sheet = sheet
        self.catalog = catalog
        self.as_of = as_of
        self.findings: list[Finding] = []
        self._row_errors = False
        self._fields = tuple(sheet.fields.items())
        self._blank = dict.fromkeys(FIELD_ALIASES, "")
        self.cells = LicenseCells(catalog, column_name=sheet.column_name)
        self._license_cache: dict[tuple[str, str], tuple[tuple[Sku, ...], tuple[Issue, ...]]] = {}
        self._request_cache: dict[tuple[str, ...], tuple[_Analysis, tuple[Issue, ...], bool]] = {}
        self._plan_cache: dict[
            tuple[object, ...], tuple[tuple[LicenseAdd, ...], tuple[Issue, ...]]
        ] = {}

    # -- helpers

    def flag(
        self,
        row: int,
        field_name: str,
        value: str,
        rule: str,
        message: str,
        severity: Severity = Severity.ERROR,
    ) -> None:
        self.findings.append(
            Finding(row, self.sheet.column_name(field_name), value, rule, message, severity)
        )
        if severity is Severity.ERROR:
            self._row_errors = True

    # -- one row

    def replay(self, number: int, issues: tuple[Issue, ...]) -> None:
        """Flag the findings a cached cell analysis produced, on this row."""
        for field_name, value, rule, message, severity in issues:
            self.flag(number, field_name, value, rule, message, severity)

    def row(self, source: SourceRow) -> RowRequest:
        self._row_errors = False
        number = source.row
        values = source.values
        # Every known field's stripped text in one pass ("" when the column is absent).
        cell = dict(self._blank)
        cell.update({name: values[index].strip() for name, index in self._fields})

        if source.extra:
            self.flag(
                number,
                "upn",
                ", ".join(source.extra),
                "extra-cells",
                f"{len(source.extra)} value(s) beyond the last column: a value probably holds an "
                "unquoted delimiter; quote it or remove the stray values.",
            )

        upn, object_id = self._user(number, cell)

        # Everything but the user depends only on these cells, and HR sheets repeat them:
        # analyse each distinct combination once, then replay its findings on later rows.
        key = tuple(cell[name] for name in _REQUEST_FIELDS)
        cached = self._request_cache.get(key)
        if cached is None:
            mark, errors_before = len(self.findings), self._row_errors
            self._row_errors = False
            analysed = self._analyse(number, cell)
            issues = tuple(
                (f.column, f.value, f.rule, f.message, f.severity) for f in self.findings[mark:]
            )
            cached = self._request_cache[key] = (analysed, issues, self._row_errors)
            self._row_errors = errors_before or self._row_errors
        else:
            for column, value, rule, message, severity in cached[1]:
                self.findings.append(Finding(number, column, value, rule, message, severity))
            self._row_errors = self._row_errors or cached[2]
        action, add_licenses, removes, location, join, leave, effective = cached[0]

        status = RowStatus.INVALID if self._row_errors else RowStatus.READY
        if status is RowStatus.READY and effective and effective > self.as_of:
            status = RowStatus.DEFERRED
        if (
            status is RowStatus.READY
            and action is Action.ASSIGN
            and not (add_licenses or removes or join or leave or location)
        ):
            self.flag(
                number,
                "add_licenses",
                "",
                "nothing-to-do",
                "The row asks for no change.",
                Severity.WARNING,
            )
        return RowRequest(
            row=number,
            status=status,
            action=action,
            upn=upn,
            object_id=object_id,
            add_licenses=add_licenses,
            remove_licenses=removes,
            usage_location=location,
            join_groups=join,
            leave_groups=leave,
            effective_date=effective,
            values=source.values,
        )

    def _user(self, number: int, cell: dict[str, str]) -> tuple[str | None, str | None]:
        """(UPN, object id) of a row; findings for a bad or missing user."""
        upn_text, oid_text = cell["upn"], cell["object_id"]
        upn = object_id = None
        if upn_text:
            problem = upn_problem(upn_text)
            if problem:
                self.flag(
                    number,
                    "upn",
                    upn_text,
                    "invalid-upn",
                    f"'{upn_text}' is not a valid user principal name: {problem}.",
                )
            else:
                upn = upn_text
        if oid_text:
            object_id = normalise_guid(oid_text)
            if object_id is None:
                self.flag(
                    number,
                    "object_id",
                    oid_text,
                    "invalid-object-id",
                    f"'{oid_text}' is not an object id (a GUID).",
                )
        if not upn_text and not oid_text:
            self.flag(
                number,
                "upn",
                "",
                "missing-user",
                f"No user: fill in {self.sheet.column_name('upn')}"
                f" (or {self.sheet.column_name('object_id')}).",
            )
        return upn, object_id

    def _analyse(self, number: int, cell: dict[str, str]) -> _Analysis:
        """Everything a row asks apart from its user; findings are flagged on ``number``."""
        action_text = cell["action"]
        action = _ACTIONS.get(action_text.casefold())
        if action is None:
            close = difflib.get_close_matches(action_text.casefold(), ["assign", "offboard"], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            self.flag(
                number,
                "action",
                action_text,
                "unknown-action",
                f"Unknown action '{action_text}': use assign or offboard.{hint}",
            )
            action = Action.ASSIGN

        adds = self._licenses(number, cell["add_licenses"], "add_licenses")
        removes = self._licenses(number, cell["remove_licenses"], "remove_licenses")
        add_ids = {sku.id for sku in adds}
        for sku in removes:
            if sku.id in add_ids:
                self.flag(
                    number,
                    "remove_licenses",
                    cell["remove_licenses"],
                    "add-and-remove",
                    f"{sku.part_number} is both added and removed on this row.",
                )
        plans_text = cell["disabled_plans"]
        key = (plans_text, tuple(s.id for s in adds), action)
        cached = self._plan_cache.get(key)
        if cached is None:
            cached = self._plan_cache[key] = self.cells.disabled_plans(plans_text, adds, action)
        add_licenses, plan_issues = cached
        self.replay(number, plan_issues)
        if action is Action.OFFBOARD and (adds or cell["disabled_plans"]):
            self.flag(
                number,
                "add_licenses",
                cell["add_licenses"],
                "offboard-with-licenses",
                "An offboard row removes every license: leave "
                f"{self.sheet.column_name('add_licenses')} and "
                f"{self.sheet.column_name('disabled_plans')} empty.",
            )

        location = self._location(number, cell["usage_location"])

        join = split_list(cell["groups"])
        leave = split_list(cell["remove_groups"])
        if action is Action.OFFBOARD:
            join, leave = [], list(dict.fromkeys(join + leave))
        both = {g.casefold() for g in join} & {g.casefold() for g in leave}
        if both:
            self.flag(
                number,
                "remove_groups",
                cell["remove_groups"],
                "group-join-and-leave",
                f"Group(s) {', '.join(sorted(both))} both joined and left on this row.",
            )

        effective = self._effective_date(number, cell, action)
        return (
            action,
            add_licenses,
            tuple(sku.id for sku in removes),
            location,
            tuple(join),
            tuple(leave),
            effective,
        )

    def _location(self, number: int, location_text: str) -> str | None:
        """The usage location of a row as an ISO code; findings when it is not one."""
        location = None
        if location_text:
            location, from_name = parse_usage_location(location_text)
            if location is None:
                self.flag(
                    number,
                    "usage_location",
                    location_text,
                    "invalid-usage-location",
                    f"'{location_text}' is not a usage location: use a two-letter ISO country code "
                    "such as US, GB or DE.",
                )
            elif from_name:
                self.flag(
                    number,
                    "usage_location",
                    location_text,
                    "usage-location-name",
                    f"'{location_text}' read as {location}.",
                    Severity.INFO,
                )
        return location

    def _licenses(self, number: int, text: str, field_name: str) -> tuple[Sku, ...]:
        if not text:
            return ()
        key = (field_name, text)
        cached = self._license_cache.get(key)
        if cached is None:
            cached = self._license_cache[key] = self.cells.analyse_licenses(text, field_name)
        found, issues = cached
        self.replay(number, issues)
        return found

    def _effective_date(self, number: int, cell: dict[str, str], action: Action) -> dt.date | None:
        order = _DATE_ORDER_OFFBOARD if action is Action.OFFBOARD else _DATE_ORDER_ASSIGN
        for name in order:
            text = cell[name]
            if not text:
                continue
            date, problem = parse_date(text)
            if date is None:
                self.flag(number, name, text, "invalid-date", f"{problem}.")
                return None
            if date > self.as_of:
                self.flag(
                    number,
                    name,
                    text,
                    "future-date",
                    f"Effective {date.isoformat()}, after {self.as_of.isoformat()}: deferred "
                    "(run again on that date, or use --as-of).",
                    Severity.WARNING,
                )
            return date
        return None


def validate_sheet(
    sheet: Sheet, catalog: Catalog, *, as_of: dt.date | None = None
) -> ValidationResult:
    """Check every row of ``sheet`` against ``catalog``; never raises for row problems.

    :param as_of: rows effective after this date are Deferred (default: today).
    """
    as_of = as_of or dt.date.today()
    validator = _Validator(sheet, catalog, as_of)
    with paused_gc():
        rows = [validator.row(source) for source in sheet.rows]
        rows = _check_same_user(rows, validator)
    findings = sorted(validator.findings, key=lambda f: f.row)
    return ValidationResult(sheet=sheet, rows=rows, findings=findings, as_of=as_of)


def _check_same_user(rows: list[RowRequest], validator: _Validator) -> list[RowRequest]:
    """Skip exact repeats of a user's row; mark different rows for one user as conflicting."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, request in enumerate(rows):
        key = (request.object_id or request.upn or "").casefold()
        if key:
            groups[key].append(index)
    for indexes in groups.values():
        if len(indexes) < 2:
            continue
        members = [rows[i] for i in indexes]
        first = members[0]
        same = all(
            m.status is not RowStatus.INVALID and m.signature() == first.signature()
            for m in members
        )
        for index in indexes[1 if same else 0 :]:
            request = rows[index]
            others = ", ".join(str(m.row) for m in members if m.row != request.row)
            if same:
                validator.flag(
                    request.row,
                    "upn",
                    request.user,
                    "duplicate-row",
                    f"Same as row {first.row}: skipped.",
                    Severity.WARNING,
                )
                rows[index] = _replace_status(request, RowStatus.SKIPPED, same_as=first.row)
            else:
                validator.flag(
                    request.row,
                    "upn",
                    request.user,
                    "conflicting-rows",
                    f"{request.user} also has row(s) {others} asking for something else: "
                    "put all of a user's changes on one row.",
                )
                rows[index] = _replace_status(request, RowStatus.INVALID)
    return rows


def _replace_status(
    request: RowRequest, status: RowStatus, *, same_as: int | None = None
) -> RowRequest:
    return replace(request, status=status, same_as=same_as)
