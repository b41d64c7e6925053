"""The ``m365batch`` command line: parse, call the library, print. Nothing else.

This is the only module that imports click. Errors are mapped to a message and an exit code
once, in :class:`BatchGroup`; commands stay short.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from batch import __version__
from batch.config import Settings, load_settings
from batch.connect import open_tenant
from batch.errors import BatchError, ExitCode
from batch.logs import configure_logging, redact

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    """What the top-level options set up for every command."""

    profile: str | None
    debug: bool
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(profile=self.profile)
            configure_logging(self._settings.home, debug=self.debug)
        return self._settings

    @contextmanager
    def tenant(self) -> Iterator[Settings]:
        """Open the configured tenant (or the simulated one) and say which it is."""
        with open_tenant(self.settings) as settings:
            click.echo(f"Tenant: {settings.describe()}", err=True)
            yield settings


class BatchGroup(click.Group):
    """A click group that turns known errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv[1:] or bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except BatchError as exc:
            if debug:
                traceback.print_exc()
            log.error("%s", exc)
            click.echo(f"Error: {redact(str(exc))}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            log.exception("internal error")
            if debug:
                traceback.print_exc()
            click.echo(
                f"Error: internal error: {redact(f'{type(exc).__name__}: {exc}')} "
                "(run again with --debug for the traceback)",
                err=True,
            )
            ctx.exit(int(ExitCode.ERROR))


@click.group(cls=BatchGroup)
@click.option("--tenant", "profile", metavar="NAME", help="A tenant profile from m365batch.toml.")
@click.option("--debug", is_flag=True, help="Log debug detail and show tracebacks.")
@click.version_option(__version__, prog_name="m365batch")
@click.pass_context
def cli(ctx: click.Context, profile: str | None, debug: bool) -> None:
    """Bulk Microsoft 365 license changes from spreadsheets, through Microsoft Graph.

    With no credentials configured, every command runs against the built-in simulated
    tenant. Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or
    AZURE_CLIENT_CERTIFICATE_PATH) to work on a real tenant.
    """
    ctx.obj = AppContext(profile=profile, debug=debug)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def skus(app: AppContext, as_json: bool) -> None:
    """Show the tenant's SKUs with seats purchased, assigned and free.

    \b
    Example:
        m365batch skus
        m365batch skus --json
    """
    from batch.graph import GraphClient
    from batch.tenant import read_seats

    with app.tenant() as settings:
        seats = read_seats(GraphClient(settings))
    if as_json:
        click.echo(json.dumps([_seat_dict(s) for s in seats], indent=2))
        return
    header = ("SKU", "Product", "Purchased", "Warning", "Suspended", "Assigned", "Free")
    rows = [
        (s.part_number, _product_name(s), s.enabled, s.warning, s.suspended, s.consumed, s.free)
        for s in seats
    ]
    click.echo(_table(header, rows))


def _seat_dict(seats: Any) -> dict[str, Any]:
    return {
        "skuId": seats.sku_id,
        "skuPartNumber": seats.part_number,
        "productName": _product_name(seats),
        "appliesTo": seats.applies_to,
        "purchased": seats.enabled,
        "warning": seats.warning,
        "suspended": seats.suspended,
        "lockedOut": seats.locked_out,
        "assigned": seats.consumed,
        "free": seats.free,
    }


def _product_name(seats: Any) -> str:
    try:
        from batch.catalog import product_name
    except ImportError:
        return ""
    return str(product_name(seats.sku_id) or "")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [tuple(str(c) for c in header), *[tuple(str(c) for c in r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [
        all(str(r[i]).lstrip("-").isdigit() for r in rows) and rows for i in range(len(header))
    ]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()

    return "\n".join([line(cells[0]), line(tuple("-" * w for w in widths)), *map(line, cells[1:])])


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--sheet", metavar="NAME", help="The worksheet to read (default: the first visible one)."
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Judge effective dates against this day instead of today.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help="Where to write the workbook (default: next to FILE, timestamped).",
)
@click.pass_obj
def validate(
    app: AppContext, file: Path, sheet: str | None, as_of: Any, output: Path | None
) -> None:
    """Read and check a sheet against the tenant's SKUs; no tenant writes.

    Writes a workbook with a Problems sheet and a Rows sheet (the input plus Row, Status,
    Detail). Exits 3 when any row is invalid or deferred.

    \b
    Example:
        m365batch validate hires.xlsx
        m365batch validate hires.csv --as-of 2025-04-01 --output checked.xlsx
    """
    from batch.catalog import Catalog
    from batch.graph import GraphClient
    from batch.sources import read_sheet
    from batch.validate import summary_lines, validate_sheet, write_validation_workbook
    from batch.workbook import output_path

    _ = app.settings  # configures logging before anything can fail
    data = read_sheet(file, sheet=sheet)
    with app.tenant() as settings:
        skus = list(GraphClient(settings).get_all("/subscribedSkus"))
    result = validate_sheet(data, Catalog.load(skus), as_of=as_of.date() if as_of else None)
    written = write_validation_workbook(result, output or output_path("validate", input_path=file))
    click.echo("\n".join(summary_lines(result)))
    click.echo(f"Workbook: {written}")
    counts = result.counts()
    if counts.get("Invalid") or counts.get("Deferred"):
        click.get_current_context().exit(int(ExitCode.ROWS_FAILED))


@cli.command()
@click.option("--csv", "as_csv", is_flag=True, help="Write a CSV template instead of XLSX.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help="Where to write it (default: the current directory, timestamped).",
)
@click.pass_obj
def template(app: AppContext, as_csv: bool, output: Path | None) -> None:
    """Write an input template with the tenant's SKUs and usage locations as dropdowns.

    \b
    Example:
        m365batch template
        m365batch template --csv --output hires.csv
    """
    from batch.catalog import Catalog
    from batch.graph import GraphClient
    from batch.template import write_template
    from batch.workbook import output_path

    with app.tenant() as settings:
        skus = list(GraphClient(settings).get_all("/subscribedSkus"))
    target = output or output_path("template", suffix=".csv" if as_csv else ".xlsx")
    written = write_template(target, Catalog.load(skus), as_csv=as_csv)
    click.echo(f"Template: {written}")


# -- plan, apply, resume, runs, undo ------------------------------------------------------

_FILE = click.Path(path_type=Path, dir_okay=False)


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
            type=_FILE,
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
    from batch.validate import parse_usage_location

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
    from batch.jobs import RunOptions

    return RunOptions(
        sheet=sheet,
        as_of=as_of.date() if as_of else None,
        exact=exact,
        default_usage_location=default_usage_location,
        include_disabled=include_disabled,
    )


@cli.command()
@click.argument("file", type=_FILE)
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
    from batch.graph import GraphClient
    from batch.jobs import prepare, write_plan_report

    with app.tenant() as settings:
        prepared = prepare(GraphClient(settings), file, _options(**options))
    click.echo("\n".join(prepared.summary_lines()))
    click.echo(f"Plan workbook: {write_plan_report(prepared, settings.describe(), output)}")
    if any(prepared.plan.counts().get(s) for s in ("Invalid", "Failed", "Deferred")):
        click.get_current_context().exit(int(ExitCode.ROWS_FAILED))


@cli.command()
@click.argument("file", type=_FILE)
@_run_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--max-removals",
    type=click.IntRange(min=0),
    metavar="N",
    help="Allow the run to remove up to N licenses (default 100).",
)
@click.pass_obj
def apply(
    app: AppContext,
    file: Path,
    output: Path | None,
    yes: bool,
    max_removals: int | None,
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
    from batch.graph import GraphClient
    from batch.jobs import apply as apply_plan
    from batch.jobs import check_removals, prepare

    with app.tenant() as settings:
        client = GraphClient(settings)
        prepared = prepare(client, file, _options(**options))
        click.echo("\n".join(prepared.summary_lines()))
        check_removals(prepared.plan, max_removals)
        if not prepared.plan.ops:
            click.echo("Nothing to write.")
        elif not yes and not click.confirm(
            f"Apply {len(prepared.plan.ops)} changes?", default=False
        ):
            raise click.Abort()
        with _progress(len(prepared.plan.ops)) as progress:
            result = apply_plan(client, settings, prepared, output=output, on_progress=progress)
    _finish(result)


@cli.command()
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--output", type=_FILE, metavar="PATH", help="Where to write the workbook.")
@click.pass_obj
def resume(app: AppContext, run_id: str | None, output: Path | None) -> None:
    """Continue an interrupted run from its journal (default: the latest unfinished run).

    The input file must be unchanged. The tenant is read again first, so nothing whose
    outcome was unknown is sent twice.

    \b
    Example:
        m365batch resume
        m365batch resume 20261128-091502-3fa2
    """
    from batch.graph import GraphClient
    from batch.jobs import resume as resume_run

    with app.tenant() as settings, _progress(None) as progress:
        result = resume_run(
            GraphClient(settings), settings, run_id, output=output, on_progress=progress
        )
    _finish(result)


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
    from batch.journal import list_runs

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
        _table(("Run", "Kind", "State", "Input", "Writes", "Done", "Report"), rows)
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
@click.option("--output", type=_FILE, metavar="PATH", help="Where to write the workbook.")
@click.pass_obj
def undo(
    app: AppContext, run_id: str, yes: bool, max_removals: int | None, output: Path | None
) -> None:
    """Revert what a run changed: planned and applied like any run.

    Writes the inverse of the run as a sheet in the run's folder (licenses it added are
    removed, licenses it removed come back with their disabled plans, groups are left or
    joined again), then plans and applies that sheet.

    \b
    Example:
        m365batch undo 20261128-091502-3fa2
    """
    from batch.graph import GraphClient
    from batch.jobs import RunOptions, check_removals, prepare, write_undo_sheet
    from batch.jobs import apply as apply_plan
    from batch.tenant import read_seats

    with app.tenant() as settings:
        client = GraphClient(settings)
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
        with _progress(len(prepared.plan.ops)) as progress:
            result = apply_plan(
                client,
                settings,
                prepared,
                kind="undo",
                output=output,
                on_progress=progress,
                meta={"undo_of": run_id},
            )
    _finish(result)


@contextmanager
def _progress(total: int | None) -> Iterator[Any]:
    """A progress bar on stderr fed by the engine's counters (quiet when not a terminal)."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        unit="write",
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    done = [0]

    def update(stats: Any) -> None:
        if stats.finished > done[0]:
            bar.update(stats.finished - done[0])
            done[0] = stats.finished
        bar.set_postfix(throttled=stats.throttled_items, retries=stats.retries, refresh=False)

    try:
        yield update
    finally:
        bar.close()


def _finish(result: Any) -> None:
    counts = ", ".join(f"{status} {n}" for status, n in sorted(result.counts.items()))
    click.echo(f"Run {result.run_id}: {counts}")
    for note in result.notes:
        click.echo(f"Note: {note}")
    click.echo(f"Report: {result.report}")
    if result.exit_code:
        click.get_current_context().exit(int(result.exit_code))


@cli.command("true-up")
@click.option(
    "--prices",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    metavar="FILE",
    help="CSV or XLSX of Sku, MonthlyPrice, Currency.",
)
@click.option(
    "--previous",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    metavar="WORKBOOK",
    help="An earlier true-up workbook, to list what changed.",
)
@click.option(
    "--inactive-days",
    type=click.IntRange(1, 3650),
    default=90,
    show_default=True,
    help="Licensed users without a sign-in for this long are reclaimable.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help="Where to write the workbook (default: true-up-<tenant>-<time>.xlsx here).",
)
@click.pass_obj
def true_up(
    app: AppContext,
    prices: Path | None,
    previous: Path | None,
    inactive_days: int,
    output: Path | None,
) -> None:
    """Write the monthly true-up workbook: seats, cost, waste and changes.

    \b
    Example:
        m365batch true-up
        m365batch true-up --prices prices.csv --previous true-up-contoso-20250301-0900.xlsx
    """
    from batch.graph import GraphClient
    from batch.trueup_report import run_trueup, summary_lines

    with app.tenant() as settings:
        trueup, path = run_trueup(
            GraphClient(settings),
            prices_path=prices,
            previous_path=previous,
            inactive_days=inactive_days,
            output=output,
            tenant_label=settings.tenant_id or "",
            progress=lambda message: click.echo(f"  {message}", err=True),
        )
    for note in trueup.notes:
        click.echo(f"Note: {note}", err=True)
    click.echo("\n".join(summary_lines(trueup)))
    click.echo(f"Workbook: {path}")


# -- export and migrate -------------------------------------------------------------------------


@cli.command()
@click.option(
    "--output",
    type=_FILE,
    metavar="PATH",
    help="Where to write the sheet (default: the current directory, timestamped).",
)
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (UTF-8) instead of XLSX.")
@click.pass_obj
def export(app: AppContext, output: Path | None, as_csv: bool) -> None:
    """Write the tenant's current license assignments as a sheet in the input format.

    One row per licensed user: UserPrincipalName, UsageLocation, AddLicenses (direct
    licenses), DisabledPlans (SKU:PLAN), Groups (licensed groups the user is in), plus
    DisplayName, Department, AccountEnabled, InheritedLicenses and LicenseSource. Applied with
    --exact to an unchanged tenant it changes nothing: keep one before any large change.

    \b
    Example:
        m365batch export --output before.xlsx
        m365batch export --csv
        m365batch apply before.xlsx --exact      # put the tenant back as it was
    """
    from batch.export import read_snapshot, write_snapshot
    from batch.graph import GraphClient
    from batch.workbook import output_path

    with app.tenant() as settings:
        snapshot = read_snapshot(GraphClient(settings))
    target = output or output_path("export", suffix=".csv" if as_csv else ".xlsx")
    path = write_snapshot(snapshot, target, as_csv=as_csv)
    click.echo(
        f"Users: {len(snapshot.users)}, licensed: {snapshot.licensed_users}, "
        f"licensed groups: {len(snapshot.groups)}"
    )
    click.echo(f"Export: {path}")


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
@click.option("--dry-run", is_flag=True, help="Plan and write the report; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--output", type=_FILE, metavar="PATH", help="Where to write the migration workbook.")
@click.pass_obj
def migrate(
    app: AppContext,
    map_path: Path,
    users_path: Path | None,
    wave_size: int | None,
    no_waves: bool,
    wait_for_seats: float,
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

    \b
    Example:
        m365batch migrate --map samples/migration-map.csv --dry-run
        m365batch migrate --map map.csv --wave-size 500 --yes
        m365batch migrate --map map.xlsx --users pilot.xlsx --no-waves
        m365batch undo MIGRATION-ID      # every wave back, disabled plans included
    """
    from batch.graph import GraphClient
    from batch.migrate import plan_migration, run_migration
    from batch.migrate_report import write_migration_report
    from batch.workbook import output_path

    with app.tenant() as settings:
        client = GraphClient(settings)
        migration = plan_migration(client, map_path, users_path)
        click.echo("\n".join(migration.summary_lines()))
        planned = sum(1 for m in migration.moves if m.status == "Planned")
        if planned and not dry_run:
            if not yes and not click.confirm(f"Move {planned} users?", default=False):
                raise click.Abort()
            with _progress(None) as progress:
                run_migration(
                    client,
                    settings,
                    migration,
                    wave_size=wave_size,
                    no_waves=no_waves,
                    wait_for_seats=wait_for_seats,
                    on_progress=progress,
                    on_wave=lambda w: click.echo(
                        f"Wave {w.number}: {w.users} users, run {w.run_id}", err=True
                    ),
                )
            done = [line for line in migration.summary_lines() if line.startswith(("Wave", "Note"))]
            click.echo("\n".join(done))
    target = output or output_path("migrate", input_path=map_path)
    report = write_migration_report(migration, target, tenant=settings.describe())
    if migration.waves:
        mid = migration.migration_id
        click.echo(f"Migration {mid} (undo: m365batch undo {mid})")
    click.echo(f"Report: {report}")
    if migration.error is not None:
        raise migration.error
    if migration.exit_code:
        click.get_current_context().exit(int(migration.exit_code))


# -- the built-in simulated tenant ------------------------------------------------------------

_SIM_RATES = (
    "item_429",
    "item_500",
    "item_503",
    "item_504",
    "batch_429",
    "batch_503",
    "batch_504",
    "lost_ack",
    "reset_before",
    "reset_after",
)


def _sim_options(func: Any) -> Any:
    for name in reversed(_SIM_RATES):
        func = click.option(
            f"--fault-{name.replace('_', '-')}",
            f"fault_{name}",
            type=click.FloatRange(0, 1),
            default=0.0,
            metavar="RATE",
            help=f"Share of requests that get the {name.replace('_', ' ')} fault.",
        )(func)
    return func


@cli.group()
def simulator() -> None:
    """Start, reset and inspect the built-in simulated tenant."""


@simulator.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port (default: any free one)."
)
@click.option("--seed", type=int, default=0, help="Seed of the fault generator.")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Make quota windows and Retry-After this many times shorter.",
)
@click.option(
    "--write-quota",
    type=click.IntRange(min=1),
    default=3000,
    show_default=True,
    help="Writes per window per app.",
)
@click.option(
    "--write-window",
    type=click.FloatRange(min=0.001),
    default=150.0,
    show_default=True,
    help="Seconds of the write-quota window.",
)
@click.option("--latency-ms", type=click.IntRange(min=0), default=0, help="Delay per request.")
@click.option(
    "--item-latency-ms", type=click.IntRange(min=0), default=0, help="Delay per $batch item."
)
@click.option(
    "--token-expire-after",
    type=click.FloatRange(min=0),
    default=None,
    help="Reject tokens as expired after this many seconds.",
)
@_sim_options
@click.pass_obj
def serve(app: AppContext, port: int, **values: Any) -> None:
    """Run the simulated tenant in the foreground until Ctrl-C.

    \b
    Example:
        m365batch simulator serve --port 8443 --time-scale 10 --fault-item-429 0.05
    """
    import time

    from batch.simulator import SimulatorOptions, start_simulator

    sim = start_simulator(app.settings.home / "simulator", SimulatorOptions(**values), port=port)
    click.echo(f"# {sim.tenant_name} serving at {sim.graph_url}; Ctrl-C stops it.", err=True)
    for name, value in (
        ("AZURE_TENANT_ID", sim.tenant_id),
        ("AZURE_CLIENT_ID", sim.client_id),
        ("AZURE_CLIENT_SECRET", sim.client_secret),
        ("AZURE_AUTHORITY_HOST", sim.authority_host),
        ("M365BATCH_GRAPH_URL", sim.graph_url),
        ("REQUESTS_CA_BUNDLE", sim.ca_path),
    ):
        click.echo(f"export {name}='{value}'")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
    finally:
        sim.stop()


@simulator.command()
@click.option(
    "--users",
    type=click.IntRange(min=1, max=1_000_000),
    default=None,
    help="Generate a tenant of this many users instead of the sample.",
)
@click.option("--seed", type=int, default=0, help="Seed of the generated tenant.")
@click.option(
    "--seed-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    metavar="JSON",
    help="Load this seed (from `simulator clone`) instead of the sample.",
)
@click.pass_obj
def reset(app: AppContext, users: int | None, seed: int, seed_file: Path | None) -> None:
    """Put the simulated tenant back to the sample (or a generated, or a cloned) state.

    \b
    Example:
        m365batch simulator reset
        m365batch simulator reset --users 100000
        m365batch simulator reset --seed-file clone.json
    """
    from batch.simulator import reset_tenant

    summary = reset_tenant(
        app.settings.home / "simulator", users=users, seed=seed, seed_path=seed_file
    )
    click.echo(
        f"Reset: {summary['users']} users, {summary['licensed_users']} licensed, "
        f"{len(summary['skus'])} SKUs, {summary['groups']} groups."
    )


@simulator.command()
@click.pass_obj
def show(app: AppContext) -> None:
    """Summarise the simulated tenant: users, licensed users, SKUs with seats, groups.

    \b
    Example:
        m365batch simulator show
    """
    from batch.simulator import describe_tenant

    info = describe_tenant(app.settings.home / "simulator")
    click.echo(f"{info['tenant']} ({info['domain']}, tenant {info['tenant_id']})")
    click.echo(
        f"Users: {info['users']}  licensed: {info['licensed_users']}  groups: {info['groups']}"
    )
    rows = [
        (
            s["skuPartNumber"],
            s["enabled"],
            s["consumed"],
            s["enabled"] - s["consumed"],
            s["capabilityStatus"],
            s["appliesTo"],
        )
        for s in info["skus"]
    ]
    click.echo(_table(("SKU", "Enabled", "Assigned", "Free", "Status", "Applies to"), rows))


@simulator.command()
@click.option(
    "--output",
    type=_FILE,
    metavar="PATH",
    help="Where to write the seed (default: here, timestamped).",
)
@click.option(
    "--pseudonymise", is_flag=True, help="Replace names, UPNs, departments and ids consistently."
)
@click.pass_obj
def clone(app: AppContext, output: Path | None, pseudonymise: bool) -> None:
    """Copy the configured tenant (SKUs, users, licenses, groups) into a simulator seed.

    Rehearse a migration offline: clone, load the seed into the simulated tenant, run the
    migration there and show its report before touching the real tenant.

    \b
    Example:
        m365batch simulator clone --pseudonymise --output clone.json
        m365batch simulator reset --seed-file clone.json
        env -u AZURE_CLIENT_SECRET m365batch migrate --map map.csv --yes
    """
    from batch.graph import GraphClient
    from batch.simulator.clone import clone_tenant, write_seed
    from batch.workbook import output_path

    with app.tenant() as settings:
        seed = clone_tenant(
            GraphClient(settings),
            pseudonymise=pseudonymise,
            progress=lambda message: click.echo(f"  {message}", err=True),
        )
    path = write_seed(seed, output or output_path("clone", suffix=".json"))
    click.echo(
        f"Seed: {len(seed['users'])} users, {len(seed['skus'])} SKUs, {len(seed['groups'])} groups"
    )
    click.echo(f"Written: {path}  (load it: m365batch simulator reset --seed-file {path})")
