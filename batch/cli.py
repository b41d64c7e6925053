"""The ``m365batch`` command line: parse, call the library, print. Nothing else.

This is the only module that imports click. Errors are mapped to a message and an exit code
once, in :class:`BatchGroup`; commands stay short.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
