"""Fixtures for the Graph client and engine tests: a simulated tenant over real HTTPS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from batch.config import Settings
from batch.graph.client import GraphClient, RetryPolicy
from batch.graph.engine import EngineSettings
from batch.graph.pacing import PacerSettings


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One simulated tenant per test module (fast options: no throttling, no latency)."""
    simulator = pytest.importorskip("batch.simulator")
    options = simulator.SimulatorOptions(seed=7, throttling=False)
    running = simulator.start_simulator(tmp_path_factory.mktemp("sim"), options)
    yield running
    running.stop()


@pytest.fixture
def live(sim: Any) -> Iterator[Any]:
    """The module's simulator with its options restored after each test."""
    saved = replace(sim.options)
    yield sim
    for name, value in vars(saved).items():
        setattr(sim.options, name, value)


def sim_settings(sim: Any, home: Path, **overrides: Any) -> Settings:
    """Settings pointing at the simulator, as ``batch.graph.connect`` builds them."""
    values: dict[str, Any] = dict(
        home=home,
        tenant_id=sim.tenant_id,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        authority_host=sim.authority_host,
        graph_url=sim.graph_url,
        ca_bundle=str(sim.ca_path),
    )
    values.update(overrides)
    return Settings(**values)


def sim_client(sim: Any, home: Path, **overrides: Any) -> GraphClient:
    """A real client (msal, HTTPS) for the simulator, with quick retries."""
    return GraphClient(
        sim_settings(sim, home, **overrides), retry=RetryPolicy(backoff_base=0.05, backoff_cap=0.2)
    )


def quick_engine(**kw: Any) -> EngineSettings:
    """Engine settings for tests: short delays, fast pacing."""
    values: dict[str, Any] = dict(
        verify_delay=0.05,
        backoff_base=0.05,
        backoff_cap=0.2,
        lag_delay=0.05,
        pacer=PacerSettings(initial_rate=2000),
    )
    values.update(kw)
    return EngineSettings(**values)


def make_certificate(password: str | None = None) -> tuple[bytes, bytes, bytes]:
    """(key PEM, certificate PEM, PFX) of a fresh self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365batch test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    from cryptography.hazmat.primitives.serialization import pkcs12

    pfx = pkcs12.serialize_key_and_certificates(b"test", key, cert, None, encryption)
    return key_pem, cert_pem, pfx
