"""The realistic preset, its environment variable and the ``simulator serve`` options."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.config import load_settings
from batch.errors import ConfigError
from batch.graph.connect import open_tenant
from batch.simulator import SimulatorOptions


def test_realistic_preset_values() -> None:
    """The preset: read_lag 0.3 over 2 s, usage_location_lag 3 s, 5% of writes 429,
    throttling on, 30 ms latency; overrides win."""
    preset = SimulatorOptions.realistic()
    assert (preset.read_lag, preset.read_lag_window, preset.usage_location_lag) == (0.3, 2.0, 3.0)
    assert (preset.fault_item_429, preset.faults_writes_only) == (0.05, True)
    assert preset.throttling and preset.latency_ms == 30
    assert SimulatorOptions.realistic(read_lag=0.0, seed=4).read_lag == 0.0


def test_environment_picks_the_preset() -> None:
    """M365BATCH_SIMULATOR=realistic picks the preset; unset or strict the plain options;
    anything else is an error."""
    assert SimulatorOptions.from_environment({}) == SimulatorOptions()
    assert SimulatorOptions.from_environment({"M365BATCH_SIMULATOR": "strict"}) == (
        SimulatorOptions()
    )
    assert SimulatorOptions.from_environment({"M365BATCH_SIMULATOR": "Realistic"}) == (
        SimulatorOptions.realistic()
    )
    with pytest.raises(ValueError, match="M365BATCH_SIMULATOR"):
        SimulatorOptions.from_environment({"M365BATCH_SIMULATOR": "chaos"})


def test_built_in_simulator_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    """The built-in simulator started without credentials uses the preset of the
    environment variable."""
    import batch.simulator as simulator_module

    seen: list[SimulatorOptions] = []
    real = simulator_module.start_simulator

    def spy(state_dir: Path, options: SimulatorOptions | None = None, **kwargs: object):
        seen.append(options or SimulatorOptions())
        return real(state_dir, options, **kwargs)

    monkeypatch.setattr(simulator_module, "start_simulator", spy)
    monkeypatch.setenv("M365BATCH_SIMULATOR", "realistic")
    settings = load_settings()
    with open_tenant(settings) as opened:
        assert "SIMULATED" in opened.label
    assert seen and seen[0].read_lag == 0.3
    monkeypatch.setenv("M365BATCH_SIMULATOR", "chaos")
    with pytest.raises(ConfigError), open_tenant(settings):
        pass


def test_serve_options_override_the_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    """``simulator serve --realistic --read-lag 0.5`` keeps the preset but the given option."""
    from click.testing import CliRunner

    import batch.simulator as simulator_module
    from batch.cli import cli

    seen: list[SimulatorOptions] = []

    def fake_start(state_dir: Path, options: SimulatorOptions, **kwargs: object):
        seen.append(options)
        raise KeyboardInterrupt

    monkeypatch.setattr(simulator_module, "start_simulator", fake_start)
    runner = CliRunner()
    runner.invoke(cli, ["simulator", "serve", "--realistic", "--read-lag", "0.5"])
    runner.invoke(cli, ["simulator", "serve", "--fault-single-503", "0.2"])
    assert seen[0].read_lag == 0.5 and seen[0].fault_item_429 == 0.05
    assert seen[1] == SimulatorOptions(fault_single_503=0.2)
