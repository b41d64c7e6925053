"""The ``simulator`` command group: serve, reset, show and clone the built-in tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from batch.cli.app import FILE_PATH, AppContext, cli, text_table

_SIM_RATES = (
    "item_429",
    "item_500",
    "item_503",
    "item_504",
    "batch_429",
    "batch_503",
    "batch_504",
    "single_429",
    "single_500",
    "single_503",
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
@click.option(
    "--read-lag",
    type=click.FloatRange(0, 1),
    default=0.0,
    metavar="RATE",
    help="Share of reads of a just-written user that show it as before the write.",
)
@click.option(
    "--read-lag-window",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds after a write during which reads may lag it.",
)
@click.option(
    "--realistic",
    is_flag=True,
    help="Behave like the real service: lagging reads, usage-location lag, 5% of writes "
    "throttled, 30 ms latency (options given explicitly still win). "
    "M365BATCH_SIMULATOR=realistic does the same here and for the built-in simulator.",
)
@_sim_options
@click.pass_obj
def serve(app: AppContext, port: int, realistic: bool, **values: Any) -> None:
    """Run the simulated tenant in the foreground until Ctrl-C.

    With --realistic (or M365BATCH_SIMULATOR=realistic in the environment, which also
    applies to the built-in simulator that commands start when no credentials are set)
    the tenant behaves like the real service: reads lag writes 30% of the time for 2 s, a
    new usage location takes 3 s to reach licensing, 5% of writes get 429 with Retry-After,
    every request takes 30 ms. Options given explicitly override the preset.

    \b
    Example:
        m365batch simulator serve --port 8443 --time-scale 10 --fault-item-429 0.05
        m365batch simulator serve --realistic --read-lag 0.5
    """
    import time

    from batch.simulator import SimulatorOptions, start_simulator

    context = click.get_current_context()
    given = {
        name: value
        for name, value in values.items()
        if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    try:
        if realistic:
            options = SimulatorOptions.realistic(**given)
        else:
            options = SimulatorOptions.from_environment(**given)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="M365BATCH_SIMULATOR") from exc
    sim = start_simulator(app.settings.home / "simulator", options, port=port)
    click.echo(f"# {sim.tenant_name} serving at {sim.graph_url}; Ctrl-C stops it.", err=True)
    for name, value in sim.environment().items():
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
    click.echo(text_table(("SKU", "Enabled", "Assigned", "Free", "Status", "Applies to"), rows))


@simulator.command()
@click.option(
    "--output",
    type=FILE_PATH,
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
    from batch.reports.workbook import output_path
    from batch.simulator.clone import clone_tenant, write_seed

    with app.connect() as (_, client):
        seed = clone_tenant(
            client,
            pseudonymise=pseudonymise,
            progress=lambda message: click.echo(f"  {message}", err=True),
        )
    path = write_seed(seed, output or output_path("clone", suffix=".json"))
    click.echo(
        f"Seed: {len(seed['users'])} users, {len(seed['skus'])} SKUs, {len(seed['groups'])} groups"
    )
    click.echo(f"Written: {path}  (load it: m365batch simulator reset --seed-file {path})")
