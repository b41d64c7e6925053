"""Shared fixtures: an isolated M365BATCH_HOME for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

_CREDENTIAL_VARS = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "M365BATCH_GRAPH_URL",
    "REQUESTS_CA_BUNDLE",
    "M365BATCH_SIMULATOR",
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own M365BATCH_HOME and no credentials from the machine."""
    home = tmp_path / "home"
    monkeypatch.setenv("M365BATCH_HOME", str(home))
    for name in _CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    return home
