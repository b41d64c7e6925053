"""Helpers for the conformance tests: polling with a deadline, batch items, sample users."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from batch.simulator import RunningSimulator

FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"
ENTERPRISEPACK = "6fd2c87f-b296-42f0-b197-1e91e994b900"
SPE_E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
SPE_E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"
POWER_BI_PRO = "f8a1db68-be16-40ed-86d5-cb42ce701560"
COMPANY_SKU = "47794cd0-f0e5-45c5-9033-2eb6b5fc84e0"  # MCOPSTNC, appliesTo Company
OBRIEN = "o'brien@contoso.example"  # holds ENTERPRISEPACK directly, usage location set


def poll(check: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def get_item(i: int | str, url: str = "/organization", **extra: Any) -> dict[str, Any]:
    """A GET ``$batch`` item."""
    return {"id": str(i), "method": "GET", "url": url, **extra}


def user_id(sim: RunningSimulator, upn: str) -> str:
    """The object id of a sample user."""
    user = sim.store.user(upn)
    assert user is not None, upn
    return str(user["id"])
