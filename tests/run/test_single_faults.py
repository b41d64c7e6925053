"""Server errors on single (non-``$batch``) requests do not end a run.

With 30% of standalone requests answered 500 (``GET /subscribedSkus``, pages of users,
group lookups, the read-back), ``skus``, ``plan``, ``apply`` and ``true-up`` all finish
(exit 0 or 3, never 1): the client retries reads as it retries ``$batch`` items.
"""

from __future__ import annotations

from pathlib import Path

from batch.simulator import SimulatorOptions
from tests.run.runkit import Tenant, onboarding_rows, write_csv


def single_fault_option() -> str:
    """``fault_single_500`` (standalone requests only) when the simulator has it; before it
    existed ``fault_item_500`` also hit standalone requests (and ``$batch`` items)."""
    fields = SimulatorOptions.__dataclass_fields__
    return "fault_single_500" if "fault_single_500" in fields else "fault_item_500"


def faults_500(tenant: Tenant) -> int:
    """500s the simulator injected so far (whatever its counter for single requests is)."""
    return tenant.sim.counters[
        "single_fault_500"
        if "fault_single_500" in SimulatorOptions.__dataclass_fields__
        else "fault_500"
    ]


def test_commands_finish_through_server_errors_on_single_requests(
    tenant: Tenant, tmp_path: Path
) -> None:
    headers, rows = onboarding_rows()
    sheet = write_csv(tmp_path / "hires.csv", headers, rows)
    before = faults_500(tenant)
    setattr(tenant.sim.options, single_fault_option(), 0.3)

    skus = tenant.cli("skus")
    assert skus.returncode == 0, skus.stderr
    assert "SPE_E3" in skus.stdout

    plan = tenant.cli("plan", str(sheet), "--output", str(tmp_path / "plan.xlsx"))
    assert plan.returncode in (0, 3), plan.stderr
    assert (tmp_path / "plan.xlsx").is_file()

    applied = tenant.cli("apply", str(sheet), "--yes", "--output", str(tmp_path / "run.xlsx"))
    assert applied.returncode in (0, 3), applied.stderr
    assert (tmp_path / "run.xlsx").is_file()

    trueup = tenant.cli("true-up", "--output", str(tmp_path / "trueup.xlsx"))
    assert trueup.returncode in (0, 3), trueup.stderr
    assert (tmp_path / "trueup.xlsx").is_file()

    assert faults_500(tenant) - before >= 5  # the faults did happen
