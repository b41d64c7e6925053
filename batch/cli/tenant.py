"""Commands that read the tenant and write workbooks: skus, validate, template, true-up, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from batch.cli.app import FILE_PATH, AppContext, cli, print_attention, row_user, text_table
from batch.errors import ExitCode
from batch.status import RowStatus


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
    from batch.jobs.checks import read_skus

    with app.connect() as (_, client):
        lines = read_skus(client)
    if as_json:
        click.echo(json.dumps([_sku_dict(line) for line in lines], indent=2))
        return
    header = ("SKU", "Product", "Purchased", "Warning", "Suspended", "Assigned", "Free")
    rows = [_sku_row(line.seats, line.product) for line in lines]
    click.echo(text_table(header, rows))


def _sku_row(s: Any, product: str) -> tuple[object, ...]:
    return (s.part_number, product, s.enabled, s.warning, s.suspended, s.consumed, s.free)


def _sku_dict(line: Any) -> dict[str, Any]:
    seats = line.seats
    return {
        "skuId": seats.sku_id,
        "skuPartNumber": seats.part_number,
        "productName": line.product,
        "appliesTo": seats.applies_to,
        "purchased": seats.enabled,
        "warning": seats.warning,
        "suspended": seats.suspended,
        "lockedOut": seats.locked_out,
        "assigned": seats.consumed,
        "free": seats.free,
    }


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
    from batch.intake.sources import read_sheet
    from batch.jobs.checks import check_sheet

    _ = app.settings  # configures logging before anything can fail
    data = read_sheet(file, sheet=sheet)
    with app.connect() as (_, client):
        check = check_sheet(client, data, as_of=as_of.date() if as_of else None, output=output)
    click.echo("\n".join(check.summary_lines))
    result = check.result
    print_attention(
        [
            (r.row, row_user(r, result.sheet), str(r.status), result.detail(r.row))
            for r in result.rows
            if r.status is not RowStatus.READY
        ]
    )
    click.echo(f"Workbook: {check.workbook.resolve()}")
    counts = check.result.counts()
    if counts.get(RowStatus.INVALID) or counts.get(RowStatus.DEFERRED):
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
    from batch.jobs.checks import write_tenant_template

    with app.connect() as (_, client):
        written = write_tenant_template(client, output, as_csv=as_csv)
    click.echo(f"Template: {written}")


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
    from batch.jobs.trueup.report import run_trueup, summary_lines

    with app.connect() as (settings, client):
        trueup, path = run_trueup(
            client,
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


# -- export -------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--output",
    type=FILE_PATH,
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
    from batch.jobs.export import read_snapshot, write_snapshot
    from batch.reports.workbook import output_path

    with app.connect() as (_, client):
        snapshot = read_snapshot(client)
    target = output or output_path("export", suffix=".csv" if as_csv else ".xlsx")
    path = write_snapshot(snapshot, target, as_csv=as_csv)
    click.echo(
        f"Users: {len(snapshot.users)}, licensed: {snapshot.licensed_users}, "
        f"licensed groups: {len(snapshot.groups)}"
    )
    click.echo(f"Export: {path}")
