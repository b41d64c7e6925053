"""The command that moves users between SKUs by a map: migrate."""

from __future__ import annotations

from pathlib import Path

import click

from batch.cli.app import FILE_PATH, AppContext, cli, progress_bar
from batch.status import RowStatus


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
    from batch.jobs.migrate.moves import plan_migration
    from batch.jobs.migrate.report import write_migration_report
    from batch.jobs.migrate.run import record_report, run_migration
    from batch.reports.workbook import output_path

    with app.connect() as (settings, client):
        migration = plan_migration(client, map_path, users_path, change_groups=change_groups)
        if dry_run:
            from batch.jobs.migrate.run import predict_migration

            predict_migration(migration, no_waves=no_waves)
        click.echo("\n".join(migration.summary_lines()))
        planned = sum(1 for m in migration.moves if m.status == RowStatus.PLANNED)
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
    report = write_migration_report(migration, target.resolve(), tenant=settings.describe())
    record_report(settings, migration, report)
    if migration.wrote:
        mid = migration.migration_id
        click.echo(f"Migration {mid} (undo: m365batch undo {mid})")
    click.echo(f"Report: {report}")
    if migration.error is not None:
        raise migration.error
    if migration.exit_code:
        click.get_current_context().exit(int(migration.exit_code))
