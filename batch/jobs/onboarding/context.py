"""Onboarding, the run's frame: what a run is given (:class:`RunContext`) and gives back.

One :class:`RunContext` travels from ``apply``/``resume`` through execution, read-back and
report, instead of the same ten keyword arguments handed down at every step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batch.config import Settings
from batch.errors import ExitCode
from batch.graph.client import GraphClient
from batch.graph.engine import EngineSettings, EngineStats
from batch.reports.run import ChangeLine, RowOutcome
from batch.run.journal import Journal
from batch.status import SETTLED_BAD

__all__ = ["Progress", "RunContext", "RunResult", "exit_code_for"]

#: the engine's progress callback (the command line draws a bar with it)
Progress = Callable[[EngineStats], None]


@dataclass
class RunContext:
    """Everything one run works with: the tenant, its journal and how to report."""

    client: GraphClient
    settings: Settings
    journal: Journal
    kind: str = "apply"
    #: where to write the report (default: next to the input, timestamped)
    output: Path | None = None
    #: replace an existing report at ``output`` (a resumed run's own report)
    overwrite: bool = False
    resumed: bool = False
    engine: EngineSettings | None = None
    on_progress: Progress | None = None


@dataclass
class RunResult:
    """What a finished (or stopped) run reports back to the command line."""

    run_id: str
    report: Path
    counts: Counter[str]
    exit_code: ExitCode
    notes: list[str] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    #: each row's final line and the writes sent, for callers that build their own report
    outcomes: dict[int, RowOutcome] = field(default_factory=dict)
    changes: list[ChangeLine] = field(default_factory=list)


def exit_code_for(counts: Mapping[str, int]) -> ExitCode:
    """3 when some rows ended invalid, failed or deferred; else 0."""
    return ExitCode.ROWS_FAILED if any(counts.get(s) for s in SETTLED_BAD) else ExitCode.SUCCESS
