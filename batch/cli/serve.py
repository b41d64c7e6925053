"""``serve``: the web app for HR submitters and IT approvers, over the same library."""

from __future__ import annotations

import secrets
import socket

import click

from batch.cli.app import AppContext, cli
from batch.errors import ConfigError


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
    import uvicorn

    from batch.web import create_app

    if profile:
        app.profile = profile
    simulated = not app.settings.has_credentials
    with app.tenant() as settings:
        token = secrets.token_urlsafe(24) if simulated else None
        web = create_app(settings, admission=token)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                hint="Pick another --port (0: any free one), or stop what uses it.",
            ) from exc
        sock.listen(128)  # before the address is printed: a browser may connect at once
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/" + (f"start?token={token}" if token else "")
        click.echo(f"Open {url}")
        click.echo("Stop with Ctrl-C.", err=True)
        config = uvicorn.Config(web, log_level="warning", access_log=False, lifespan="on")
        uvicorn.Server(config).run(sockets=[sock])
