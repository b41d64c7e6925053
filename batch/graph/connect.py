"""Connect: turn settings into a reachable tenant, starting the simulated one when needed.

With credentials configured, the settings are used as they are. Without any, the built-in
simulated tenant is started in a background thread and its own settings (an HTTPS Graph URL,
an authority host, an app registration and the CA that signed its certificate) are returned.
Nothing downstream knows the difference: the client talks HTTPS and msal to both.
``M365BATCH_SIMULATOR=realistic`` makes the built-in tenant behave like the real service
(``SimulatorOptions.realistic``: lagging reads, usage-location lag, throttled writes,
latency); unset or ``strict`` it is fault-free.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from batch.config import Settings
from batch.errors import ConfigError
from batch.logs import register_secret


@contextmanager
def open_tenant(settings: Settings) -> Iterator[Settings]:
    """Yield settings for a reachable tenant; the simulated one when no credentials are set."""
    if settings.has_credentials:
        register_secret(settings.client_secret)
        register_secret(settings.certificate_password)
        yield settings
        return

    from batch.simulator import SimulatorOptions, start_simulator

    try:
        options = SimulatorOptions.from_environment()
    except ValueError as exc:
        raise ConfigError(str(exc), hint="Unset it or set it to 'realistic'.") from exc
    simulator = start_simulator(settings.home / "simulator", options)
    try:
        register_secret(simulator.client_secret)
        yield replace(
            settings,
            tenant_id=simulator.tenant_id,
            client_id=simulator.client_id,
            # a device-code sign-in needs no secret: the admin confirms a code instead
            client_secret=None if settings.device_code else simulator.client_secret,
            certificate_path=None,
            certificate_password=None,
            authority_host=simulator.authority_host,
            graph_url=simulator.graph_url,
            ca_bundle=str(simulator.ca_path),
            label=(
                f"the built-in SIMULATED tenant '{simulator.tenant_name}' at "
                f"{simulator.graph_url} (no credentials configured)"
            ),
        )
    finally:
        simulator.stop()
