"""The row model of validation: what a row asks (:class:`RowRequest`), what is wrong with it
(:class:`Finding`), and every row of a sheet with its findings (:class:`ValidationResult`).

:mod:`batch.intake.validate` builds these; the planner and the reports read them.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from dataclasses import dataclass, field

from batch.intake.sheet import Sheet
from batch.status import RowStatus

__all__ = [
    "VALIDATION_STATUSES",
    "Action",
    "Finding",
    "LicenseAdd",
    "RowRequest",
    "Severity",
    "ValidationResult",
    "summary_lines",
]


class Severity(enum.StrEnum):
    """How much a finding matters: errors make the row Invalid."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


_SEVERITY_ORDER = {severity: index for index, severity in enumerate(Severity)}

#: the statuses a row can have after validation alone
VALIDATION_STATUSES = (RowStatus.READY, RowStatus.INVALID, RowStatus.DEFERRED, RowStatus.SKIPPED)


class Action(enum.StrEnum):
    """What a row asks for."""

    ASSIGN = "assign"  #: make the user hold these licenses, plans, groups, location
    OFFBOARD = "offboard"  #: remove every direct license and leave the listed groups


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
        found = self.findings_for(row)
        if not found:
            return ""
        found = sorted(found, key=lambda f: _SEVERITY_ORDER[f.severity])
        return "; ".join(f.message for f in found)


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
        ),
    ]
    by_rule = result.counts_by_rule()
    if by_rule:
        lines.append("Findings by rule:")
        lines.extend(f"  {rule}: {count}" for rule, count in by_rule.most_common())
    lines.extend(f"Note: {note}" for note in result.sheet.notes)
    return lines
