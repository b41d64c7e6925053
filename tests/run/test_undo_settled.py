"""Undo never misses: writes whose answer was lost are settled by reading the tenant.

A run killed (SIGKILL) after writes were applied but before their answers were journaled
leaves them ``sent``; resume plans again from the tenant and no longer needs them, so only a
read of the tenant can say they happened. Undo must revert every one of them.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from batch.errors import JournalError
from batch.run.history import done_ops
from batch.run.journal import Journal, list_runs
from tests.run.runkit import Tenant, onboarding_rows, upns_of, write_csv

HEADERS, ROWS = onboarding_rows()
UPNS = upns_of(ROWS)


@pytest.mark.parametrize("point", ["journal.done:6", "journal.sent:15"])
def test_kill_resume_undo_restores_every_license(
    tenant: Tenant, tmp_path: Path, point: str
) -> None:
    tenant.sim.options.fault_lost_ack = 0.1
    before = tenant.state(UPNS)
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    killed = tenant.cli(
        "apply",
        str(sheet),
        "--yes",
        "--output",
        str(tmp_path / "r.xlsx"),
        extra_env={"M365BATCH_CRASH_AT": point},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = list_runs(tenant.home)[0]
    assert run.state == "interrupted" and run.unsettled > 0
    resumed = tenant.cli("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "left to write" in resumed.stdout
    assert list_runs(tenant.home)[0].unsettled == 0
    assert licenses(tenant.state(UPNS)) != licenses(before)
    undone = tenant.cli("undo", run.run_id, "--yes", "--output", str(tmp_path / "u.xlsx"))
    assert undone.returncode == 0, undone.stdout + undone.stderr
    # every license as before (a usage location set for a license stays: a licensed user
    # needs one)
    assert licenses(tenant.state(UPNS)) == licenses(before)


def licenses(state: dict[str, Any]) -> dict[str, Any]:
    return {upn: user[0] for upn, user in state.items()}


def test_undo_refuses_a_run_with_unsettled_writes(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, kind="apply", tenant="t1", run_id="20261128-090000-aaaa")
    with journal:
        journal.add_ops([("row 2: assignLicense a@x", 2, {"kind": "assignLicense"})])
        journal.mark_sent("row 2: assignLicense a@x")
    with pytest.raises(JournalError, match="answer was lost") as refused:
        done_ops(tmp_path, "20261128-090000-aaaa")
    assert "row 2: assignLicense a@x" in str(refused.value)
