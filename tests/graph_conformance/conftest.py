"""Fixtures for the conformance tests: a fresh simulated tenant per test, raw HTTPS access.

The helpers of ``tests/simulator`` (msal tokens, a thin requests session) are shared; each
test gets its own copy of one sample state made once per session.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "simulator"))

from simhelpers import Graph  # noqa: E402

from batch.simulator import RunningSimulator, SimulatorOptions, start_simulator  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("M365BATCH_SIMULATOR", raising=False)


@pytest.fixture(scope="session")
def conformance_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory (certificates, sample tenant, default app) made once per session."""
    state = tmp_path_factory.mktemp("conformance-template") / "simulator"
    start_simulator(state).stop()
    return state


@pytest.fixture
def state_dir(conformance_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template state for one test."""
    target = tmp_path / "simulator"
    shutil.copytree(conformance_template, target)
    return target


@pytest.fixture
def options() -> SimulatorOptions:
    """Options for ``sim``; a test module may override this fixture."""
    return SimulatorOptions(seed=5)


@pytest.fixture
def sim(state_dir: Path, options: SimulatorOptions) -> Iterator[RunningSimulator]:
    """A running simulated tenant on a fresh copy of the sample."""
    with start_simulator(state_dir, options) as running:
        yield running


@pytest.fixture
def graph(sim: RunningSimulator) -> Graph:
    """An authenticated session against ``sim`` with the default (all roles) app."""
    return Graph(sim)
