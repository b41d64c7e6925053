"""The command line's frame: the ``cli`` group, error mapping, and helpers commands share.

Errors are mapped to a message and an exit code once, in :class:`BatchGroup`; commands
stay short: parse, call the library, print.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from batch import __version__
from batch.config import DEFAULT_VERIFY_WAIT, GRAPH_CLI_CLIENT_ID, Settings, load_settings
from batch.errors import BatchError, ExitCode
from batch.graph.connect import open_tenant
from batch.intake.catalog import name_ids
from batch.logs import configure_logging, redact
from batch.status import RowStatus

if TYPE_CHECKING:
    from batch.graph.client import GraphClient

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    """What the top-level options set up for every command."""

    profile: str | None
    debug: bool
    device_code: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            settings = load_settings(profile=self.profile)
            if self.device_code:
                settings = replace(
                    settings,
                    device_code=True,
                    client_id=settings.client_id or GRAPH_CLI_CLIENT_ID,
                    client_secret=None,
                    certificate_path=None,
                    prompt=lambda text: click.echo(text, err=True),
                )
            self._settings = settings
            configure_logging(self._settings.home, debug=self.debug)
        return self._settings

    @contextmanager
    def tenant(self) -> Iterator[Settings]:
        """Open the configured tenant (or the simulated one) and say which it is."""
        with open_tenant(self.settings) as settings:
            click.echo(f"Tenant: {settings.describe()}", err=True)
            yield settings

    @contextmanager
    def connect(self) -> Iterator[tuple[Settings, GraphClient]]:
        """Open the tenant, as :meth:`tenant`, with a Graph client for it."""
        from batch.graph.client import GraphClient  # requests and msal: only when needed

        with self.tenant() as settings:
            client = GraphClient(settings)
            client.sign_in_ahead()  # while the command loads its job and reads its input
            try:
                yield settings, client
            finally:
                client.close()


class _ClosedPipeSafe:
    """Standard output that a closed pipe (``| head -1``) cannot fail: the rest is dropped.

    The work and its exit code do not depend on whether anyone still reads the output.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._closed = False

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self._closed = True
        try:  # the interpreter flushes stdout at exit: point it at nothing
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class CannotAsk(BatchError):
    """A confirmation was needed and nobody can answer it (no terminal): a usage error."""

    exit_code = ExitCode.USAGE


def ask(question: str) -> bool:
    """Ask a yes/no question; one that cannot be asked (no terminal) says to add ``--yes``."""
    try:
        return click.confirm(question, default=False)
    except click.Abort:
        if sys.stdin.isatty():
            raise
        click.echo(err=True)
        raise CannotAsk(
            "Cannot ask for confirmation: standard input is not a terminal.",
            hint="Add --yes to go ahead without asking.",
        ) from None


class BatchGroup(click.Group):
    """A click group that turns known errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv[1:] or bool(ctx.params.get("debug"))
        if not isinstance(sys.stdout, _ClosedPipeSafe):
            sys.stdout = _ClosedPipeSafe(sys.stdout)
        try:
            return super().invoke(ctx)
        except BatchError as exc:
            if debug:
                traceback.print_exc()
            log.error("%s", exc)
            click.echo(f"Error: {redact(str(exc))}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt as exc:
            run_id = getattr(exc, "run_id", None)
            if run_id:
                click.echo(
                    f"\nInterrupted: run {run_id} stopped; its journal is intact. "
                    f"Continue it with `m365batch resume {run_id}`.",
                    err=True,
                )
            else:
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
@click.option(
    "--device-code",
    is_flag=True,
    help="Sign in as an admin with a device code instead of an app secret or certificate.",
)
@click.version_option(__version__, prog_name="m365batch")
@click.pass_context
def cli(ctx: click.Context, profile: str | None, debug: bool, device_code: bool) -> None:
    """Bulk Microsoft 365 license changes from spreadsheets, through Microsoft Graph.

    With no credentials configured, every command runs against the built-in simulated
    tenant. Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or
    AZURE_CLIENT_CERTIFICATE_PATH) to work on a real tenant, or AZURE_TENANT_ID with
    --device-code to sign in as an admin.
    """
    ctx.obj = AppContext(profile=profile, debug=debug, device_code=device_code)


def text_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
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


FILE_PATH = click.Path(path_type=Path, dir_okay=False)


def verify_wait_option(func: Any) -> Any:
    """``--verify-wait SECONDS``: how long the read-back waits for Entra to show the writes."""
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


@contextmanager
def progress_bar(total: int | None) -> Iterator[Any]:
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


#: how many rows needing attention the console lists before pointing at the report
ATTENTION_LIMIT = 20

#: one row the console lists: (Excel row, user, status, reason)
AttentionRow = tuple[int, str, str, str]


def print_attention(
    rows: Sequence[AttentionRow], *, limit: int = ATTENTION_LIMIT, width: int = 100
) -> None:
    """List the rows that need a person (first ``limit``), then how many more the report has.

    The reason is wrapped so that every line fits ``width`` columns.
    """
    if not rows:
        return
    ordered = sorted(rows)
    shown = [(str(r), user or "(no user)", status, why) for r, user, status, why in ordered[:limit]]
    header = ("Row", "User", "Status", "Reason")
    widths = [max(len(line[i]) for line in [header, *shown]) for i in range(3)]
    room = max(width - 2 - sum(widths) - 6, 30)
    click.echo(f"Rows that need attention ({len(ordered)}):")

    def line(cells: tuple[str, ...], reason: str) -> str:
        first = f"{cells[0].rjust(widths[0])}  {cells[1].ljust(widths[1])}  "
        return f"  {first}{cells[2].ljust(widths[2])}  {reason}".rstrip()

    click.echo(line(header[:3], header[3]))
    for cells in shown:
        parts = textwrap.wrap(cells[3], room, break_on_hyphens=False) or [""]
        click.echo(line(cells[:3], parts[0]))
        for part in parts[1:]:
            click.echo(line(("", "", ""), part))
    if len(ordered) > limit:
        click.echo(f"  ... and {len(ordered) - limit} more in the report")


def row_user(request: Any, sheet: Any = None) -> str:
    """The row's user; for a user cell validation refused, the cell as written."""
    if request.user or sheet is None:
        return str(request.user)
    for field in ("upn", "object_id"):
        index = sheet.fields.get(field)
        if index is not None and index < len(request.values) and request.values[index].strip():
            return repr(request.values[index].strip())
    return ""


def print_plan_attention(plan: Any, sheet: Any = None) -> None:
    """The plan's rows that will not be written as asked (not Planned, not NoChange)."""
    fine = (RowStatus.PLANNED, RowStatus.NO_CHANGE)
    print_attention(
        [
            (row.row, row_user(row.request, sheet), str(row.status), row.detail or row.error_code)
            for row in plan.rows
            if row.status not in fine
        ]
    )


def print_run_result(result: Any) -> None:
    counts = ", ".join(f"{status} {n}" for status, n in sorted(result.counts.items()))
    click.echo(f"Run {result.run_id}: {counts}")
    print_attention(
        [
            (row, outcome.user, str(outcome.status), name_ids(outcome.reason))
            for row, outcome in result.outcomes.items()
            if outcome.needs_attention
        ]
    )
    for note in result.notes:
        click.echo(f"Note: {note}")
    click.echo(f"Report: {Path(result.report).resolve()}")
    if result.exit_code:
        click.get_current_context().exit(int(result.exit_code))
