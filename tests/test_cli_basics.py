"""The command line's frame: help, version, configuration errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from batch import __version__
from batch.cli import cli
from batch.config import load_settings
from batch.errors import ConfigError


def test_help_lists_the_tool() -> None:
    result = CliRunner().invoke(cli, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Bulk Microsoft 365 license changes" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"], catch_exceptions=False)
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2


def test_no_credentials_means_simulated() -> None:
    settings = load_settings({"M365BATCH_HOME": "/tmp/x"})
    assert not settings.has_credentials


def test_partial_credentials_are_refused() -> None:
    with pytest.raises(ConfigError, match="AZURE_TENANT_ID"):
        load_settings({"AZURE_CLIENT_ID": "a", "AZURE_CLIENT_SECRET": "s"})


def test_http_graph_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="https"):
        load_settings({"M365BATCH_GRAPH_URL": "http://graph.example/v1.0"})


def test_profile_reads_secret_from_named_variable(tmp_path: Path) -> None:
    (tmp_path / "m365batch.toml").write_text(
        '[tenants.contoso]\ntenant_id = "t1"\nclient_id = "c1"\n'
        'client_secret_env = "CONTOSO_SECRET"\n'
    )
    settings = load_settings({"CONTOSO_SECRET": "s3cret"}, profile="contoso", cwd=tmp_path)
    assert settings.has_credentials
    assert "s3cret" not in repr(settings)


def test_profile_with_inline_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m365batch.toml").write_text(
        '[tenants.contoso]\ntenant_id = "t1"\nclient_id = "c1"\nclient_secret = "oops"\n'
    )
    with pytest.raises(ConfigError, match="client_secret_env"):
        load_settings({}, profile="contoso", cwd=tmp_path)
