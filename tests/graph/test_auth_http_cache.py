"""Signing in sooner: msal's discovery answers are kept in the home between commands (one
round trip saved), and a command fetches its token while it loads and reads its input."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from batch.errors import AuthError
from batch.graph.auth import MsalTokenProvider
from batch.graph.httpcache import CACHE_FILE
from tests.graph.conftest import sim_client, sim_settings


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


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    return home


def test_a_second_command_does_not_ask_for_the_openid_configuration(
    live: Any, tmp_path: Path, discoveries: list[str]
) -> None:
    home = _home(tmp_path)
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
    home = _home(tmp_path)
    settings = sim_settings(live, home)
    (home / CACHE_FILE).write_bytes(b"not a pickle")
    assert MsalTokenProvider(settings).token()
    assert len(discoveries) == 1
    (home / CACHE_FILE).chmod(0o666)  # others could have written it: not trusted
    assert MsalTokenProvider(settings).token()
    assert len(discoveries) == 2


def test_a_token_fetched_ahead_is_the_one_the_first_request_uses(
    live: Any, tmp_path: Path, discoveries: list[str]
) -> None:
    client = sim_client(live, _home(tmp_path))
    client.sign_in_ahead()
    assert client.get("/organization")["value"]
    assert isinstance(client.tokens, MsalTokenProvider)
    assert client.tokens.tokens_acquired == 1 and len(discoveries) == 1


def test_a_sign_in_ahead_that_fails_fails_the_first_request_once(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path, client_secret="Wr0ng-secret-value-0123456789")
    before = live.counters["token_requests"]
    client.sign_in_ahead()
    with pytest.raises(AuthError) as info:
        client.get("/organization")
    assert info.value.error == "AADSTS7000215"
    assert live.counters["token_requests"] == before + 1  # the answer met ahead, not asked twice
    with pytest.raises(AuthError):  # asked again, not a stale error
        client.get("/organization")
    assert live.counters["token_requests"] == before + 2
