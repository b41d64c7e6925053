"""The Graph client and msal against the simulated tenant over real HTTPS."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from batch.errors import AuthError, ConfigError, GraphStatusError, PermissionDenied
from batch.graph.auth import MsalTokenProvider, certificate_thumbprint
from batch.graph.client import GraphClient
from batch.graph.lifetime import ClientClosed
from batch.graph.queries import user_path
from batch.logs import configure_logging
from tests.graph.conftest import make_certificate, sim_client, sim_settings

ALL_ROLES = [
    "User.ReadWrite.All",
    "LicenseAssignment.ReadWrite.All",
    "Directory.Read.All",
    "Organization.Read.All",
    "Group.ReadWrite.All",
]


def test_secret_sign_in_and_cached_token(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    skus = client.get("/subscribedSkus")["value"]
    assert skus and all("skuId" in s for s in skus)
    client.get("/organization")
    assert isinstance(client.tokens, MsalTokenProvider)
    assert client.tokens.tokens_acquired == 1  # the second call came from msal's cache


@pytest.mark.parametrize("form", ["pem", "pem-password", "pfx"])
def test_certificate_sign_in(live: Any, tmp_path: Path, form: str) -> None:
    password = "pfx-pass-123" if form != "pem" else None
    key_pem, cert_pem, pfx = make_certificate(password)
    client_id, _ = live.add_app(ALL_ROLES, certificate_pem=cert_pem)
    path = tmp_path / ("app.pfx" if form == "pfx" else "app.pem")
    path.write_bytes(pfx if form == "pfx" else key_pem + cert_pem)
    settings = sim_settings(
        live,
        tmp_path,
        client_id=client_id,
        client_secret=None,
        certificate_path=path,
        certificate_password=password,
    )
    client = GraphClient(settings)
    assert client.get("/subscribedSkus")["value"]
    assert len(certificate_thumbprint(settings) or "") == 64


def test_closing_waits_for_a_request_under_way_and_sends_none_after(
    live: Any, tmp_path: Path
) -> None:
    """A background read still running when a command ends finishes; none starts after."""
    client = sim_client(live, tmp_path)
    client.get("/organization")  # signed in
    live.options.latency_ms = 400
    answers: list[Any] = []
    reader = threading.Thread(target=lambda: answers.append(client.get("/subscribedSkus")))
    reader.start()
    time.sleep(0.15)  # the read is under way
    client.close()
    assert answers and answers[0]["value"]  # close waited for it
    sent = live.counters["requests"]
    with pytest.raises(ClientClosed):
        client.get("/organization")
    assert live.counters["requests"] == sent
    reader.join()


def test_wrong_secret_is_an_auth_error_without_the_secret(live: Any, tmp_path: Path) -> None:
    secret = "Wr0ng-secret-value-0123456789"
    client = sim_client(live, tmp_path, client_secret=secret)
    with pytest.raises(AuthError) as info:
        client.get("/organization")
    assert info.value.error == "AADSTS7000215"
    assert "AADSTS7000215" in str(info.value) and secret not in str(info.value)
    assert "Trace ID" not in str(info.value)


def test_certificate_with_wrong_password_is_a_config_error(live: Any, tmp_path: Path) -> None:
    key_pem, cert_pem, _ = make_certificate("right-password")
    path = tmp_path / "app.pem"
    path.write_bytes(key_pem + cert_pem)
    settings = sim_settings(
        live,
        tmp_path,
        client_secret=None,
        certificate_path=path,
        certificate_password="wrong-password",
    )
    with pytest.raises(ConfigError, match="password"):
        GraphClient(settings)


def test_token_renewed_when_rejected_before_expiry(live: Any, tmp_path: Path) -> None:
    # Tokens carry whole-second "iat" claims, so the early expiry must exceed one second.
    live.options.token_expire_after = 1.2
    client = sim_client(live, tmp_path)
    client.get("/organization")
    time.sleep(2.3)
    client.get("/organization")  # 401 -> renew once -> retried
    assert client.stats.token_renewals == 1
    assert client.tokens.tokens_acquired == 2  # type: ignore[attr-defined]


def test_missing_permission_raises_permission_denied(live: Any, tmp_path: Path) -> None:
    client_id, secret = live.add_app(["User.Read.All"], secret="s3cret-read-only-app")
    client = sim_client(live, tmp_path, client_id=client_id, client_secret=secret)
    user = next(client.get_all("/users", {"$top": 1}))
    with pytest.raises(PermissionDenied) as info:
        client.post(f"/users/{user['id']}/assignLicense", {"addLicenses": [], "removeLicenses": []})
    err = info.value
    assert err.status == 403 and err.code == "Authorization_RequestDenied"
    assert err.request_id and err.method == "POST" and "assignLicense" in (err.url or "")
    assert err.exit_code == 1


def test_not_found_is_mapped_with_request_id(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    with pytest.raises(GraphStatusError) as info:
        client.get(user_path("nobody@contoso.example"))
    assert info.value.status == 404 and info.value.code == "Request_ResourceNotFound"
    assert info.value.request_id
    assert "request-id" in str(info.value)


def test_paging_follows_next_link_and_resends_consistency_level(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    sent: list[requests.PreparedRequest] = []
    client.session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    everyone = list(client.get_all("/users", {"$select": "id"}))
    disabled = list(
        client.get_all(
            "/users",
            {"$filter": "accountEnabled eq false", "$count": "true", "$top": 5, "$select": "id"},
            headers={"ConsistencyLevel": "eventual"},
        )
    )
    pages = [r for r in sent if "accountEnabled" in (r.url or "")]
    assert len(everyone) > 100
    assert len(disabled) > 5 and len({u["id"] for u in disabled}) == len(disabled)
    assert len(pages) >= 2
    assert any("skiptoken" in (r.url or "").lower() for r in pages)  # nextLink followed whole
    assert all(r.headers.get("ConsistencyLevel") == "eventual" for r in pages)


def test_resolve_users_with_awkward_upns(live: Any, tmp_path: Path) -> None:
    client = sim_client(live, tmp_path)
    upns = [
        u["userPrincipalName"]
        for u in client.get_all("/users", {"$select": "userPrincipalName", "$top": 999})
    ]
    awkward = [u for u in upns if "'" in u or "#EXT#" in u or u.startswith("$") or "+" in u]
    assert any("'" in u for u in awkward) and any("#EXT#" in u for u in awkward)
    assert any(u.startswith("$") for u in awkward)
    asked = [u.upper() if i % 2 else u for i, u in enumerate(awkward)] + upns[:40]
    asked += ["user1%40contoso.example#x@evil.example", "nobody@contoso.example"]
    found = client.resolve_users(asked, select=("usageLocation",))
    assert set(found) == set(asked[:-2])
    for key, user in found.items():
        assert user["userPrincipalName"].casefold() == key.casefold()
        assert client.get(f"/users/{user['id']}")["userPrincipalName"] == user["userPrincipalName"]
    by_id = client.resolve_users([found[awkward[0]]["id"]])
    assert list(by_id.values())[0]["userPrincipalName"] == awkward[0]


def test_no_token_or_secret_in_debug_log(live: Any, tmp_path: Path) -> None:
    log_path = configure_logging(tmp_path / "home", debug=True)
    try:
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        client = sim_client(live, tmp_path)
        token = client.tokens.token()
        client.get("/organization")
        client.resolve_users(["nobody@contoso.example"])
        read_only, secret = live.add_app(["User.Read.All"], secret="An0ther-secret-for-logs")
        denied = sim_client(live, tmp_path, client_id=read_only, client_secret=secret)
        with pytest.raises(PermissionDenied) as info:
            denied.post(user_path("nobody@contoso.example") + "/assignLicense", {})
        with pytest.raises(AuthError) as bad:
            sim_client(live, tmp_path, client_secret="Bad-secret-for-logs-42").get("/organization")
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_m365batch", False):
                logging.getLogger().removeHandler(handler)
                handler.close()
    text = log_path.read_text(encoding="utf-8")
    assert "GET" in text and "request-id" in text  # requests were logged at DEBUG
    for needle in (token, live.client_secret, secret, "Bad-secret-for-logs-42"):
        assert needle not in text
        assert needle not in str(info.value) and needle not in str(bad.value)
