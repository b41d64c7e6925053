"""The home (runs, journals, logs, the simulator's database and keys) is the owner's alone.

Every folder is created 0700 and every file 0600, whatever the umask: another local user
must not read the simulated app's secret, a journal or a report kept there.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from batch.run.journal import list_runs

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _cli(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # no AZURE_* variables: the built-in simulated tenant, its state inside the home
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "M365BATCH_"))}
    env["M365BATCH_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_every_file_in_a_fresh_home_is_owner_only(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    old_mask = os.umask(0o022)  # a usual umask: created private anyway, not by luck
    try:
        applied = _cli(
            home, work, "apply", str(SAMPLES / "onboarding.xlsx"), "--yes", "--output", "r.xlsx"
        )
        assert applied.returncode in (0, 3), applied.stdout + applied.stderr
        run_id = list_runs(home)[0].run_id
        # a report kept in the home (asked for there; by default it goes beside the run's)
        kept = home / "runs" / run_id / "undo.xlsx"
        undone = _cli(
            home, work, "undo", run_id, "--yes", "--max-removals", "1000", "--output", str(kept)
        )
        assert undone.returncode in (0, 3), undone.stdout + undone.stderr
        trueup = _cli(home, work, "true-up", "--output", "t.xlsx")
        assert trueup.returncode == 0, trueup.stdout + trueup.stderr
        assert _cli(home, work, "runs").returncode == 0
    finally:
        os.umask(old_mask)
    modes = {
        str(path.relative_to(home)): stat.S_IMODE(path.stat().st_mode)
        for path in [home, *home.rglob("*")]
    }
    print("\n".join(f"{oct(mode)} {name}" for name, mode in sorted(modes.items())))
    kinds = {name.split(os.sep)[0] for name in modes}
    assert {"runs", "logs", "locks", "simulator"} <= kinds
    assert any(name.endswith("tenant.db") for name in modes)
    assert any(name.endswith("journal.sqlite") for name in modes)
    assert any(name.endswith("undo.xlsx") for name in modes)  # the undo's report, in its run
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (home / name).is_dir() else 0o600)
    }
    assert not wrong, wrong
