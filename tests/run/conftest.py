"""Fixtures for end-to-end runs: a fresh simulated tenant the CLI is pointed at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batch.simulator import SimulatorOptions, start_simulator
from tests.run.runkit import Tenant


@pytest.fixture
def tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenant]:
    """A fresh simulated tenant (sample seed) the CLI reaches through AZURE_* variables."""
    options = SimulatorOptions(seed=7, time_scale=50, group_processing_delay=5.0)
    with start_simulator(tmp_path / "sim", options) as sim:
        result = Tenant(sim, tmp_path / "home")
        for key, value in result.env.items():
            if key.startswith(("AZURE_", "M365BATCH_", "REQUESTS_")):
                monkeypatch.setenv(key, value)
        yield result
