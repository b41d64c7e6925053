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
import enum
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from batch.intake.catalog import Catalog, Sku, normalise_guid
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


class Severity(enum.StrEnum):
    """How much a finding matters: errors make the row Invalid."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


#: the statuses a row can have after validation alone
VALIDATION_STATUSES = (RowStatus.READY, RowStatus.INVALID, RowStatus.DEFERRED, RowStatus.SKIPPED)


class Action(enum.StrEnum):
    """What a row asks for."""

    ASSIGN = "assign"  #: make the user hold these licenses, plans, groups, location
    OFFBOARD = "offboard"  #: remove every direct license and leave the listed groups


_ACTIONS = {
    "": Action.ASSIGN,
    "assign": Action.ASSIGN,
    "add": Action.ASSIGN,
    "onboard": Action.ASSIGN,
    "update": Action.ASSIGN,
    "offboard": Action.OFFBOARD,
    "leaver": Action.OFFBOARD,
}


@dataclass(frozen=True)
class Finding:
    """One validation problem, located as the user sees it in Excel."""

    row: int
    column: str
    value: str
    rule: str
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True)
class LicenseAdd:
    """A license to hold, with the service plans to disable in it (GUIDs, sorted)."""

    sku_id: str
    part_number: str
    disabled_plans: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowRequest:
    """What one input row asks for, cleaned; the planner consumes these."""

    row: int  #: Excel row number in the input
    status: RowStatus
    action: Action
    upn: str | None
    object_id: str | None  #: lower-case GUID
    add_licenses: tuple[LicenseAdd, ...] = ()
    remove_licenses: tuple[str, ...] = ()  #: skuIds, lower-case
    usage_location: str | None = None  #: ISO 3166-1 alpha-2
    join_groups: tuple[str, ...] = ()  #: names or ids, as written
    leave_groups: tuple[str, ...] = ()
    effective_date: dt.date | None = None
    values: tuple[str, ...] = ()  #: the original cells, aligned with the sheet's headers
    same_as: int | None = None  #: for a Skipped duplicate: the row it repeats

    @property
    def deferred(self) -> bool:
        """True when the row waits for its effective date."""
        return self.status is RowStatus.DEFERRED

    @property
    def ready(self) -> bool:
        """True when the planner should take the row."""
        return self.status is RowStatus.READY

    @property
    def user(self) -> str:
        """How the row names its user: the UPN, else the ObjectId."""
        return self.upn or self.object_id or ""

    def signature(self) -> tuple[object, ...]:
        """Everything the row asks, for comparing rows of the same user."""
        return (
            self.action,
            frozenset(self.add_licenses),
            frozenset(self.remove_licenses),
            self.usage_location,
            frozenset(g.casefold() for g in self.join_groups),
            frozenset(g.casefold() for g in self.leave_groups),
            self.effective_date,
        )


@dataclass
class ValidationResult:
    """Every row as a request, every finding, and the date rows were judged against."""

    sheet: Sheet
    rows: list[RowRequest]
    findings: list[Finding]
    as_of: dt.date
    _by_row: dict[int, list[Finding]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for finding in self.findings:
            self._by_row.setdefault(finding.row, []).append(finding)

    def with_status(self, status: RowStatus) -> list[RowRequest]:
        """The rows in ``status``."""
        return [r for r in self.rows if r.status is status]

    @property
    def ready(self) -> list[RowRequest]:
        """Rows the planner takes."""
        return self.with_status(RowStatus.READY)

    def counts(self) -> Counter[str]:
        """Rows per status."""
        return Counter(r.status.value for r in self.rows)

    def counts_by_rule(self) -> Counter[str]:
        """Findings per rule."""
        return Counter(f.rule for f in self.findings)

    def findings_for(self, row: int) -> list[Finding]:
        """The findings of one Excel row."""
        return self._by_row.get(row, [])

    def detail(self, row: int) -> str:
        """One line for the report's Detail column: errors first, then warnings."""
        found = sorted(self.findings_for(row), key=lambda f: list(Severity).index(f.severity))
        return "; ".join(f.message for f in found)


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

#: a finding without its row: (field, value, rule, message, severity), cached per cell text
_Issue = tuple[str, str, str, str, Severity]
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
        self._sku_cache: dict[str, tuple[Sku | None, str | None, str | None]] = {}
        self._license_cache: dict[tuple[str, str], tuple[tuple[Sku, ...], tuple[_Issue, ...]]] = {}
        self._request_cache: dict[tuple[str, ...], tuple[_Analysis, tuple[_Issue, ...], bool]] = {}
        self._plan_cache: dict[
            tuple[object, ...], tuple[tuple[LicenseAdd, ...], tuple[_Issue, ...]]
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

    def resolve_sku(self, text: str) -> tuple[Sku | None, str | None, str | None]:
        """(sku, rule, message) for one license as written, cached per distinct text."""
        cached = self._sku_cache.get(text)
        if cached is not None:
            return cached
        result = self._resolve_sku(text)
        self._sku_cache[text] = result
        return result

    def _resolve_sku(self, text: str) -> tuple[Sku | None, str | None, str | None]:
        candidates = self.catalog.find_skus(text)
        if not candidates:
            suggestion = self.catalog.suggest(text)
            hint = f" Did you mean '{suggestion}'?" if suggestion else ""
            return (
                None,
                "unknown-license",
                f"'{text}' is not a license part number, product name or skuId.{hint}",
            )
        in_tenant = [s for s in candidates if s.in_tenant]
        if not in_tenant:
            sku = candidates[0]
            return (
                sku,
                "license-not-in-tenant",
                (
                    f"'{text}' ({sku.part_number}, {sku.name}) is not one of the tenant's "
                    "subscriptions."
                ),
            )
        if len(in_tenant) > 1:
            options = ", ".join(f"{s.part_number} {s.id}" for s in in_tenant)
            return (
                None,
                "ambiguous-license",
                f"'{text}' means several of the tenant's SKUs ({options}): write the skuId.",
            )
        return in_tenant[0], None, None

    # -- one row

    def replay(self, number: int, issues: tuple[_Issue, ...]) -> None:
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
                "No user: fill in UserPrincipalName (or ObjectId).",
            )

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
            cached = self._plan_cache[key] = self._disabled_plans(plans_text, adds, action)
        add_licenses, plan_issues = cached
        self.replay(number, plan_issues)
        if action is Action.OFFBOARD and (adds or cell["disabled_plans"]):
            self.flag(
                number,
                "add_licenses",
                cell["add_licenses"],
                "offboard-with-licenses",
                "An offboard row removes every license: leave AddLicenses and DisabledPlans empty.",
            )

        location = None
        location_text = cell["usage_location"]
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

    def _licenses(self, number: int, text: str, field_name: str) -> tuple[Sku, ...]:
        if not text:
            return ()
        key = (field_name, text)
        cached = self._license_cache.get(key)
        if cached is None:
            cached = self._license_cache[key] = self._analyse_licenses(text, field_name)
        found, issues = cached
        self.replay(number, issues)
        return found

    def _analyse_licenses(
        self, text: str, field_name: str
    ) -> tuple[tuple[Sku, ...], tuple[_Issue, ...]]:
        """The SKUs one license cell names, and its findings (cached per distinct cell)."""
        found: list[Sku] = []
        issues: list[_Issue] = []
        adding = field_name == "add_licenses"
        for item in split_list(text, whole=lambda t: bool(self.catalog.find_skus(t))):
            sku, rule, message = self.resolve_sku(item)
            if rule == "license-not-in-tenant" and not adding:
                issues.append(
                    (
                        field_name,
                        item,
                        "remove-not-in-tenant",
                        f"{message} There is nothing to remove.",
                        Severity.WARNING,
                    )
                )
                continue
            if rule:
                issues.append((field_name, item, rule, message or "", Severity.ERROR))
                continue
            assert sku is not None
            if adding and sku.applies_to and sku.applies_to.casefold() == "company":
                issues.append(
                    (
                        field_name,
                        item,
                        "company-license",
                        f"{sku.part_number} ({sku.name}) applies to the whole company and cannot "
                        "be assigned to a user.",
                        Severity.ERROR,
                    )
                )
                continue
            if (
                adding
                and sku.capability_status
                and sku.capability_status.casefold() in ("suspended", "lockedout", "deleted")
            ):
                issues.append(
                    (
                        field_name,
                        item,
                        "license-not-enabled",
                        f"The tenant's {sku.part_number} subscription is {sku.capability_status}: "
                        "it cannot take new assignments.",
                        Severity.ERROR,
                    )
                )
                continue
            if sku not in found:
                found.append(sku)
        return tuple(found), tuple(issues)

    def _disabled_plans(
        self, text: str, adds: tuple[Sku, ...], action: Action
    ) -> tuple[tuple[LicenseAdd, ...], tuple[_Issue, ...]]:
        """The licenses to add with their plans to disable, and the findings (cached)."""
        disabled: dict[str, set[str]] = defaultdict(set)
        issues: list[_Issue] = []

        def result() -> tuple[tuple[LicenseAdd, ...], tuple[_Issue, ...]]:
            licenses = tuple(
                LicenseAdd(s.id, s.part_number, tuple(sorted(disabled.get(s.id, ())))) for s in adds
            )
            return licenses, tuple(issues)

        if not text:
            return result()
        if not adds:
            if action is not Action.OFFBOARD:  # offboard rows get their own finding
                issues.append(
                    (
                        "disabled_plans",
                        text,
                        "plan-without-license",
                        "DisabledPlans needs a license in AddLicenses to disable them in.",
                        Severity.ERROR,
                    )
                )
            return result()
        for item in split_list(text):
            sku_part, _, plan_text = item.rpartition(":")
            targets: list[Sku] = list(adds)
            if sku_part:
                sku, _, _ = self.resolve_sku(sku_part)
                targets = [s for s in adds if sku is not None and s.id == sku.id]
                if not targets:
                    issues.append(
                        (
                            "disabled_plans",
                            item,
                            "plan-not-in-license",
                            f"'{item}': {sku_part} is not among the licenses this row adds.",
                            Severity.ERROR,
                        )
                    )
                    continue
            hits = [(sku, plan) for sku in targets if (plan := sku.find_plan(plan_text))]
            if hits:
                for sku, plan in hits:
                    disabled[sku.id].add(plan.id)
                continue
            known = any(s.find_plan(plan_text) for s in self.catalog.skus.values())
            names = ", ".join(s.part_number for s in targets)
            if known:
                issues.append(
                    (
                        "disabled_plans",
                        item,
                        "plan-not-in-license",
                        f"Service plan '{plan_text}' is not part of {names}.",
                        Severity.ERROR,
                    )
                )
            else:
                issues.append(
                    (
                        "disabled_plans",
                        item,
                        "unknown-plan",
                        f"'{plan_text}' is not a service plan name or id (licenses on this row: "
                        f"{names}).",
                        Severity.ERROR,
                    )
                )
        return result()

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


def summary_lines(result: ValidationResult) -> list[str]:
    """A short plain-text summary: rows read, per status, findings by rule."""
    counts = result.counts()
    lines = [
        f"Rows read: {len(result.rows)} ({result.sheet.path.name}"
        + (f", sheet '{result.sheet.sheet_name}'" if result.sheet.sheet_name else "")
        + (
            f", {result.sheet.encoding}, {result.sheet.delimiter}-separated"
            if result.sheet.encoding
            else ""
        )
        + ")",
        "  "
        + ", ".join(
            f"{status.value.lower()}: {counts.get(status.value, 0)}"
            for status in VALIDATION_STATUSES
            for status in VALIDATION_STATUSES
        ),
    ]
    by_rule = result.counts_by_rule()
    if by_rule:
        lines.append("Findings by rule:")
        lines.extend(f"  {rule}: {count}" for rule, count in by_rule.most_common())
    lines.extend(f"Note: {note}" for note in result.sheet.notes)
    return lines
