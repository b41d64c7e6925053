"""Fixtures for migration tests: a simulated tenant from a seed, the CLI pointed at it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch.simulator import SimulatorOptions, start_simulator
from tests.run.runkit import Tenant


@pytest.fixture
def seeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, Any]], Tenant]]:
    """Start a simulated tenant loaded from a seed dict; the CLI reaches it through AZURE_*."""
    started: list[Any] = []

    def start(seed: dict[str, Any]) -> Tenant:
        path = tmp_path / "seed.json"
        path.write_text(json.dumps(seed), encoding="utf-8")
        options = SimulatorOptions(seed=7, time_scale=50, group_processing_delay=5.0)
        sim = start_simulator(tmp_path / "sim", options, seed_path=path)
        started.append(sim)
        result = Tenant(sim, tmp_path / "home")
        for key, value in result.env.items():
            if key.startswith(("AZURE_", "M365BATCH_", "REQUESTS_")):
                monkeypatch.setenv(key, value)
        return result

    yield start
    for sim in started:
        sim.stop()
