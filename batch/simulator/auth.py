"""Simulated tenant, identity: OIDC discovery, the v2.0 token endpoint and token checks.

The token endpoint implements the client-credentials grant with a client secret or a
certificate assertion (RS256 or PS256, found by ``x5t`` or ``x5t#S256``, checked for
signature, ``aud`` = this token endpoint, ``iss`` = ``sub`` = client id, ``exp``/``nbf``).
Errors have Entra's shape: ``error``, ``error_description`` starting with an AADSTS code,
``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``; ``invalid_client`` is
answered 401, everything else 400. AADSTS codes chosen where the reference is silent:
700016 unknown app, 7000215 wrong secret, 7000218 no credential, 700027 unknown key or bad
signature, 700024 expired assertion, 700021 wrong audience, 700023 wrong subject, 1002012
bad scope, 70003 unsupported grant, 90002 unknown tenant.

Access tokens are RS256 JWTs for ``https://graph.microsoft.com`` with the app's ``roles``.
Graph answers 401 ``InvalidAuthenticationToken`` for a missing, malformed, badly signed,
foreign or expired token; ``token_expire_after`` makes tokens expire early although
``expires_in`` promises more, to exercise a client's renewal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from batch.files import atomic_write
from batch.simulator.calls import Caller
from batch.simulator.options import SimulatorOptions
from batch.simulator.responses import GraphFault, Reply
from batch.simulator.signin import SignIn, SignInError, id_token_claims
from batch.simulator.store import TenantStore

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: the signed-in admin of a device-code sign-in (the simulator has one admin account)
DEVICE_USER = "admin@contoso.example"
#: the admin's password, made once in the state folder (owner-only): approving a device
#: code means signing in as the admin, so another local user cannot approve one
ADMIN_PASSWORD_FILE = "admin-password"
_RESERVED_SCOPES = {"openid", "profile", "offline_access"}


class EntraError(Exception):
    """Raised to answer the token or discovery endpoint with an Entra error body."""

    def __init__(self, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.code = code
        self.description = description

    @property
    def status(self) -> int:
        return 401 if self.error == "invalid_client" else 400

    def body(self) -> dict[str, Any]:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: "
            f"{trace_id} Correlation ID: {correlation_id} Timestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


class Authority:
    """The tenant's identity provider: discovery, token endpoint, token verification."""

    def __init__(
        self, store: TenantStore, signing_key_path: Path, options: SimulatorOptions
    ) -> None:
        self.store = store
        self.options = options
        pem = signing_key_path.read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):  # tokens are RS256, as Entra signs them
            raise ValueError(f"{signing_key_path} does not hold an RSA private key")
        self._private_key = key
        self._public_key = key.public_key()
        self._kid = uuid.uuid5(uuid.NAMESPACE_OID, pem.decode()).hex
        self.admin_password_path = signing_key_path.parent / ADMIN_PASSWORD_FILE
        # device-code sign-ins in progress: device_code -> its state (memory only)
        self._devices: dict[str, dict[str, Any]] = {}
        self._devices_lock = threading.Lock()
        # user sign-ins (authorization code + PKCE) in progress
        self.signin = SignIn()

    @property
    def tenant_id(self) -> str:
        return self.store.meta("tenant_id") or ""

    def _known_tenant(self, tenant: str) -> bool:
        org = self.store.organization()
        return tenant.lower() in {self.tenant_id.lower(), str(org.get("domain", "")).lower()}

    def discovery(self, tenant: str, host: str) -> dict[str, Any]:
        """The OpenID configuration for ``tenant``, or EntraError for an unknown tenant."""
        if not self._known_tenant(tenant):
            raise EntraError(
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
                "ID and are signing into the correct cloud.",
            )
        tid = self.tenant_id
        return {
            "token_endpoint": f"{host}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{host}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{host}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{host}/oidc/userinfo",
            "authorization_endpoint": f"{host}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{host}/{tid}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{host}/{tid}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def device_code(self, tenant: str, form: dict[str, str], host: str) -> dict[str, Any]:
        """Start a device-code sign-in: a code the admin confirms at ``/devicelogin``.

        Delegated scopes are granted as asked when the app is registered; the simulated
        tenant has one admin, who holds every role (real Graph also checks the user's
        directory role, e.g. License Administrator).
        """
        if not self._known_tenant(tenant) and tenant not in ("organizations", "common"):
            raise EntraError("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        client_id = form.get("client_id", "")
        if self.store.app(client_id) is None:
            raise EntraError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the "
                f"directory '{self.tenant_id}'.",
            )
        scopes = sorted(
            {
                s.rsplit("/", 1)[-1]
                for s in form.get("scope", "").split()
                if s not in _RESERVED_SCOPES and not s.endswith("/.default")
            }
        )
        if not scopes:
            raise EntraError("invalid_scope", 70011, "The provided value for scope is not valid.")
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        device = secrets.token_urlsafe(32)
        lifetime = 900
        with self._devices_lock:
            self._devices[device] = {
                "user_code": user_code,
                "client_id": client_id,
                "scopes": scopes,
                "approved": False,
                "expires": time.time() + lifetime,
            }
        uri = f"{host}/devicelogin"
        return {
            "user_code": user_code,
            "device_code": device,
            "verification_uri": uri,
            "expires_in": lifetime,
            "interval": 1,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the "
            f"code {user_code} to authenticate (simulated tenant: sign in as {DEVICE_USER} "
            f"with the password in {self.admin_password()}).",
        }

    def admin_password(self) -> Path:
        """The file holding the admin's password (made once, owner-only); its path."""
        path = self.admin_password_path
        if not path.is_file():
            with contextlib.suppress(FileExistsError):
                atomic_write(path, secrets.token_urlsafe(18), mode=0o600)
        return path

    def approve_device(self, user_code: str, username: str, password: str) -> bool:
        """The admin signs in and confirms a code at ``/devicelogin``.

        False when the sign-in is wrong or no such code waits.
        """
        expected = self.admin_password().read_text(encoding="utf-8").strip()
        signed_in = username.strip().lower() == DEVICE_USER and hmac.compare_digest(
            password.encode(), expected.encode()
        )
        if not signed_in:
            return False
        with self._devices_lock:
            for state in self._devices.values():
                waiting = time.time() < state["expires"]
                if waiting and state["user_code"] == user_code.strip().upper():
                    state["approved"] = True
                    return True
        return False

    def _device_token(self, form: dict[str, str]) -> dict[str, Any]:
        with self._devices_lock:
            state = self._devices.get(form.get("device_code", ""))
            if state is None or time.time() > state["expires"]:
                raise EntraError(
                    "expired_token",
                    70020,
                    "The provided value for the input parameter 'device_code' is "
                    "not valid. This device code has expired.",
                )
            if not state["approved"]:
                raise EntraError(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            del self._devices[form["device_code"]]
        lifetime = int(self.options.token_lifetime)
        return {
            "token_type": "Bearer",
            "scope": " ".join(state["scopes"]),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.issue(
                state["client_id"], [], lifetime, "0", scopes=state["scopes"]
            ),
        }

    def token(self, tenant: str, form: dict[str, str], host: str) -> dict[str, Any]:
        """Answer a token request (client credentials or device code), or raise EntraError."""
        device_flow = form.get("grant_type") == DEVICE_CODE_GRANT
        if not self._known_tenant(tenant) and not (
            device_flow and tenant in ("organizations", "common")
        ):
            raise EntraError("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") == DEVICE_CODE_GRANT:
            return self._device_token(form)
        if form.get("grant_type") == "authorization_code":
            return self._code_token(form, host)
        if form.get("grant_type") != "client_credentials":
            raise EntraError(
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form.get('grant_type', '')}'.",
            )
        client_id = form.get("client_id", "")
        if not client_id:
            raise EntraError(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        _check_client_credentials_scope(form)
        app = self.store.app(client_id)
        if app is None:
            raise EntraError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in "
                "the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        method = self._authenticate_client(app, form, tenant, host)
        lifetime = int(self.options.token_lifetime)
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.issue(client_id, app["roles"], lifetime, method),
        }

    def authorize(self, method: str, query: str, body: bytes) -> Reply:
        """The user sign-in: the account picker (GET) and the account picked (POST)."""
        domain = str(self.store.organization().get("domain", ""))
        try:
            if method == "GET":
                params = dict(parse_qsl(query, keep_blank_values=True))
                known = self.store.app(params.get("client_id", "")) is not None
                page = self.signin.picker(params, domain, known)
                return Reply(200, page, {"Content-Type": "text/html; charset=utf-8"})
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            return Reply(302, None, {"Location": self.signin.pick(form, domain)})
        except SignInError as exc:
            return Reply(400, f"{exc.error}: {exc.description}", {"Content-Type": "text/plain"})

    def _code_token(self, form: dict[str, str], host: str) -> dict[str, Any]:
        """Redeem a user's authorization code: an ID token with the user's app roles."""
        app = self.store.app(form.get("client_id", ""))
        if app is None:
            raise EntraError("unauthorized_client", 700016, "Application not found.")
        self._authenticate_client(app, form, self.tenant_id, host)
        try:
            grant = self.signin.redeem(form)
        except SignInError as exc:
            raise EntraError(exc.error, 70008, exc.description) from exc
        lifetime = int(self.options.token_lifetime)
        claims = id_token_claims(grant, f"{host}/{self.tenant_id}/v2.0", self.tenant_id, lifetime)
        id_token = jwt.encode(
            claims, self._private_key, algorithm="RS256", headers={"kid": self._kid, "typ": "JWT"}
        )
        return {
            "token_type": "Bearer",
            "scope": "openid profile",
            "expires_in": lifetime,
            "id_token": id_token,
        }

    def _authenticate_client(
        self, app: dict[str, Any], form: dict[str, str], tenant: str, host: str
    ) -> str:
        """Check the client's assertion or secret; the method ("2" or "1") for the token."""
        if "client_assertion" in form:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise EntraError(
                    "invalid_request",
                    90014,
                    "The request body must contain the following parameter: "
                    "'client_assertion_type'.",
                )
            self._check_assertion(app, form["client_assertion"], tenant, host)
            return "2"
        if "client_secret" in form:
            if not app["secret"] or not hmac.compare_digest(
                app["secret"].encode(), form["client_secret"].encode()
            ):
                raise EntraError(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the "
                    "request is the client secret value, not the client secret ID, for a "
                    f"secret added to app '{app['client_id']}'.",
                )
            return "1"
        raise EntraError(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: "
            "'client_assertion' or 'client_secret'.",
        )

    def issue(
        self,
        client_id: str,
        roles: list[str],
        lifetime: int,
        method: str = "1",
        *,
        scopes: list[str] | None = None,
    ) -> str:
        """A signed access token for Graph carrying ``roles`` (app) or ``scopes`` (delegated)."""
        now = int(time.time())
        tid = self.tenant_id
        claims = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "aio": uuid.uuid4().hex,
            "app_displayname": "m365batch",
            "appid": client_id,
            "appidacr": method,
            "idp": f"https://sts.windows.net/{tid}/",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_OID, client_id)),
            "roles": sorted(roles),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_OID, client_id)),
            "tid": tid,
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
        }
        if scopes is not None:  # a delegated (user) token: scp instead of roles
            del claims["roles"]
            claims.update(
                idtyp="user",
                scp=" ".join(scopes),
                upn=DEVICE_USER,
                oid=str(uuid.uuid5(uuid.NAMESPACE_OID, DEVICE_USER)),
            )
        return jwt.encode(
            claims,
            self._private_key,
            algorithm="RS256",
            headers={"kid": self._kid, "typ": "JWT"},
        )

    def verify(self, authorization: str | None) -> Caller:
        """The caller of a Graph request, or the 401 Graph would answer."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _invalid_token("Access token is empty.")
        token = authorization[7:].strip()
        if not token:
            raise _invalid_token("Access token is empty.")
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                audience=[GRAPH_AUDIENCE, GRAPH_APP_ID],
                options={"require": ["exp", "iat", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _invalid_token("Lifetime validation failed, the token is expired.") from exc
        except jwt.InvalidTokenError as exc:
            raise _invalid_token(
                "Access token validation failure. Invalid audience."
                if isinstance(exc, jwt.InvalidAudienceError)
                else "Access token validation failure."
            ) from exc
        if claims.get("tid") != self.tenant_id:
            raise _invalid_token("Access token validation failure. Invalid tenant.")
        early = self.options.token_expire_after
        if early is not None and time.time() - float(claims["iat"]) > early:
            raise _invalid_token("Lifetime validation failed, the token is expired.")
        app = self.store.app(str(claims.get("appid", "")))
        if app is None:
            raise _invalid_token("Access token validation failure. Unknown application.")
        # Roles are read from the token, as Graph does: a changed grant needs a new token.
        granted = claims.get("roles") or str(claims.get("scp", "")).split()
        return Caller(str(claims["appid"]), frozenset(granted), float(claims["iat"]))

    def _check_assertion(self, app: dict[str, Any], assertion: str, tenant: str, host: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError as exc:
            raise EntraError("invalid_client", 50027, "JWT token is invalid or malformed.") from exc
        # Thumbprints are compared without base64 padding (msal keeps it, others strip it).
        x5t = str(header.get("x5t") or "").rstrip("=")
        x5t256 = str(header.get("x5t#S256") or "").rstrip("=")
        cert = next(
            (
                c
                for c in app["certificates"]
                if (x5t and c["x5t"] == x5t) or (x5t256 and c["x5t#S256"] == x5t256)
            ),
            None,
        )
        if cert is None:
            raise EntraError(
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application. [Reason - The key was not found., Thumbprint of "
                f"key used by client: '{x5t256 or x5t}']",
            )
        public_key = x509.load_pem_x509_certificate(cert["pem"].encode()).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):  # RS256 and PS256 need an RSA key
            raise EntraError(
                "invalid_client", 700027, "Client assertion failed signature validation."
            )
        tid = self.tenant_id
        audiences = [f"{host}/{t}/oauth2/v2.0/token" for t in {tenant, tid}]
        audiences += [f"{host}/{t}/oauth2/token" for t in {tenant, tid}]
        try:
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256", "PS256"],
                audience=audiences,
                options={"require": ["exp", "aud", "iss", "sub"]},
                leeway=300,
            )
        except jwt.ExpiredSignatureError as exc:
            raise EntraError(
                "invalid_client", 700024, "Client assertion is not within its valid time range."
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise EntraError(
                "invalid_client",
                700021,
                f"Client assertion audience claim does not match Realm issuer. Audience "
                f"expected: {audiences[0]}.",
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise EntraError(
                "invalid_client", 700027, "Client assertion failed signature validation."
            ) from exc
        if claims.get("iss") != app["client_id"] or claims.get("sub") != app["client_id"]:
            raise EntraError(
                "invalid_client",
                700023,
                "Client assertion subject claim does not match the client_id parameter.",
            )


def _check_client_credentials_scope(form: dict[str, str]) -> None:
    """One scope, Graph's ``/.default`` (besides openid, profile, offline_access)."""
    scopes = [s for s in form.get("scope", "").split() if s not in _RESERVED_SCOPES]
    if (
        len(scopes) != 1
        or scopes[0].rstrip("/").removesuffix("/.default").rstrip("/")
        not in (GRAPH_AUDIENCE, GRAPH_APP_ID)
        or not scopes[0].endswith("/.default")
    ):
        raise EntraError(
            "invalid_scope",
            1002012,
            f"The provided value for scope {form.get('scope', '')} is not valid. Client "
            "credential flows must have a scope value with /.default suffixed to the "
            "resource identifier (application ID URI).",
        )


def _invalid_token(message: str) -> GraphFault:
    return GraphFault(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={
            "WWW-Authenticate": 'Bearer realm="", authorization_uri='
            '"https://login.microsoftonline.com/common/oauth2/authorize"'
        },
    )


def certificate_record(certificate_pem: bytes) -> dict[str, str]:
    """What an app registration keeps of a certificate: PEM and both thumbprints."""
    from batch.simulator.certs import certificate_thumbprints

    sha1, sha256 = certificate_thumbprints(certificate_pem)
    return {"pem": certificate_pem.decode("ascii"), "x5t": sha1, "x5t#S256": sha256}


def dumps(body: Any) -> bytes:
    """JSON bytes as the endpoints send them."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8")
