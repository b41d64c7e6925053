"""Child processes that take Ctrl-C the way a person's terminal delivers it.

A child inherits its parent's signal mask and ignored signals. A test worker may have
SIGINT blocked or ignored by whatever ran in it before, and a child spawned there would
then never see the Ctrl-C the test sends: the test would measure the worker, not the
product. The child below unblocks SIGINT and gives it Python's usual handler first, as a
shell does for a command it starts, then runs ``python -m batch``.
"""

from __future__ import annotations

import sys

_PRELUDE = (
    "import runpy, signal, sys; "
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_module('batch', run_name='__main__', alter_sys=True)"
)


def m365batch_argv(*args: str) -> list[str]:
    """The argv of ``m365batch ARGS`` in a child that Ctrl-C interrupts."""
    return [sys.executable, "-c", _PRELUDE, "m365batch", *args]
