"""Onboarding, the options: what shapes a run, and the removal guard.

The removal guard: a run that would remove more than ``DEFAULT_MAX_REMOVALS`` licenses (or
the ``--max-removals`` given) is refused before anything is written, as Entra's own
provisioning guards do against accidental mass deletion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from batch.config import DEFAULT_VERIFY_WAIT
from batch.errors import GuardStopped
from batch.run.plan import Plan, PlanOptions

__all__ = ["DEFAULT_MAX_REMOVALS", "RunOptions", "check_removals", "option_lines"]

#: licenses a run may remove without --max-removals
DEFAULT_MAX_REMOVALS = 100


@dataclass(frozen=True)
class RunOptions:
    """Options that shape a run; kept in the journal so that resume plans the same way."""

    sheet: str | None = None
    as_of: dt.date | None = None
    exact: bool = False
    default_usage_location: str | None = None
    include_disabled: bool = False
    exact_plans: bool = False
    wait_for_groups: float = 120.0
    #: seconds the read-back may wait for written rows to read back as asked
    verify_wait: float = DEFAULT_VERIFY_WAIT

    @property
    def plan_options(self) -> PlanOptions:
        return PlanOptions(
            self.exact, self.default_usage_location, self.include_disabled, self.exact_plans
        )

    def as_meta(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat() if self.as_of else None
        return data

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> RunOptions:
        values = dict(data)
        if values.get("as_of"):
            values["as_of"] = dt.date.fromisoformat(values["as_of"])
        return cls(**values)


def option_lines(options: RunOptions) -> dict[str, object]:
    """The options as the report's Summary sheet lists them."""
    return {
        "exact": options.exact,
        "default usage location": options.default_usage_location,
        "include disabled accounts": options.include_disabled,
        "as of": (options.as_of or dt.date.today()).isoformat(),
        "verify wait (s)": options.verify_wait,
    }


def check_removals(plan: Plan, max_removals: int | None) -> None:
    """Refuse a plan that removes more licenses than allowed (exit code 4)."""
    limit = DEFAULT_MAX_REMOVALS if max_removals is None else max_removals
    if plan.removals > limit:
        raise GuardStopped(
            f"The plan removes {plan.removals} licenses, more than the {limit} allowed.",
            hint=f"Check the sheet, then run again with --max-removals {plan.removals}.",
        )
