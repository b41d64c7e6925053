"""Crash safety and faults: a run killed anywhere resumes to the state of an uninterrupted run.

The apply process kills itself with SIGKILL at a crash point (batch.crashpoints): inside a
journal transaction, after an operation is journaled as sent, after an outcome is
journaled, before the read-back, while the report is being saved. Then ``resume`` runs.
The tenant must end as an uninterrupted run leaves it, every row must have exactly one
status, and no license write may have been applied twice.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from batch.run.journal import Journal, list_runs
from batch.simulator import SimulatorOptions, start_simulator
from tests.childproc import m365batch_argv
from tests.run.runkit import Tenant, onboarding_rows, upns_of, write_csv

HEADERS, ROWS = onboarding_rows()
UPNS = upns_of(ROWS)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tenant state an uninterrupted run of the sheet leaves behind."""
    folder = tmp_path_factory.mktemp("reference")
    sheet = write_csv(folder / "hires.csv", HEADERS, ROWS)
    with start_simulator(
        folder / "sim", SimulatorOptions(seed=7, time_scale=50, group_processing_delay=5.0)
    ) as sim:
        tenant = Tenant(sim, folder / "home")
        result = tenant.cli("apply", str(sheet), "--yes", "--output", str(folder / "r.xlsx"))
        assert result.returncode == 0, result.stderr
        return tenant.state(UPNS)


def assert_converged(tenant: Tenant, reference: dict[str, Any], report: Path) -> None:
    assert tenant.state(UPNS) == reference
    twice = {key: n for key, n in tenant.sim.store.applied_writes().items() if n > 1}
    assert not twice, f"applied more than once: {twice}"
    book = openpyxl.load_workbook(report, read_only=True)
    try:
        rows = list(book["Rows"].iter_rows(min_row=2, values_only=True))
        status_col = [c.value for c in next(book["Rows"].iter_rows(max_row=1))].index("Status")
    finally:
        book.close()
    assert [r[0] for r in rows] == UPNS
    assert {r[status_col] for r in rows} == {"Applied"}


CRASH_POINTS = [
    "journal.write:1",
    "journal.write:9",
    "journal.write:30",
    "journal.sent:1",
    "journal.sent:12",
    "journal.sent:26",
    "journal.done:1",
    "journal.done:14",
    "journal.done:27",
    "readback:1",
    "report.save:1",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_run_resumes_to_the_same_end_state(
    tenant: Tenant, tmp_path: Path, reference: dict[str, Any], point: str
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    report = tmp_path / "report.xlsx"
    killed = tenant.cli(
        "apply",
        str(sheet),
        "--yes",
        "--output",
        str(report),
        extra_env={"M365BATCH_CRASH_AT": point},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not report.exists()
    resumed = tenant.cli("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_converged(tenant, reference, report)
    assert list_runs(tenant.home)[0].state == "finished"


def test_a_crash_during_resume_still_converges(
    tenant: Tenant, tmp_path: Path, reference: dict[str, Any]
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    report = tmp_path / "report.xlsx"
    first = tenant.cli(
        "apply",
        str(sheet),
        "--yes",
        "--output",
        str(report),
        extra_env={"M365BATCH_CRASH_AT": "journal.sent:3"},
    )
    assert first.returncode == -signal.SIGKILL
    second = tenant.cli("resume", extra_env={"M365BATCH_CRASH_AT": "journal.sent:10"})
    assert second.returncode == -signal.SIGKILL
    third = tenant.cli("resume")
    assert third.returncode == 0, third.stderr
    assert_converged(tenant, reference, report)


def test_ctrl_c_leaves_the_journal_consistent_and_resume_finishes(
    tenant: Tenant, tmp_path: Path, reference: dict[str, Any]
) -> None:
    tenant.sim.options.latency_ms = 400  # slow enough to interrupt in the middle
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    report = tmp_path / "report.xlsx"
    proc = subprocess.Popen(
        m365batch_argv("apply", str(sheet), "--yes", "--output", str(report)),
        env=tenant.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = list_runs(tenant.home)
        if runs and runs[0].counts.get("sent", 0) + runs[0].counts.get("done", 0) > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    run_id = list_runs(tenant.home)[0].run_id
    assert f"Interrupted: run {run_id} stopped" in stderr
    assert f"m365batch resume {run_id}" in stderr
    with Journal.open(tenant.home, run_id) as journal:
        assert journal.get("state") == "interrupted"
        assert journal.pending(), "the interruption came after the last write"
    tenant.sim.options.latency_ms = 0
    resumed = tenant.cli("resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert_converged(tenant, reference, report)


def test_faults_on_the_wire_still_end_exact(
    tenant: Tenant, tmp_path: Path, reference: dict[str, Any]
) -> None:
    options = tenant.sim.options
    options.fault_item_429 = 0.15
    options.fault_item_503 = 0.05
    options.fault_item_504 = 0.05
    options.fault_lost_ack = 0.05
    options.fault_reset_after = 0.03
    options.fault_retry_after = 1.0
    options.token_expire_after = 40.0  # tokens die early (time-scaled: after 0.8 s)
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    report = tmp_path / "report.xlsx"
    result = tenant.cli("apply", str(sheet), "--yes", "--output", str(report), timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (
        "fault_item_429",
        "fault_item_503",
        "fault_item_504",
        "fault_lost_ack",
        "fault_reset_after",
    ):
        setattr(options, name, 0.0)
    options.token_expire_after = None
    assert_converged(tenant, reference, report)
