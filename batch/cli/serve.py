"""``serve``: the web app for HR submitters and IT approvers, over the same library."""

from __future__ import annotations

import secrets

import click

from batch.cli.app import AppContext, cli


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8365, show_default=True, help="0: any free."
)
@click.option("--tenant", "profile", metavar="NAME", help="A tenant profile from m365batch.toml.")
@click.pass_obj
def serve(app: AppContext, host: str, port: int, profile: str | None) -> None:
    """Serve the web app: HR uploads and submits sheets, IT approves and runs them.

    Prints the address to open. On the simulated tenant that address carries a one-time
    token, so other local users cannot sign in. Stop with Ctrl-C.

    \b
    Example:
        m365batch serve
        m365batch serve --port 9000 --tenant contoso
    """
    from batch import web

    if profile:
        app.profile = profile
    simulated = not app.settings.has_credentials
    with app.tenant() as settings:
        token = secrets.token_urlsafe(24) if simulated else None
        site = web.create_app(settings, admission=token)
        sock, address = web.listen(host, port)
        click.echo(f"Open {address}" + (f"start?token={token}" if token else ""))
        click.echo("Stop with Ctrl-C.", err=True)
        web.run(site, sock)
