"""The built-in simulated Microsoft 365 tenant: a real local HTTPS server speaking Graph.

It answers the Entra token endpoint (client secret or certificate, msal unmodified) and
the Graph v1.0 endpoints a licensing tool uses (users, subscribedSkus, groups,
assignLicense, ``$batch``) with the documented shapes, errors, throttling and group-based
licensing, plus faults on demand. State persists in SQLite under a state directory::

    from batch.simulator import start_simulator, SimulatorOptions

    with start_simulator(home / "simulator", SimulatorOptions(time_scale=10)) as sim:
        sim.graph_url, sim.authority_host, sim.tenant_id, sim.client_id, sim.client_secret
        sim.ca_path      # the CA to trust (requests verify=, msal verify=)
        sim.store        # the tenant's state, for tests
"""

from __future__ import annotations

from batch.simulator.manage import describe_tenant, reset_tenant
from batch.simulator.options import SimulatorOptions
from batch.simulator.server import RunningSimulator, start_simulator
from batch.simulator.state import load_sample

__all__ = [
    "RunningSimulator",
    "SimulatorOptions",
    "describe_tenant",
    "load_sample",
    "reset_tenant",
    "start_simulator",
]
