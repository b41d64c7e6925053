"""Commands that read the tenant and write workbooks: skus, validate, template, true-up, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from batch.cli.app import FILE_PATH, AppContext, cli, text_table
from batch.errors import ExitCode


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
    from batch.graph.client import GraphClient
    from batch.run.tenant import read_seats

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
    click.echo(text_table(header, rows))


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
        from batch.intake.catalog import product_name
    except ImportError:
        return ""
    return str(product_name(seats.sku_id) or "")


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
    from batch.graph.client import GraphClient
    from batch.intake.catalog import Catalog
    from batch.intake.sources import read_sheet
    from batch.intake.validate import summary_lines, validate_sheet
    from batch.reports.validation import write_validation_workbook
    from batch.reports.workbook import output_path

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
    from batch.graph.client import GraphClient
    from batch.intake.catalog import Catalog
    from batch.reports.template import write_template
    from batch.reports.workbook import output_path

    with app.tenant() as settings:
        skus = list(GraphClient(settings).get_all("/subscribedSkus"))
    target = output or output_path("template", suffix=".csv" if as_csv else ".xlsx")
    written = write_template(target, Catalog.load(skus), as_csv=as_csv)
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
    from batch.graph.client import GraphClient
    from batch.jobs.trueup.report import run_trueup, summary_lines

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
    from batch.graph.client import GraphClient
    from batch.jobs.export import read_snapshot, write_snapshot
    from batch.reports.workbook import output_path

    with app.tenant() as settings:
        snapshot = read_snapshot(GraphClient(settings))
    target = output or output_path("export", suffix=".csv" if as_csv else ".xlsx")
    path = write_snapshot(snapshot, target, as_csv=as_csv)
    click.echo(
        f"Users: {len(snapshot.users)}, licensed: {snapshot.licensed_users}, "
        f"licensed groups: {len(snapshot.groups)}"
    )
    click.echo(f"Export: {path}")
