"""Where reports go and how `runs` shows them: next to the person's files, absolute, 100 wide.

An undo's and a resume's report go next to the original run's report (or its input), never
in the data folder; `--output` wins; `runs` fits a 100-column terminal with long paths and
`runs --json` keeps every path in full.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from batch.run.journal import list_runs
from tests.run.runkit import Tenant, onboarding_rows, write_csv

HEADERS, ROWS = onboarding_rows()


def _cli(
    tenant: Tenant, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``m365batch`` run from ``cwd`` (relative paths are the person's own)."""
    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        env={**tenant.env, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _report(done: subprocess.CompletedProcess[str]) -> Path:
    """The report the console names: an absolute path that exists."""
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("Report: "))
    path = Path(line.removeprefix("Report: "))
    assert path.is_absolute() and path.is_file(), line
    return path


def _run_id(done: subprocess.CompletedProcess[str]) -> str:
    return next(x.split()[1].rstrip(":") for x in done.stdout.splitlines() if x.startswith("Run "))


def test_undo_and_resume_reports_go_next_to_the_run_and_runs_lists_them(
    tenant: Tenant, tmp_path: Path
) -> None:
    # an HR share with long folder names: the paths are wider than a terminal
    share = tmp_path / ("Human Resources - Shared Documents - Onboarding and Leavers " * 2)
    work = share / "2026" / "December starters (approved by the IT service desk)"
    work.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_csv(work / "hires.csv", HEADERS, ROWS)

    applied = _cli(tenant, work, "apply", "hires.csv", "--yes")  # relative, from its folder
    report = _report(applied)
    assert report.parent == work.resolve() and report.name.startswith("hires-apply-")

    # the undo, started from another folder: its report beside the run's, not in the data folder
    undone = _cli(tenant, elsewhere, "undo", _run_id(applied), "--yes")
    undo_report = _report(undone)
    assert undo_report.parent == work.resolve() and undo_report.name.startswith("hires-undo-")
    assert not list(tenant.home.rglob("*.xlsx")) and not list(elsewhere.iterdir())

    # --output wins; the report of a run made with --output is where the undo's goes
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    again = _cli(tenant, work, "apply", "hires.csv", "--yes", "--output", str(chosen / "a.xlsx"))
    assert _report(again) == (chosen / "a.xlsx").resolve()
    mine = _cli(tenant, elsewhere, "undo", _run_id(again), "--yes", "--output", "mine.xlsx")
    assert _report(mine) == (elsewhere / "mine.xlsx").resolve()

    # an undo killed halfway is resumed: its report still lands beside the undone run's
    third = _cli(tenant, work, "apply", "hires.csv", "--yes", "--output", str(chosen / "b.xlsx"))
    killed = _cli(
        tenant,
        elsewhere,
        "undo",
        _run_id(third),
        "--yes",
        env={"M365BATCH_CRASH_AT": "journal.sent:5"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    interrupted = list_runs(tenant.home)[0]
    assert (interrupted.kind, interrupted.state) == ("undo", "interrupted")
    resumed = _cli(tenant, elsewhere, "resume", interrupted.run_id, "--yes")
    assert _report(resumed).parent == chosen.resolve()
    assert list(elsewhere.iterdir()) == [elsewhere / "mine.xlsx"]

    listed = _cli(tenant, elsewhere, "runs")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, listed.stdout
    found = list_runs(tenant.home)
    assert len(found) == 6
    for info in found:
        # every run's report on a line of its own: its file name whole, its folder shortened
        assert info.report and Path(info.report).is_absolute() and Path(info.report).is_file()
        assert any(
            line.startswith("  Report: /") and line.endswith(Path(info.report).name)
            for line in lines
        ), (info.report, listed.stdout)
    assert "`m365batch runs --json` has them in full" in listed.stdout
    # an undo says which run it undid, not the name of the sheet it wrote for itself
    undo_line = next(line for line in lines if line.startswith(_run_id(undone)))
    assert undo_line.endswith(f"undo of {_run_id(applied)}"), listed.stdout

    as_json = json.loads(_cli(tenant, elsewhere, "runs", "--json").stdout)
    assert {r["run_id"]: r["report"] for r in as_json} == {i.run_id: i.report for i in found}
    assert str(undo_report) in {r["report"] for r in as_json}
    assert str(report) in {r["report"] for r in as_json}
    assert {r["undo_of"] for r in as_json if r["kind"] == "undo"} == {
        _run_id(applied),
        _run_id(again),
        _run_id(third),
    }
