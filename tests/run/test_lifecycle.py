"""Run lifecycle: interrupted vs running, bare resume rules, abandon, Ctrl-C and --yes hints."""

from __future__ import annotations

import signal
from pathlib import Path

from batch.run.journal import list_runs
from tests.run.runkit import Tenant, onboarding_rows, write_csv

HEADERS, ROWS = onboarding_rows()


def _killed_apply(tenant: Tenant, sheet: Path, tmp_path: Path) -> str:
    killed = tenant.cli(
        "apply",
        str(sheet),
        "--yes",
        "--output",
        str(tmp_path / "killed.xlsx"),
        extra_env={"M365BATCH_CRASH_AT": "journal.sent:5"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = list_runs(tenant.home)[0]
    # its process is gone: never shown running
    assert run.state == "interrupted"
    return run.run_id


def test_a_stale_run_is_resumed_only_when_named_and_confirmed(
    tenant: Tenant, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    old = _killed_apply(tenant, sheet, tmp_path)
    later = tenant.cli("apply", str(sheet), "--yes", "--output", str(tmp_path / "later.xlsx"))
    assert later.returncode == 0, later.stderr
    writes = tenant.sim.counters["writes"]

    bare = tenant.cli("resume")
    assert bare.returncode == 2, bare.stdout + bare.stderr
    assert old in bare.stderr and list_runs(tenant.home)[0].run_id in bare.stderr
    assert "m365batch resume RUN" in bare.stderr

    named = tenant.cli("resume", old)  # no terminal to ask on: says to add --yes
    assert named.returncode == 2, named.stdout + named.stderr
    assert "left to write" in named.stdout
    assert "--yes" in named.stderr
    assert tenant.sim.counters["writes"] == writes

    closed = tenant.cli("abandon", old)
    assert closed.returncode == 0, closed.stderr
    assert {r.run_id: r.state for r in list_runs(tenant.home)}[old] == "abandoned"
    again = tenant.cli("resume", old)
    assert again.returncode == 1 and "abandoned" in again.stderr
    assert "No unfinished run" in tenant.cli("resume").stderr
    assert tenant.sim.counters["writes"] == writes
    # what the abandoned run did can still be undone
    undone = tenant.cli("undo", old, "--yes", "--output", str(tmp_path / "undo.xlsx"))
    assert undone.returncode == 0, undone.stdout + undone.stderr


def test_the_latest_interrupted_run_resumes_bare_and_shows_what_is_left(
    tenant: Tenant, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    run_id = _killed_apply(tenant, sheet, tmp_path)
    resumed = tenant.cli("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Resuming run {run_id}; left to write:" in resumed.stdout
    listed = tenant.cli("runs")
    assert "Unsettled" in listed.stdout and "finished" in listed.stdout


def test_a_confirmation_that_cannot_be_asked_says_to_add_yes(
    tenant: Tenant, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "hires.csv", HEADERS, ROWS)
    result = tenant.cli("apply", str(sheet), "--output", str(tmp_path / "r.xlsx"))
    assert result.returncode == 2
    assert "Add --yes" in result.stderr
    assert tenant.sim.counters["writes"] == 0
    assert not list_runs(tenant.home)
