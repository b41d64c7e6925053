"""The license cells of a row: which SKUs a cell names, and which service plans to disable.

Resolved per distinct cell text and cached by :mod:`batch.intake.validate`, so a sheet of
100,000 rows that repeats a few license combinations resolves each one once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from batch.intake.catalog import Catalog, Sku, sku_label
from batch.intake.model import Action, LicenseAdd, Severity
from batch.intake.sheet import FIELD_LABELS
from batch.intake.values import split_list

__all__ = ["Issue", "LicenseCells"]

#: a finding without its row: (field, value, rule, message, severity), cached per cell text
Issue = tuple[str, str, str, str, Severity]


class LicenseCells:
    """Resolve license and disabled-plan cells against a catalog (SKUs cached per text)."""

    def __init__(
        self, catalog: Catalog, *, column_name: Callable[[str], str] = FIELD_LABELS.__getitem__
    ) -> None:
        self.catalog = catalog
        self.column_name = column_name  #: a field's header as the sheet writes it
        self._sku_cache: dict[str, tuple[Sku | None, str | None, str | None]] = {}

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
            hint = self.catalog.did_you_mean(text)
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
                    f"'{text}' ({sku_label(sku.part_number, sku.name)}) is not one of the "
                    "tenant's subscriptions."
                ),
            )
        if len(in_tenant) > 1:
            options = ", ".join(f"{sku_label(s.part_number, s.name)} {s.id}" for s in in_tenant)
            return (
                None,
                "ambiguous-license",
                f"'{text}' means several of the tenant's SKUs ({options}): write the skuId.",
            )
        return in_tenant[0], None, None

    def analyse_licenses(
        self, text: str, field_name: str
    ) -> tuple[tuple[Sku, ...], tuple[Issue, ...]]:
        """The SKUs one license cell names, and its findings (cached per distinct cell)."""
        found: list[Sku] = []
        issues: list[Issue] = []
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
                        f"{sku_label(sku.part_number, sku.name)} applies to the whole company and "
                        "cannot be assigned to a user.",
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
                        f"The tenant's {sku_label(sku.part_number, sku.name)} subscription is "
                        f"{sku.capability_status}: it cannot take new assignments.",
                        Severity.ERROR,
                    )
                )
                continue
            if sku not in found:
                found.append(sku)
        return tuple(found), tuple(issues)

    def disabled_plans(
        self, text: str, adds: tuple[Sku, ...], action: Action
    ) -> tuple[tuple[LicenseAdd, ...], tuple[Issue, ...]]:
        """The licenses to add with their plans to disable, and the findings (cached)."""
        disabled: dict[str, set[str]] = defaultdict(set)
        issues: list[Issue] = []

        def result() -> tuple[tuple[LicenseAdd, ...], tuple[Issue, ...]]:
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
                        f"{self.column_name('disabled_plans')} needs a license in "
                        f"{self.column_name('add_licenses')} to disable them in.",
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
                        f"Service plan '{plan_text}' is not part of {names}."
                        f"{self.catalog.plan_did_you_mean(plan_text, targets)}",
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
                        f"{names}).{self.catalog.plan_did_you_mean(plan_text, targets)}",
                        Severity.ERROR,
                    )
                )
        return result()
