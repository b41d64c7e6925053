"""Files: write a file atomically, so a reader never sees half of it.

The data goes to a temporary file in the target's folder (same file system, so the final
move is a rename), is flushed and fsynced, then moved into place; the folder is fsynced
too. A crash at any moment leaves either the old file (or none) or the complete new one,
plus at worst a hidden ``.name-xxxx.tmp`` file.

Without ``overwrite`` the move is ``os.link``, which fails when the name was taken
meanwhile: an existing file is never replaced unless asked (``FileExistsError``).

:class:`AtomicFile` gives the temporary path to writers that want a file name (XlsxWriter);
:func:`atomic_write` writes bytes, text or whatever a callback writes to an open handle.
Errors are the operating system's (``OSError``); callers say what they mean to the user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "AtomicFile",
    "atomic_write",
    "fsync_dir",
    "private_dir",
    "private_file",
    "probe_folder",
]

#: the tool's home (runs, journals, logs, the simulator's state) is the owner's alone
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600

#: free space a folder must have for a run's journal or report
MIN_FREE_BYTES = 20 * 2**20


class AtomicFile:
    """A file being written under a temporary name beside ``path``, then moved into place.

    Usage::

        with AtomicFile(path) as target:
            write_somehow(target.temp)
        # moved into place here; on an exception the temporary file is removed instead

    or, when writing spans several calls (a workbook being built), call :meth:`commit` or
    :meth:`discard` yourself.

    :param mode: create the temporary file at once with these permissions (``0o600`` for
        personal data); ``None``: the writer creates it, with the user's umask, unless the
        folder is private (the owner's alone, as the tool's home): then ``0o600``.
    :raises FileExistsError: ``path`` exists and not ``overwrite``.
    """

    def __init__(self, path: Path | str, *, overwrite: bool = False, mode: int | None = None):
        self.path = Path(path)
        self.overwrite = overwrite
        if not overwrite and self.path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(self.path))
        self.temp = (
            self.path.parent / f".{self.path.stem}-{secrets.token_hex(6)}{self.path.suffix}.tmp"
        )
        if mode is None and _is_private(self.path.parent):
            mode = PRIVATE_FILE
        if mode is not None:
            os.close(os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))

    def commit(self, *, before_move: Callable[[], None] | None = None) -> Path:
        """fsync the temporary file and move it into place; return the final path.

        :param before_move: called after the fsync, before the move (a crash point).
        :raises FileExistsError: without ``overwrite``, when the name was taken meanwhile.
        On any failure the temporary file is removed.
        """
        try:
            with self.temp.open("rb+") as handle:
                os.fsync(handle.fileno())
            if before_move is not None:
                before_move()
            if self.overwrite:
                os.replace(self.temp, self.path)
            else:
                os.link(self.temp, self.path)  # fails if the name was taken: no overwrite
                self.temp.unlink()
        except BaseException:
            self.discard()
            raise
        fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (after a failure)."""
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_write(
    path: Path | str,
    data: bytes | str | Callable[[IO[Any]], object],
    *,
    overwrite: bool = False,
    mode: int | None = 0o600,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> Path:
    """Write ``data`` to ``path`` atomically; return the path.

    ``data`` is bytes (written as they are), text (encoded with ``encoding``), or a callable
    that writes to the open text handle (``csv.writer(handle)``, ``json.dump(..., handle)``).
    The file is private (``0o600``) unless ``mode`` says otherwise (``None``: the umask).
    """
    path = Path(path)
    with AtomicFile(path, overwrite=overwrite, mode=mode) as target:
        if isinstance(data, bytes):
            target.temp.write_bytes(data)
        else:
            with target.temp.open("w", encoding=encoding, newline=newline) as handle:
                if isinstance(data, str):
                    handle.write(data)
                else:
                    data(handle)
    return path


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` owner-only (0700); its missing parents as usual.

    An existing folder is left as it is: its mode is never changed afterwards.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and owner-only (0600) if it does not exist, for a library that
    then opens it (SQLite, a lock, a log): created private, never widened afterwards."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    return path


def _is_private(folder: Path) -> bool:
    try:
        return folder.stat().st_mode & 0o077 == 0
    except OSError:
        return False


def probe_folder(folder: Path, *, min_free: int = MIN_FREE_BYTES) -> str | None:
    """Why files cannot be written in ``folder`` (missing, not writable, full), or None.

    Writes and removes a small probe file: permissions alone do not tell (read-only
    mounts, ACLs).
    """
    if not folder.is_dir():
        return "the folder does not exist"
    probe = folder / f".m365batch-probe-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            probe.unlink()
    except OSError as exc:
        return f"the folder is not writable ({exc.strerror})"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < min_free:
        return f"only {free // 2**20} MB free (at least {min_free // 2**20} MB needed)"
    return None


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
