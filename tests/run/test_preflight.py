"""Pre-flight: a run that could not record or report its work writes nothing to the tenant."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch.run.journal import list_runs
from tests.run.runkit import Tenant, onboarding_rows, write_csv

HEADERS, ROWS = onboarding_rows()


def _cases(tmp_path: Path, sheet: Path) -> dict[str, tuple[str, str]]:
    """case -> (the --output given, what the one-line error says)."""
    (tmp_path / "taken.xlsx").touch()
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    cases = {
        "exists": (str(tmp_path / "taken.xlsx"), "already exists"),
        "folder missing": (str(tmp_path / "nowhere" / "r.xlsx"), "does not exist"),
        "the input itself": (str(sheet), "is the input file"),
        "a device": ("/dev/full", "not a regular file"),
        # a folder nobody may create files in, whoever runs the tests
        "not writable": ("/proc/m365batch-report.xlsx", "not writable"),
    }
    if os.geteuid() != 0:  # root may write in a 0500 folder
        cases["read-only folder"] = (str(readonly / "r.xlsx"), "not writable")
    return cases


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full and /proc")
def test_output_problems_stop_the_run_before_any_tenant_write(
    tenant: Tenant, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    for case, (output, reason) in _cases(tmp_path, sheet).items():
        result = tenant.cli("apply", str(sheet), "--yes", "--output", output)
        assert result.returncode == 1, (case, result.stdout, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and reason in errors[0], (case, result.stderr)
        assert "nothing was sent" in result.stderr, case
        assert tenant.sim.counters["writes"] == 0, case
        assert not list_runs(tenant.home), case
    assert sheet.read_text(encoding="utf-8").startswith("UserPrincipalName")


def test_a_home_whose_runs_folder_cannot_be_written_stops_before_any_write(
    tenant: Tenant, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    tenant.home.mkdir(parents=True, exist_ok=True)
    (tenant.home / "runs").write_text("not a folder", encoding="utf-8")
    result = tenant.cli("apply", str(sheet), "--yes", "--output", str(tmp_path / "r.xlsx"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "runs folder" in result.stderr
    assert tenant.sim.counters["writes"] == 0


def test_a_report_that_fails_after_the_writes_leaves_the_run_resumable(
    tenant: Tenant, tmp_path: Path
) -> None:
    tenant.sim.options.latency_ms = 300  # slow enough to take the folder away mid-run
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    folder = tmp_path / "reports"
    folder.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch",
            "apply",
            str(sheet),
            "--yes",
            "--output",
            str(folder / "r.xlsx"),
        ],
        env=tenant.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = list_runs(tenant.home)
        if runs and runs[0].sent:
            break
        time.sleep(0.05)
    shutil.rmtree(folder)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    run = list_runs(tenant.home)[0]
    assert run.state == "interrupted"
    assert f"Run {run.run_id} made its changes" in stderr
    assert f"m365batch resume {run.run_id} --output" in stderr
    tenant.sim.options.latency_ms = 0
    writes = tenant.sim.counters["writes"]
    resumed = tenant.cli("resume", run.run_id, "--output", str(tmp_path / "new.xlsx"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (tmp_path / "new.xlsx").is_file()
    assert tenant.sim.counters["writes"] == writes  # nothing sent again
