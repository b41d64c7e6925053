"""msal's discovery answers are kept in the home between commands: one round trip saved."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from batch.graph.auth import MsalTokenProvider
from batch.graph.httpcache import CACHE_FILE
from tests.graph.conftest import sim_settings


@pytest.fixture
def discoveries(live: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tenant's OpenID configuration requests, as the simulator answers them."""
    seen: list[str] = []
    authority = live._core.authority
    original = authority.discovery

    def counted(*args: Any) -> Any:
        seen.append(str(args[0]))
        return original(*args)

    monkeypatch.setattr(authority, "discovery", counted)
    return seen


def test_a_second_command_does_not_ask_for_the_openid_configuration(
    live: Any, tmp_path: Path, discoveries: list[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    settings = sim_settings(live, home)
    assert MsalTokenProvider(settings).token()
    assert len(discoveries) == 1
    kept = home / CACHE_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert MsalTokenProvider(settings).token()  # another process, as it were
    assert len(discoveries) == 1


def test_a_damaged_or_foreign_cache_is_ignored(
    live: Any, tmp_path: Path, discoveries: list[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    settings = sim_settings(live, home)
    (home / CACHE_FILE).write_bytes(b"not a pickle")
    assert MsalTokenProvider(settings).token()
    assert len(discoveries) == 1
    (home / CACHE_FILE).chmod(0o666)  # others could have written it: not trusted
    assert MsalTokenProvider(settings).token()
    assert len(discoveries) == 2
