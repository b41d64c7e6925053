"""msal's credential errors are certificate problems naming the file, not refused authorities.

msal before 1.35 refuses a PEM key with its certificate and no thumbprint with
``ValueError: client_credential needs to follow this format``, raised from the same
constructor that discovers the authority (graph-reference.md section 11).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msal
import pytest
from click.testing import CliRunner

from batch.cli import cli
from batch.config import Settings
from batch.errors import AuthError, ConfigError
from batch.graph.auth import MsalTokenProvider, credential_problem
from tests.graph.conftest import make_certificate

OLD_MSAL = (
    "client_credential needs to follow this format "
    "https://msal-python.readthedocs.io/en/latest/#msal.ClientApplication.params.client_credential"
)
ROOT = Path(__file__).resolve().parents[2]


def _pem(tmp_path: Path) -> Path:
    key_pem, cert_pem, _ = make_certificate()
    path = tmp_path / "contoso app.pem"
    path.write_bytes(key_pem + cert_pem)
    return path


def _refuse(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ValueError(message)

    monkeypatch.setattr(msal, "ConfidentialClientApplication", refuse)


def test_msal_credential_format_error_names_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _pem(tmp_path)
    settings = Settings(
        home=tmp_path, tenant_id="contoso.example", client_id="app", certificate_path=path
    )
    _refuse(monkeypatch, OLD_MSAL)
    with pytest.raises(ConfigError) as info:
        MsalTokenProvider(settings).token()
    text = str(info.value)
    assert str(path) in text and "AZURE_CLIENT_CERTIFICATE_PATH" in text
    assert "authority" not in text and "\n" not in text


def test_an_old_msal_is_named_in_the_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        home=tmp_path, tenant_id="t", client_id="c", certificate_path=_pem(tmp_path)
    )
    monkeypatch.setattr(msal, "__version__", "1.31.0")
    problem = credential_problem(settings, ValueError(OLD_MSAL))
    assert problem is not None and "msal>=1.35" in str(problem)


def test_an_authority_error_is_still_an_authority_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path, tenant_id="t", client_id="c", client_secret="s3cret-x")
    _refuse(monkeypatch, "Unable to get authority configuration for https://login.example/t")
    with pytest.raises(AuthError, match="sign-in authority"):
        MsalTokenProvider(settings).token()


def test_cli_prints_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _pem(tmp_path)
    _refuse(monkeypatch, OLD_MSAL)
    env = {
        "M365BATCH_HOME": str(tmp_path / "home"),
        "AZURE_TENANT_ID": "contoso.example",
        "AZURE_CLIENT_ID": "app",
        "AZURE_CLIENT_SECRET": "",
        "AZURE_CLIENT_CERTIFICATE_PATH": str(path),
    }
    for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["skus"], env=env)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(path) in errors[0], result.output
    assert "refused by msal" in errors[0] and "client_credential needs" in errors[0]
    assert "sign-in authority" not in result.output


def test_msal_floor_is_the_first_version_that_takes_a_pem_without_thumbprint() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "msal>=1.35" in project["dependencies"]
    major, minor = (int(x) for x in msal.__version__.split(".")[:2])
    assert (major, minor) >= (1, 35)
