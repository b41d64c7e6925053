"""Commands that change the tenant: plan, apply, resume, abandon, runs, undo."""

from __future__ import annotations

import gc
import json
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from batch.cli.app import (
    FILE_PATH,
    AppContext,
    ask,
    cli,
    print_plan_attention,
    print_run_result,
    progress_bar,
    verify_wait_option,
)
from batch.errors import ExitCode
from batch.status import RowStatus

# -- plan, apply, resume, runs, undo ------------------------------------------------------


def _run_options(func: Any) -> Any:
    """The options every command that plans a sheet takes."""
    options = [
        click.option(
            "--sheet",
            metavar="NAME",
            help="The worksheet to read (default: the first visible one).",
        ),
        click.option(
            "--as-of",
            type=click.DateTime(formats=["%Y-%m-%d"]),
            metavar="YYYY-MM-DD",
            help="Judge effective dates against this day instead of today.",
        ),
        click.option(
            "--exact",
            is_flag=True,
            help="The sheet is each user's full set of direct licenses: unlisted ones are removed.",
        ),
        click.option(
            "--default-usage-location",
            metavar="CC",
            callback=_country,
            help="ISO country code for users who have none and get a license.",
        ),
        click.option(
            "--include-disabled", is_flag=True, help="Add licenses to disabled accounts too."
        ),
        click.option(
            "--output",
            type=FILE_PATH,
            metavar="PATH",
            help="Where to write the workbook (default: next to FILE, timestamped).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _country(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from batch.intake.validate import parse_usage_location

    code, _ = parse_usage_location(value)
    if code is None:
        raise click.BadParameter(f"'{value}' is not an ISO 3166-1 country code or country name.")
    return code


def _options(
    sheet: str | None,
    as_of: Any,
    exact: bool,
    default_usage_location: str | None,
    include_disabled: bool,
) -> Any:
    from batch.jobs import onboarding

    return onboarding.RunOptions(
        sheet=sheet,
        as_of=as_of.date() if as_of else None,
        exact=exact,
        default_usage_location=default_usage_location,
        include_disabled=include_disabled,
    )


@cli.command()
@click.argument("file", type=FILE_PATH)
@_run_options
@click.pass_obj
def plan(app: AppContext, file: Path, output: Path | None, **options: Any) -> None:
    """Show exactly what a sheet would change, and whether seats suffice; no writes.

    Writes the plan as a report workbook (Rows with Planned/NoChange/Failed..., the seat
    forecast per SKU). Exits 3 when some rows are invalid, failed or deferred.

    \b
    Example:
        m365batch plan samples/onboarding.xlsx
        m365batch plan offboarding.csv --default-usage-location GB
    """
    with app.connect() as (settings, client):
        from batch.jobs import onboarding  # loaded while the sign-in goes on

        prepared = onboarding.prepare(client, file, _options(**options))
        gc.freeze()  # what was read lives to the end: later collections skip it
    click.echo("\n".join(prepared.summary_lines()))
    print_plan_attention(prepared.plan, prepared.validation.sheet)
    report = onboarding.write_plan_report(prepared, settings.describe(), output)
    click.echo(f"Plan workbook: {report.resolve()}")
    if prepared.has_bad_rows:
        click.get_current_context().exit(int(ExitCode.ROWS_FAILED))


@cli.command()
@click.argument("file", type=FILE_PATH)
@_run_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--max-removals",
    type=click.IntRange(min=0),
    metavar="N",
    help="Allow the run to remove up to N licenses (default 100).",
)
@verify_wait_option
@click.pass_obj
def apply(
    app: AppContext,
    file: Path,
    output: Path | None,
    yes: bool,
    max_removals: int | None,
    verify_wait: float | None,
    **options: Any,
) -> None:
    """Plan a sheet, confirm, write the changes through Graph $batch, read back, report.

    Every operation is journaled before and after it is sent: if the run is interrupted,
    `m365batch resume` finishes it. Exits 0 when every row is applied or already as asked,
    3 when some rows are invalid, failed or deferred, 4 when a safety guard stopped it.

    \b
    Example:
        m365batch apply samples/onboarding.xlsx
        m365batch apply leavers.csv --yes --max-removals 400
    """
    # absolute: the journal keeps where the input and the report are, wherever `runs` is run
    file, output = file.resolve(), output.resolve() if output else None
    with app.connect() as (settings, client):
        from batch.jobs import onboarding  # loaded while the sign-in goes on

        run_options = _options(**options)
        if verify_wait is not None:
            run_options = replace(run_options, verify_wait=verify_wait)
        prepared = onboarding.prepare(client, file, run_options)
        gc.freeze()  # what was read lives to the end: later collections skip it
        click.echo("\n".join(prepared.summary_lines()))
        onboarding.check_removals(prepared.plan, max_removals)
        if not prepared.plan.ops:
            click.echo("Nothing to write.")
        elif not yes and not ask(f"Apply {len(prepared.plan.ops)} changes?"):
            raise click.Abort()
        with progress_bar(len(prepared.plan.ops)) as progress:
            result = onboarding.apply(
                client, settings, prepared, output=output, on_progress=progress
            )
    print_run_result(result)


@cli.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--output", type=FILE_PATH, metavar="PATH", help="Where to write the workbook.")
@click.option(
    "--yes",
    is_flag=True,
    help="Resume a run older than a later finished run on the tenant without asking.",
)
@verify_wait_option
@click.pass_obj
def resume(
    app: AppContext, run_id: str | None, output: Path | None, yes: bool, verify_wait: float | None
) -> None:
    """Continue an interrupted run from its journal.

    Without RUN: the latest unfinished run on this tenant, only when no later run touched
    the tenant since (otherwise the candidates are listed, exit 2). The input file must be
    unchanged. Writes whose answer was lost are settled first by reading the tenant, so
    nothing is sent twice; then what is left to write is shown. A run older than a later
    finished run on the same tenant may undo that run's work: it is resumed only when named,
    after a confirmation (--yes for scripts).

    \b
    Example:
        m365batch resume
        m365batch resume 20261128-091502-3fa2
    """
    from batch.jobs import onboarding

    def confirm(resumed: str, prepared: Any, later: list[str]) -> None:
        click.echo(f"Resuming run {resumed}; left to write:")
        click.echo("\n".join(prepared.summary_lines()))
        if later and not yes:
            question = (
                f"Run {resumed} is older than run {', '.join(later)} on this tenant: "
                "resuming it may undo that run's work. Resume it?"
            )
            if not ask(question):
                raise click.Abort()

    with app.connect() as (settings, client), progress_bar(None) as progress:
        result = onboarding.resume(
            client,
            settings,
            run_id,
            output=output.resolve() if output else None,
            on_progress=progress,
            verify_wait=verify_wait,
            confirm=confirm,
        )
    print_run_result(result)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.pass_obj
def abandon(app: AppContext, run_id: str) -> None:
    """Close an interrupted run that should not be finished.

    Its writes whose answer was lost are settled first by reading the tenant; its journal
    and what it did stay (`undo RUN` still reverts it), and it is never resumed.

    \b
    Example:
        m365batch abandon 20261128-091502-3fa2
    """
    from batch.run.history import abandon as abandon_run

    with app.connect() as (settings, client):
        unsettled = abandon_run(client, settings.home, str(settings.tenant_id), run_id)
    click.echo(
        f"Run {run_id} abandoned: it will not be resumed; `m365batch undo {run_id}` reverts it."
    )
    if unsettled:
        click.echo(
            f"Note: {unsettled} write(s) could not be settled (the tenant could not be read); "
            f"`m365batch undo {run_id}` reads them again first."
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def runs(app: AppContext, as_json: bool) -> None:
    """List past runs, newest first.

    \b
    Example:
        m365batch runs
        m365batch runs --json
    """
    from batch.run.journal import list_runs

    found = list_runs(app.settings.home)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], indent=2))
        return
    click.echo("\n".join(runs_table(found)) if found else "No runs yet.")


#: the width ``runs`` fits (a terminal's usual 100 columns)
RUNS_WIDTH = 100


def runs_table(found: Sequence[Any], width: int = RUNS_WIDTH) -> list[str]:
    """The runs as lines no wider than ``width``: one line of figures per run, then its
    report's absolute path on a line of its own (shortened in the middle only if it cannot
    fit; ``runs --json`` has every path in full)."""
    from batch.run.journal import DAMAGED

    header = ("Run", "Kind", "State", "Writes", "Sent", "Done", "Unsettled", "Input")
    rows = [
        (
            r.run_id,
            r.kind,
            r.state,
            str(sum(r.counts.values())),
            str(r.sent),
            str(r.counts.get("done", 0)),
            str(r.unsettled),
            f"undo of {r.undo_of}" if r.undo_of else Path(r.input_path or "").name,
        )
        for r in found
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    room = max(width - sum(widths) - 2 * (len(header) - 1), 12)
    inputs = [shorten(row[-1], room) for row in rows]
    rule = tuple("-" * w for w in [*widths, max(len(header[-1]), *map(len, inputs))])
    lines = [_runs_line(header, widths), _runs_line(rule, widths)]
    shortened = False
    for info, row, source in zip(found, rows, inputs, strict=True):
        lines.append(_runs_line((*row[:-1], source), widths))
        if info.state == DAMAGED:  # its "report" says why the journal cannot be read
            lines += textwrap.wrap(
                str(info.report), width, initial_indent="  ", subsequent_indent="  "
            )
        elif info.report:
            text = shorten(str(info.report), width - len("  Report: "))
            shortened = shortened or text != str(info.report)
            lines.append(f"  Report: {text}")
    if shortened:
        lines.append("(paths shortened with …: `m365batch runs --json` has them in full)")
    return lines


def _runs_line(cells: tuple[str, ...], widths: Sequence[int]) -> str:
    numeric = range(3, 7)
    return "  ".join(
        [
            *(
                c.rjust(widths[i]) if i in numeric else c.ljust(widths[i])
                for i, c in enumerate(cells[:-1])
            ),
            cells[-1],
        ]
    ).rstrip()


def shorten(text: str, room: int) -> str:
    """``text`` as is when it fits ``room`` columns, else its start and end around "…"."""
    if len(text) <= room:
        return text
    head = (room - 1) // 3
    return f"{text[:head]}…{text[len(text) - (room - 1 - head) :]}"


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--max-removals",
    type=click.IntRange(min=0),
    metavar="N",
    help="Allow the undo to remove up to N licenses (default 100).",
)
@click.option("--output", type=FILE_PATH, metavar="PATH", help="Where to write the workbook.")
@click.pass_obj
def undo(
    app: AppContext, run_id: str, yes: bool, max_removals: int | None, output: Path | None
) -> None:
    """Revert what a run changed: planned and applied like any run.

    Writes the inverse of the run as a sheet in the run's folder (licenses it added are
    removed, licenses it removed come back with their disabled plans, groups are left or
    joined again), then plans and applies that sheet. Licensed groups a migration switched
    get their old license back first, in two steps (old added, processed, new removed).

    \b
    Example:
        m365batch undo 20261128-091502-3fa2
    """
    from batch.jobs import onboarding
    from batch.jobs.undo import apply_undo, prepare_undo, undo_groups, undo_scope

    with app.connect() as (settings, client):
        scope = undo_scope(client, settings, run_id)
        if scope.groups:
            if not yes and not ask(f"Put back the licenses of the groups run {run_id} changed?"):
                raise click.Abort()
            switches = undo_groups(client, settings, run_id)
            for switch in switches:
                click.echo(f"Group '{switch.name}': {switch.status} {switch.detail}".rstrip())
            failed = any(s.status != RowStatus.APPLIED for s in switches)
            if not scope.users:
                code = ExitCode.ROWS_FAILED if failed else ExitCode.SUCCESS
                click.get_current_context().exit(int(code))
        sheet, prepared = prepare_undo(client, settings, run_id)
        click.echo(f"Undo of run {run_id}: {sheet}")
        click.echo("\n".join(prepared.summary_lines()))
        onboarding.check_removals(prepared.plan, max_removals)
        if prepared.plan.ops and not yes and not ask(f"Apply {len(prepared.plan.ops)} changes?"):
            raise click.Abort()
        with progress_bar(len(prepared.plan.ops)) as progress:
            result = apply_undo(
                client,
                settings,
                run_id,
                prepared,
                output=output.resolve() if output else None,
                on_progress=progress,
            )
    print_run_result(result)
