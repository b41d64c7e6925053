"""A row's Detail: its errors first, then warnings, then notes; nothing for a clean row."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from batch.intake.model import Finding, Severity, ValidationResult


def test_detail_orders_by_severity_and_keeps_the_order_within_one() -> None:
    findings = [
        Finding(2, "Country", "Germany", "usage-location-name", "read as DE", Severity.INFO),
        Finding(2, "Email", "", "future-date", "deferred", Severity.WARNING),
        Finding(2, "Licenses", "E3", "unknown-license", "no SKU E3", Severity.ERROR),
        Finding(2, "Plans", "X", "unknown-plan", "no plan X", Severity.ERROR),
        Finding(3, "Email", "", "nothing-to-do", "no change", Severity.WARNING),
    ]
    result = ValidationResult(
        sheet=cast(Any, None), rows=[], findings=findings, as_of=dt.date(2026, 1, 1)
    )
    assert result.detail(2) == "no SKU E3; no plan X; deferred; read as DE"
    assert result.detail(3) == "no change"
    assert result.detail(4) == ""
