"""batch.files: the one atomic-write helper every writer of the product uses."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest

from batch.files import AtomicFile, atomic_write


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"\x00bytes", b"\x00bytes"), ("text é", "text é".encode())],
)
def test_atomic_write_writes_bytes_and_text(
    tmp_path: Path, data: bytes | str, expected: bytes
) -> None:
    target = tmp_path / "out.bin"
    assert atomic_write(target, data) == target
    assert target.read_bytes() == expected
    assert _leftovers(tmp_path) == []


def test_atomic_write_takes_a_writer_callback(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    atomic_write(target, lambda h: csv.writer(h).writerow(["a", "b"]), newline="")
    assert target.read_bytes() == b"a,b\r\n"


def test_files_are_private_by_default_and_mode_is_kept(tmp_path: Path) -> None:
    atomic_write(tmp_path / "private", b"x")
    atomic_write(tmp_path / "public", b"x", mode=0o644)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644 & ~_umask()


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current


def test_an_existing_file_is_never_replaced_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(FileExistsError):
        atomic_write(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    atomic_write(target, "new", overwrite=True)
    assert target.read_text(encoding="utf-8") == "new"
    assert _leftovers(tmp_path) == []


def test_a_name_taken_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(FileExistsError), AtomicFile(target) as file:
        file.temp.write_text("mine", encoding="utf-8")
        target.write_text("theirs", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "theirs"
    assert _leftovers(tmp_path) == []


def test_a_failure_inside_the_block_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), AtomicFile(target, mode=0o600) as file:
        file.temp.write_text("half", encoding="utf-8")
        raise RuntimeError("boom")
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_before_move_runs_after_the_data_is_written(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    seen: list[str] = []
    file = AtomicFile(target)
    file.temp.write_text("done", encoding="utf-8")
    file.commit(before_move=lambda: seen.append(file.temp.read_text(encoding="utf-8")))
    assert seen == ["done"]
    assert target.read_text(encoding="utf-8") == "done"
