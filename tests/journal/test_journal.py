"""The run journal: durable operation states, pending work, locking and run listing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from batch.errors import ExitCode, JournalError
from batch.run.history import ResumeChoice, later_runs, pick_resumable
from batch.run.journal import (
    FINISHED,
    INTERRUPTED,
    Journal,
    file_sha256,
    list_runs,
    run_lock,
    tenant_lock,
)


def _journal(home: Path, run_id: str = "20261128-090000-aaaa") -> Journal:
    journal = Journal.create(
        home, kind="apply", tenant="t1", run_id=run_id, input_path=home / "hires.csv"
    )
    journal.add_ops([(f"op{i}", i + 2, {"i": i}) for i in range(5)])
    return journal


def test_pending_is_planned_minus_done(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        journal.mark_sent("op0")
        journal.mark_done("op0", {"status": 200})
        journal.mark_sent("op1")  # sent, outcome unknown
        pending = journal.pending()
    assert [op.key for op in pending] == ["op1", "op2", "op3", "op4"]
    assert pending[0].state == "sent" and pending[0].attempts == 1
    assert pending[1].state == "planned"


def test_state_survives_reopen(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        journal.mark_sent("op3")
        journal.mark_done("op3", {"status": 400, "code": "Request_BadRequest"})
    with Journal.open(tmp_path, "20261128-090000-aaaa") as journal:
        done = [op for op in journal.ops("done")]
        assert [(op.key, op.row, op.result) for op in done] == [
            ("op3", 5, {"status": 400, "code": "Request_BadRequest"})
        ]
        assert journal.counts() == {"done": 1, "planned": 4}


def test_a_batch_of_records_is_written_in_one_transaction(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        with journal.transaction():
            journal.mark_sent("op0")
            journal.mark_sent("op1")
            with Journal.open(tmp_path, "20261128-090000-aaaa") as reader:
                assert reader.counts() == {"planned": 5}  # nothing on disk until it ends
        with Journal.open(tmp_path, "20261128-090000-aaaa") as reader:
            assert reader.counts() == {"planned": 3, "sent": 2}
        with pytest.raises(JournalError), journal.transaction():
            journal.mark_done("op0", {"status": 200})
            journal.mark_sent("nope")
        with Journal.open(tmp_path, "20261128-090000-aaaa") as reader:
            assert reader.counts() == {"done": 1, "planned": 3, "sent": 1}  # what was true
        journal.mark_done("op1", {"status": 200})  # and the next record is its own again
        with Journal.open(tmp_path, "20261128-090000-aaaa") as reader:
            assert reader.counts() == {"done": 2, "planned": 3}


def test_unknown_operation_is_an_error(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal, pytest.raises(JournalError, match="nope"):
        journal.mark_sent("nope")


def test_open_missing_run_names_the_runs_command(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="m365batch runs"):
        Journal.open(tmp_path, "missing")


def test_runs_are_listed_newest_first_and_a_bare_resume_never_guesses(tmp_path: Path) -> None:
    _journal(tmp_path, "20261128-090000-aaaa").close()
    assert pick_resumable(tmp_path, "t1") == "20261128-090000-aaaa"
    assert pick_resumable(tmp_path, "t1") == "20261128-090000-aaaa"
    with _journal(tmp_path, "20261128-100000-bbbb") as journal:
        journal.finish(FINISHED, report="r.xlsx")
    runs = list_runs(tmp_path)
    assert [r.run_id for r in runs] == ["20261128-100000-bbbb", "20261128-090000-aaaa"]
    assert runs[0].as_dict()["report"] == "r.xlsx"
    # a later run touched the tenant: the old one is listed, never picked
    with pytest.raises(ResumeChoice, match="20261128-090000-aaaa") as refused:
        pick_resumable(tmp_path, "t1")
    assert refused.value.exit_code == ExitCode.USAGE
    assert later_runs(tmp_path, "20261128-090000-aaaa", "t1") == ["20261128-100000-bbbb"]
    # runs on another tenant are not candidates
    with pytest.raises(JournalError, match="No unfinished run on this tenant") as none:
        pick_resumable(tmp_path, "t2")
    assert "abandon" in str(none.value.hint)


def test_a_run_whose_process_is_gone_is_interrupted_not_running(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        with run_lock(journal.folder):
            assert list_runs(tmp_path)[0].state == "running"
            with (
                pytest.raises(JournalError, match=f"pid {os.getpid()}"),
                run_lock(journal.folder),
            ):
                pass
        assert list_runs(tmp_path)[0].state == INTERRUPTED


def test_a_damaged_journal_is_listed_and_never_makes_an_older_run_the_latest(
    tmp_path: Path,
) -> None:
    _journal(tmp_path, "20261128-090000-aaaa").close()
    damaged = tmp_path / "runs" / "20261128-100000-bbbb"
    damaged.mkdir(parents=True)
    (damaged / "journal.sqlite").write_bytes(b"not a database at all" * 100)
    runs = list_runs(tmp_path)
    assert [(r.run_id, r.state) for r in runs] == [
        ("20261128-100000-bbbb", "damaged"),
        ("20261128-090000-aaaa", INTERRUPTED),
    ]
    with pytest.raises(ResumeChoice):
        pick_resumable(tmp_path, "t1")


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_second_writer_on_same_tenant_is_refused(tmp_path: Path) -> None:
    with tenant_lock(tmp_path, "t1", "run-a"):
        with pytest.raises(JournalError, match="run run-a"), tenant_lock(tmp_path, "t1", "run-b"):
            pass
        with tenant_lock(tmp_path, "t2", "run-c"):  # another tenant is independent
            pass
    with tenant_lock(tmp_path, "t1", "run-b"):  # released
        pass


def test_sigkill_mid_write_leaves_a_consistent_journal(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from batch.run.journal import Journal
        j = Journal.create(Path({str(tmp_path)!r}), kind="apply", tenant="t", run_id="r1")
        j.add_ops([(f"op{{i}}", i, {{"i": i}}) for i in range(200)])
        for i in range(200):
            j.mark_sent(f"op{{i}}")
            if i == 120:
                os.kill(os.getpid(), signal.SIGKILL)
            j.mark_done(f"op{{i}}", {{"status": 200}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ.copy())
    assert proc.returncode == -signal.SIGKILL
    with Journal.open(tmp_path, "r1") as journal:
        assert journal.counts() == {"done": 120, "sent": 1, "planned": 79}
        assert journal.pending()[0].key == "op120"


def test_runs_started_in_the_same_second_list_newest_first(tmp_path: Path) -> None:
    # the random part of the id sorts the wrong way round; creation time decides
    Journal.create(tmp_path, kind="apply", tenant="t", run_id="20261128-090000-ffff").close()
    Journal.create(tmp_path, kind="undo", tenant="t", run_id="20261128-090000-0000").close()
    assert [r.kind for r in list_runs(tmp_path)] == ["undo", "apply"]
