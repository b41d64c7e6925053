"""Commands that change the tenant: plan, apply, resume, runs, undo, migrate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from batch.cli.app import FILE_PATH, AppContext, cli, print_run_result, progress_bar, text_table
from batch.errors import ExitCode

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


def _verify_wait_option(func: Any) -> Any:
    """``--verify-wait SECONDS``: how long the read-back waits for Entra to show the writes."""
    from batch.run.reconcile import DEFAULT_VERIFY_WAIT

    return click.option(
        "--verify-wait",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        default=None,
        help=(
            "How long the read-back may re-read written users that do not show the change "
            f"yet (Entra is eventually consistent; default {DEFAULT_VERIFY_WAIT:g})."
        ),
    )(func)


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
    from batch.jobs.onboarding import RunOptions

    return RunOptions(
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
    from batch.graph.client import GraphClient
    from batch.jobs.onboarding import prepare, write_plan_report

    with app.tenant() as settings:
        prepared = prepare(GraphClient(settings), file, _options(**options))
    click.echo("\n".join(prepared.summary_lines()))
    click.echo(f"Plan workbook: {write_plan_report(prepared, settings.describe(), output)}")
    if any(prepared.plan.counts().get(s) for s in ("Invalid", "Failed", "Deferred")):
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
@_verify_wait_option
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
    from batch.graph.client import GraphClient
    from batch.jobs.onboarding import apply as apply_plan
    from batch.jobs.onboarding import check_removals, prepare

    run_options = _options(**options)
    if verify_wait is not None:
        run_options = replace(run_options, verify_wait=verify_wait)
    with app.tenant() as settings:
        client = GraphClient(settings)
        prepared = prepare(client, file, run_options)
        click.echo("\n".join(prepared.summary_lines()))
        check_removals(prepared.plan, max_removals)
        if not prepared.plan.ops:
            click.echo("Nothing to write.")
        elif not yes and not click.confirm(
            f"Apply {len(prepared.plan.ops)} changes?", default=False
        ):
            raise click.Abort()
        with progress_bar(len(prepared.plan.ops)) as progress:
            result = apply_plan(client, settings, prepared, output=output, on_progress=progress)
    print_run_result(result)


@cli.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--output", type=FILE_PATH, metavar="PATH", help="Where to write the workbook.")
@_verify_wait_option
@click.pass_obj
def resume(
    app: AppContext, run_id: str | None, output: Path | None, verify_wait: float | None
) -> None:
    """Continue an interrupted run from its journal (default: the latest unfinished run).

    The input file must be unchanged. The tenant is read again first, so nothing whose
    outcome was unknown is sent twice.

    \b
    Example:
        m365batch resume
        m365batch resume 20261128-091502-3fa2
    """
    from batch.graph.client import GraphClient
    from batch.jobs.onboarding import resume as resume_run

    with app.tenant() as settings, progress_bar(None) as progress:
        result = resume_run(
            GraphClient(settings),
            settings,
            run_id,
            output=output,
            on_progress=progress,
            verify_wait=verify_wait,
        )
    print_run_result(result)


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
    rows = [
        (
            r.run_id,
            r.kind,
            r.state,
            Path(r.input_path).name if r.input_path else "",
            sum(r.counts.values()),
            r.counts.get("done", 0),
            r.report or "",
        )
        for r in found
    ]
    click.echo(
        text_table(("Run", "Kind", "State", "Input", "Writes", "Done", "Report"), rows)
        if rows
        else "No runs yet."
    )


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
    from batch.graph.client import GraphClient
    from batch.jobs.migrate.groups import undo_group_changes
    from batch.jobs.onboarding import (
        GROUP_ASSIGN,
        RunOptions,
        changed_kinds,
        check_removals,
        prepare,
        write_undo_sheet,
    )
    from batch.jobs.onboarding import apply as apply_plan
    from batch.run.tenant import read_seats

    with app.tenant() as settings:
        client = GraphClient(settings)
        kinds = changed_kinds(settings.home, run_id)
        if GROUP_ASSIGN in kinds:
            if not yes and not click.confirm(
                f"Put back the licenses of the groups run {run_id} changed?", default=False
            ):
                raise click.Abort()
            switches = undo_group_changes(client, settings, run_id)
            for switch in switches:
                click.echo(f"Group '{switch.name}': {switch.status} {switch.detail}".rstrip())
            failed = any(s.status != "Applied" for s in switches)
            if not kinds - {GROUP_ASSIGN}:
                click.get_current_context().exit(3 if failed else 0)
        names = {s.sku_id: s.part_number for s in read_seats(client)}
        sheet = write_undo_sheet(settings.home, run_id, names)
        prepared = prepare(client, sheet, RunOptions(exact_plans=True, include_disabled=True))
        click.echo(f"Undo of run {run_id}: {sheet}")
        click.echo("\n".join(prepared.summary_lines()))
        check_removals(prepared.plan, max_removals)
        if (
            prepared.plan.ops
            and not yes
            and not click.confirm(f"Apply {len(prepared.plan.ops)} changes?", default=False)
        ):
            raise click.Abort()
        with progress_bar(len(prepared.plan.ops)) as progress:
            result = apply_plan(
                client,
                settings,
                prepared,
                kind="undo",
                output=output,
                on_progress=progress,
                meta={"undo_of": run_id},
            )
    print_run_result(result)


@cli.command()
@click.option(
    "--map",
    "map_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    metavar="MAP",
    help="CSV/XLSX with FromSku, ToSku and optional options.",
)
@click.option(
    "--users",
    "users_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    metavar="SHEET",
    help="Move only the users in this sheet (a UserPrincipalName column).",
)
@click.option(
    "--wave-size", type=click.IntRange(min=1), metavar="N", help="At most N users per wave."
)
@click.option("--no-waves", is_flag=True, help="One wave or none: stop if the seats are short.")
@click.option(
    "--wait-for-seats",
    type=click.FloatRange(min=0),
    default=0,
    metavar="SECONDS",
    help="When no user fits the free seats, wait this long for more before stopping.",
)
@click.option(
    "--groups",
    "change_groups",
    is_flag=True,
    help="Also switch licensed groups that grant a FromSku (add ToSku, then remove FromSku).",
)
@click.option(
    "--wait-for-groups",
    type=click.FloatRange(min=0),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="With --groups: how long to wait for Entra to process each step of a group.",
)
@click.option("--dry-run", is_flag=True, help="Plan and write the report; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--output", type=FILE_PATH, metavar="PATH", help="Where to write the migration workbook."
)
@click.pass_obj
def migrate(
    app: AppContext,
    map_path: Path,
    users_path: Path | None,
    wave_size: int | None,
    no_waves: bool,
    wait_for_seats: float,
    change_groups: bool,
    wait_for_groups: float,
    dry_run: bool,
    yes: bool,
    output: Path | None,
) -> None:
    """Switch users from one SKU to another by a map, in waves that fit the seats.

    Each user's FromSku is replaced by ToSku in ONE assignLicense call (never unlicensed),
    disabled plans carried over by plan name; waves are read back and verified before the
    next. Map columns: FromSku, ToSku, KeepDisabledPlans (yes/no), DisablePlans,
    DisableNewPlans (yes/no). FromSku = ToSku writes the seat reconciliation only. Exits 3
    when some users failed, were not moved for want of seats, or the map has bad rows.

    Users who get FromSku from a licensed group are only reported, unless --groups: then
    each such group (all its members in scope) is switched the way Microsoft documents it:
    ToSku added to the group with the translated disabled plans, Entra's processing waited
    for (--wait-for-groups), and FromSku removed only if no member is in error (otherwise
    the group is left on both SKUs, nobody losing service). A group whose members exceed
    ToSku's free seats is not touched. Undo reverts groups the same way.

    \b
    Example:
        m365batch migrate --map samples/migration-map.csv --dry-run
        m365batch migrate --map map.csv --wave-size 500 --yes
        m365batch migrate --map map.xlsx --users pilot.xlsx --no-waves
        m365batch migrate --map map.csv --groups --yes
        m365batch undo MIGRATION-ID      # every wave back, disabled plans included
    """
    from batch.graph.client import GraphClient
    from batch.jobs.migrate.moves import plan_migration, run_migration
    from batch.jobs.migrate.report import write_migration_report
    from batch.reports.workbook import output_path

    with app.tenant() as settings:
        client = GraphClient(settings)
        migration = plan_migration(client, map_path, users_path, change_groups=change_groups)
        click.echo("\n".join(migration.summary_lines()))
        planned = sum(1 for m in migration.moves if m.status == "Planned")
        if planned and not dry_run:
            if not yes and not click.confirm(f"Move {planned} users?", default=False):
                raise click.Abort()
            with progress_bar(None) as progress:
                run_migration(
                    client,
                    settings,
                    migration,
                    wave_size=wave_size,
                    no_waves=no_waves,
                    wait_for_seats=wait_for_seats,
                    wait_for_groups=wait_for_groups,
                    on_progress=progress,
                    on_wave=lambda w: click.echo(
                        f"Wave {w.number}: {w.users} users, run {w.run_id}", err=True
                    ),
                )
            done = [line for line in migration.summary_lines() if line.startswith(("Wave", "Note"))]
            click.echo("\n".join(done))
    target = output or output_path("migrate", input_path=map_path)
    report = write_migration_report(migration, target, tenant=settings.describe())
    if migration.wrote:
        mid = migration.migration_id
        click.echo(f"Migration {mid} (undo: m365batch undo {mid})")
    click.echo(f"Report: {report}")
    if migration.error is not None:
        raise migration.error
    if migration.exit_code:
        click.get_current_context().exit(int(migration.exit_code))


# -- the built-in simulated tenant ------------------------------------------------------------
