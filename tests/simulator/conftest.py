"""Fixtures for the simulated tenant: a running simulator per test, an authenticated session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from simhelpers import Graph

from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator


@pytest.fixture(autouse=True)
def _no_ca_override(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets CURL_CA_BUNDLE/REQUESTS_CA_BUNDLE override a session's verify= path.
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)


@pytest.fixture(scope="session")
def template_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory (certificates, sample tenant, default app) made once per session."""
    state = tmp_path_factory.mktemp("sim-template") / "simulator"
    start_simulator(state).stop()
    return state


@pytest.fixture
def state_dir(template_state: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template state for one test."""
    target = tmp_path / "simulator"
    shutil.copytree(template_state, target)
    return target


@pytest.fixture
def options() -> SimulatorOptions:
    """Options for the ``sim`` fixture; tests may override this fixture or mutate sim.options."""
    return SimulatorOptions(seed=7)


@pytest.fixture
def sim(state_dir: Path, options: SimulatorOptions) -> Iterator[RunningSimulator]:
    """A running simulated tenant on a fresh copy of the sample."""
    with start_simulator(state_dir, options) as running:
        yield running


@pytest.fixture
def graph(sim: RunningSimulator) -> Graph:
    """An authenticated session against ``sim`` with the default (all roles) app."""
    return Graph(sim)
