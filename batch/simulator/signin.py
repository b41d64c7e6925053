"""Simulated tenant, user sign-in: the authorize endpoint, an account picker, ID tokens.

The OpenID Connect authorization code flow with PKCE (S256), as a web app uses it:

    GET  /{tenant}/oauth2/v2.0/authorize?client_id&redirect_uri&state&nonce&code_challenge...
         -> an HTML account picker: one button per account that holds an app role
    POST /{tenant}/oauth2/v2.0/authorize (the button) -> 302 redirect_uri?code=...&state=...
    POST /{tenant}/oauth2/v2.0/token grant_type=authorization_code, code, code_verifier,
         redirect_uri, client_id and client_secret -> id_token (with ``roles``), access token

The accounts that can sign in are the tenant's sign-in accounts (:data:`SIGN_IN_ACCOUNTS`,
under the tenant's domain), kept apart from the directory's users so that the sample
organisation is unchanged. A code is single use, lives 10 minutes, and is bound to its
client, redirect URI and PKCE challenge. Redirect URIs must be loopback (``http://127.0.0.1``
or ``http://localhost``): the simulated tenant has no app registration portal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

#: local part -> (display name, app roles)
SIGN_IN_ACCOUNTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hr.coordinator": ("HR Coordinator", ("Licensing.Submit",)),
    "it.admin": ("IT Admin", ("Licensing.Approve", "Licensing.Submit")),
}
CODE_LIFETIME = 600


class SignInError(Exception):
    """A refused sign-in step: the OAuth error and its description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def accounts(domain: str) -> list[dict[str, Any]]:
    """The accounts that can sign in to the web app, with their roles."""
    return [
        {"upn": f"{local}@{domain}", "name": name, "roles": list(roles)}
        for local, (name, roles) in SIGN_IN_ACCOUNTS.items()
    ]


def _loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost")


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class SignIn:
    """Authorization codes in flight (memory only) and the pages of the flow."""

    def __init__(self) -> None:
        self._codes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def picker(self, query: dict[str, str], domain: str, known_client: bool) -> str:
        """The account picker page for an authorize request, or SignInError."""
        if not known_client:
            raise SignInError("unauthorized_client", "AADSTS700016: Application not found.")
        if not _loopback(query.get("redirect_uri", "")):
            raise SignInError("invalid_request", "AADSTS50011: The redirect URI is not allowed.")
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            raise SignInError("invalid_request", "AADSTS9002325: PKCE (S256) code flow only.")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
            if k in ("client_id", "redirect_uri", "state", "nonce", "code_challenge", "scope")
        )
        buttons = "".join(
            f'<li><button name="login_hint" value="{html.escape(a["upn"])}">'
            f"{html.escape(a['name'])} ({html.escape(a['upn'])})</button></li>"
            for a in accounts(domain)
        )
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Pick an account</title><style>body{font-family:sans-serif;margin:2rem}"
            "li{list-style:none;margin:.5rem 0}button{font-size:1rem;padding:.5rem 1rem}"
            "</style></head><body><h1>Pick an account</h1>"
            f"<p>Simulated tenant {html.escape(domain)}</p>"
            f'<form method="post"><ul>{hidden}{buttons}</ul></form></body></html>'
        )

    def pick(self, form: dict[str, str], domain: str) -> str:
        """The account chosen: a code, and the redirect URI to send the browser to."""
        upn = form.get("login_hint", "").lower()
        account = next((a for a in accounts(domain) if a["upn"] == upn), None)
        redirect = form.get("redirect_uri", "")
        if account is None or not _loopback(redirect):
            raise SignInError("access_denied", "AADSTS50034: The user account does not exist.")
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = {
                "account": account,
                "client_id": form.get("client_id", ""),
                "redirect_uri": redirect,
                "challenge": form.get("code_challenge", ""),
                "nonce": form.get("nonce", ""),
                "expires": time.time() + CODE_LIFETIME,
            }
        return f"{redirect}?{urlencode({'code': code, 'state': form.get('state', '')})}"

    def redeem(self, form: dict[str, str]) -> dict[str, Any]:
        """Check a code (once) against its client, redirect URI and PKCE verifier."""
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or time.time() > grant["expires"]:
            raise SignInError("invalid_grant", "AADSTS70008: The provided code has expired.")
        if grant["client_id"] != form.get("client_id") or grant["redirect_uri"] != form.get(
            "redirect_uri"
        ):
            raise SignInError("invalid_grant", "AADSTS500112: The redirect URI does not match.")
        if not hmac.compare_digest(grant["challenge"], _challenge(form.get("code_verifier", ""))):
            raise SignInError("invalid_grant", "AADSTS501481: The code verifier does not match.")
        return grant


def id_token_claims(
    grant: dict[str, Any], issuer: str, tenant_id: str, lifetime: int
) -> dict[str, Any]:
    """The ID token of a redeemed code: who signed in and their app roles."""
    now = int(time.time())
    account = grant["account"]
    return {
        "aud": grant["client_id"],
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant_id,
        "oid": str(uuid.uuid5(uuid.NAMESPACE_OID, account["upn"])),
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, account["upn"])),
        "preferred_username": account["upn"],
        "name": account["name"],
        "roles": account["roles"],
        "nonce": grant["nonce"],
        "ver": "2.0",
    }
