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
from batch.errors import ExitCode, InputError, JournalError, ReportError
from batch.files import private_dir, probe_folder
from batch.graph.client import GraphClient
from batch.graph.engine import EngineSettings, EngineStats
from batch.reports.run import ChangeLine, RowOutcome
from batch.run.journal import Journal, runs_dir
from batch.status import SETTLED_BAD

__all__ = ["Progress", "RunContext", "RunResult", "exit_code_for", "preflight", "require_rows"]


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


def preflight(
    home: Path, input_path: Path, output: Path | None, *, overwrite: bool = False
) -> None:
    """Check, before the first tenant write, that the run can record and report what it does.

    The report's path (not a device or folder, not the input, not an existing file unless
    it is the run's own report, its folder there and writable), the runs folder (the
    journal), free disk space in both. Raises :class:`ReportError` or :class:`JournalError`.
    """
    folder = (output or input_path).parent
    if output is not None:
        _check_output(output, input_path, overwrite=overwrite)
    problem = probe_folder(folder)
    if problem:
        raise ReportError(f"Cannot write the report in {folder}: {problem}.", hint=_OUTPUT_HINT)
    runs = runs_dir(home)
    try:
        private_dir(home)
        private_dir(runs)
    except OSError as exc:
        raise JournalError(f"Cannot create the runs folder {runs}: {exc.strerror}.") from exc
    problem = probe_folder(runs)
    if problem:
        raise JournalError(f"Cannot write the run's journal in the runs folder {runs}: {problem}.")


_OUTPUT_HINT = "Choose another --output path; nothing was sent to the tenant."


def _check_output(output: Path, input_path: Path, *, overwrite: bool) -> None:
    if output.exists() and not output.is_file():
        raise ReportError(
            f"The report path {output} is not a regular file (a device or a folder).",
            hint=_OUTPUT_HINT,
        )
    if output.exists() and output.resolve() == input_path.resolve():
        raise ReportError(f"The report path {output} is the input file.", hint=_OUTPUT_HINT)
    if output.exists() and not overwrite:
        raise ReportError(f"{output} already exists.", hint=_OUTPUT_HINT)
    if not output.parent.is_dir():
        raise ReportError(f"The folder {output.parent} does not exist.", hint=_OUTPUT_HINT)


def require_rows(path: Path, rows: int) -> None:
    """A sheet with no data rows (only a header) is an input error: no run is recorded."""
    if not rows:
        raise InputError(
            "has no data rows (only a header): there is nothing to apply.",
            path=path,
            hint="Add one row per user under the header.",
        )
