"""User sign-in on the simulated tenant: authorize, the account picker, codes with PKCE."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import parse_qs, urlsplit

import jwt
import requests

from batch.simulator import RunningSimulator

REDIRECT = "http://127.0.0.1:8365/signin/callback"
VERIFIER = "a-verifier-of-enough-length-for-pkce-0123456789abcdefghijkl"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode()


def _authorize(sim: RunningSimulator, **changes: str) -> requests.Response:
    params = {
        "client_id": sim.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": CHALLENGE.rstrip("="),
        "code_challenge_method": "S256",
        **changes,
    }
    return requests.get(
        f"{sim.authority}/oauth2/v2.0/authorize", params=params, verify=str(sim.ca_path)
    )


def _pick(sim: RunningSimulator, upn: str, redirect: str = REDIRECT) -> str:
    answer = requests.post(
        f"{sim.authority}/oauth2/v2.0/authorize",
        data={
            "login_hint": upn,
            "client_id": sim.client_id,
            "redirect_uri": redirect,
            "state": "s1",
            "nonce": "n1",
            "code_challenge": CHALLENGE.rstrip("="),
        },
        verify=str(sim.ca_path),
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(redirect + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def _redeem(sim: RunningSimulator, code: str, verifier: str = VERIFIER) -> requests.Response:
    return requests.post(
        f"{sim.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        verify=str(sim.ca_path),
    )


def test_the_picker_lists_the_accounts_that_hold_a_role(sim: RunningSimulator) -> None:
    page = _authorize(sim)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    buttons = re.findall(r"<button[^>]*>([^<]*)</button>", page.text)
    assert buttons == [
        f"HR Coordinator (hr.coordinator@{sim.domain})",
        f"IT Admin (it.admin@{sim.domain})",
    ]


def test_a_code_redeemed_with_its_verifier_gives_an_id_token_with_roles(
    sim: RunningSimulator,
) -> None:
    code = _pick(sim, f"it.admin@{sim.domain}")
    answer = _redeem(sim, code)
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["id_token"], options={"verify_signature": False})
    assert claims["preferred_username"] == f"it.admin@{sim.domain}"
    assert claims["roles"] == ["Licensing.Approve", "Licensing.Submit"]
    assert claims["aud"] == sim.client_id and claims["nonce"] == "n1"
    assert claims["iss"] == f"{sim.authority}/v2.0"
    # a code works once
    again = _redeem(sim, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_wrong_verifier_a_foreign_redirect_or_plain_pkce_is_refused(
    sim: RunningSimulator,
) -> None:
    code = _pick(sim, f"hr.coordinator@{sim.domain}")
    wrong = _redeem(sim, code, verifier="another-verifier-0123456789abcdefghijklmnopqrstuv")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert _authorize(sim, redirect_uri="https://attacker.example/cb").status_code == 400
    assert _authorize(sim, code_challenge_method="plain").status_code == 400
    assert _authorize(sim, client_id="00000000-0000-0000-0000-000000000000").status_code == 400
