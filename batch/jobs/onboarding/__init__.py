"""Onboarding: the pipeline end to end for ``plan``, ``apply``, ``resume`` and ``undo``.

    read -> validate -> read the tenant -> plan -> (journal -> execute) -> read back -> report

``prepare`` does everything up to the plan and writes nothing (:mod:`.prepare`). ``apply``
executes a prepared plan under a journal and the tenant lock, reads the tenant back and
writes the report (:mod:`.apply`, :mod:`.execute`, :mod:`.outcomes`, :mod:`.report`).
``resume`` re-reads the same input (refused if it changed), plans again from the tenant's
current state, and sends only what is still needed (:mod:`.resume`). ``undo`` writes the
inverse of a run as an ordinary sheet (:mod:`.undo`) and applies it like any run.

The removal guard (:mod:`.options`): a run that would remove more than
``DEFAULT_MAX_REMOVALS`` licenses (or the ``--max-removals`` given) is refused before
anything is written.
"""

from batch.jobs.onboarding.apply import apply
from batch.jobs.onboarding.context import Progress, RunResult
from batch.jobs.onboarding.options import DEFAULT_MAX_REMOVALS, RunOptions, check_removals
from batch.jobs.onboarding.prepare import Prepared, prepare
from batch.jobs.onboarding.report import write_plan_report
from batch.jobs.onboarding.resume import resume

__all__ = [
    "DEFAULT_MAX_REMOVALS",
    "Prepared",
    "Progress",
    "RunOptions",
    "RunResult",
    "apply",
    "check_removals",
    "prepare",
    "resume",
    "write_plan_report",
]
