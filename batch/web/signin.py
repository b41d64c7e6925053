"""Sign-in for the web app: OpenID Connect authorization code flow with PKCE, through msal.

The same code path for a real tenant (Microsoft Entra) and the simulated one (whose
authorize endpoint shows an account picker). msal builds the authorize URL with ``state``,
``nonce`` and a PKCE challenge, then redeems the code and checks the ID token (issuer,
audience, nonce, lifetime). Roles come from the ID token's app roles ``Licensing.Submit``
and ``Licensing.Approve``, or from the groups ``[web]`` in ``m365batch.toml`` names for
them; ``Licensing.Approve`` implies submitting too.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal
import requests

from batch.config import CONFIG_FILE_NAME, Settings
from batch.errors import AuthError, ConfigError
from batch.graph.auth import build_credential, needs_instance_discovery
from batch.graph.transport import new_session

__all__ = ["APPROVE", "SUBMIT", "Identity", "SignIn", "relay_authorize", "role_groups", "roles_of"]

SUBMIT = "Licensing.Submit"
APPROVE = "Licensing.Approve"


@dataclass(frozen=True)
class Identity:
    """Who is signed in and what they may do."""

    upn: str
    name: str
    roles: tuple[str, ...]

    @property
    def can_submit(self) -> bool:
        return SUBMIT in self.roles or APPROVE in self.roles

    @property
    def can_approve(self) -> bool:
        return APPROVE in self.roles

    def as_dict(self) -> dict[str, Any]:
        return {"upn": self.upn, "name": self.name, "roles": list(self.roles)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(str(data["upn"]), str(data.get("name") or ""), tuple(data.get("roles") or ()))


def role_groups(home: Path, cwd: Path | None = None) -> dict[str, tuple[str, ...]]:
    """The groups that grant each role, from ``[web]`` in ``m365batch.toml`` (cwd, else home).

    ``submit_groups`` and ``approve_groups`` list group object ids, as the ID token's
    ``groups`` claim names them (the app registration must emit that claim).
    """
    for path in ((cwd or Path(os.getcwd())) / CONFIG_FILE_NAME, home / CONFIG_FILE_NAME):
        if path.is_file():
            try:
                web = tomllib.loads(path.read_text(encoding="utf-8")).get("web", {})
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: cannot be read: {exc}") from exc
            return {
                SUBMIT: tuple(str(g).lower() for g in web.get("submit_groups", ())),
                APPROVE: tuple(str(g).lower() for g in web.get("approve_groups", ())),
            }
    return {SUBMIT: (), APPROVE: ()}


def roles_of(claims: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The roles an ID token grants: its app roles, and those of the groups it names."""
    held = {str(g).lower() for g in claims.get("groups") or ()}
    roles = {r for r in claims.get("roles") or () if r in (SUBMIT, APPROVE)}
    roles |= {role for role, ids in groups.items() if held & set(ids)}
    return tuple(sorted(roles))


class SignIn:
    """msal's authorization code flow for the app registration in ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: Any = None
        self._groups = role_groups(settings.home)

    def _application(self) -> Any:
        if self._app is None:
            settings = self._settings
            kwargs: dict[str, Any] = {
                "authority": settings.authority,
                "client_credential": build_credential(settings),
                "http_client": new_session(settings.ca_bundle, timeout=(10.0, 30.0)),
                "token_cache": msal.TokenCache(),
            }
            if not needs_instance_discovery(settings.authority_host):
                kwargs["instance_discovery"] = False
            self._app = msal.ConfidentialClientApplication(settings.client_id, **kwargs)
        return self._app

    def start(self, redirect_uri: str) -> dict[str, Any]:
        """A new flow (kept in the session): its ``auth_uri`` is where the browser goes."""
        flow: dict[str, Any] = self._application().initiate_auth_code_flow(
            [], redirect_uri=redirect_uri, response_mode="query"
        )
        return flow

    def finish(self, flow: dict[str, Any], answer: dict[str, str]) -> Identity:
        """Redeem the code the authorize endpoint sent back; the person and their roles."""
        try:
            result = self._application().acquire_token_by_auth_code_flow(flow, answer)
        except ValueError as exc:  # msal: state mismatch, replayed flow
            raise AuthError(f"The sign-in answer was refused: {exc}") from exc
        if "error" in result:
            raise AuthError(
                f"Sign-in failed: {result.get('error')}: "
                f"{str(result.get('error_description', '')).splitlines()[0]}"
            )
        claims = result.get("id_token_claims") or {}
        upn = str(claims.get("preferred_username") or claims.get("upn") or "").lower()
        if not upn:
            raise AuthError("Sign-in failed: the ID token names nobody.")
        return Identity(upn, str(claims.get("name") or upn), roles_of(claims, self._groups))


def relay_authorize(
    settings: Settings, endpoint: str, query: str, body: bytes | None
) -> requests.Response:
    """Ask the simulated tenant's authorize endpoint (its picker, or the account picked)."""
    session = new_session(settings.ca_bundle, timeout=(10.0, 30.0))
    with session:
        if body is None:
            return session.get(f"{endpoint}?{query}", allow_redirects=False)
        return session.post(
            endpoint,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
        )
