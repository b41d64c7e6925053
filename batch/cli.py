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
    numeric = [all(str(r[i]).lstrip("-").isdigit() for r in rows) and rows for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    return "\n".join([line(cells[0]), line(tuple("-" * w for w in widths)), *map(line, cells[1:])])


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--sheet", metavar="NAME", help="The worksheet to read (default: the first visible one).")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Judge effective dates against this day instead of today.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), metavar="PATH",
              help="Where to write the workbook (default: next to FILE, timestamped).")
@click.pass_obj
def validate(app: AppContext, file: Path, sheet: str | None, as_of: Any, output: Path | None) -> None:
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
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), metavar="PATH",
              help="Where to write it (default: the current directory, timestamped).")
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
