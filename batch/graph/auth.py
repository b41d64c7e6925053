"""Auth: app-only access tokens for Microsoft Graph through msal (client credentials).

One :class:`MsalTokenProvider` per tenant. It builds msal's ``ConfidentialClientApplication``
from :class:`batch.config.Settings` with a client secret or a certificate:

- PEM: the file holds the private key and the certificate (Azure SDK convention). We read
  both with ``cryptography`` (checking the password and that the key matches the
  certificate) and hand msal ``{"private_key", "public_certificate", "passphrase"}`` *without*
  a ``thumbprint``: msal >= 1.35 then computes the SHA-256 thumbprint (``x5t#S256``, PS256)
  itself, whereas a ``thumbprint`` key would make it use the deprecated SHA-1 form.
- PFX/P12: ``{"private_key_pfx_path", "passphrase"}``; msal uses SHA-256 as well.

Tokens live in msal's in-memory cache only (never on disk). msal renews a cached token on its
own when less than five minutes remain. A 401 in the middle of a run means the service
stopped honouring a token before its stated expiry; :meth:`MsalTokenProvider.renew` drops
that token from the cache and fetches a new one, once per stale token however many threads
saw the 401 at the same time.

msal's failures (a result dict with ``error``/``error_description``, or ``ValueError`` and
``requests`` exceptions during authority discovery) become :class:`batch.errors.AuthError`
with the AADSTS code and never the secret.

A ``ValueError`` msal raises about the *credential* (it builds its client, and so checks
the certificate, in the same constructor that discovers the authority) is a certificate
problem, not a refused authority: it becomes a :class:`batch.errors.ConfigError` naming the
file and ``AZURE_CLIENT_CERTIFICATE_PATH``. The usual cause is an msal older than 1.35, which
refuses a PEM key with its certificate and no thumbprint ("client_credential needs to follow
this format"); the package requires ``msal>=1.35`` for that reason (graph-reference.md
sections 7 and 11).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from batch.config import Settings
from batch.errors import AuthError, ConfigError
from batch.graph.httpcache import load_http_cache, save_http_cache
from batch.graph.transport import new_session
from batch.logs import register_secret

log = logging.getLogger(__name__)

#: The scope of an app-only Graph token is the resource plus ``/.default``.
GRAPH_SCOPE_SUFFIX = "/.default"
GRAPH_RESOURCE = "https://graph.microsoft.com"
#: Graph hosts of the national clouds, each its own token resource
SOVEREIGN_GRAPH_HOSTS = frozenset(
    {"graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
)

_AADSTS = re.compile(r"AADSTS\d+")

_HINTS = {
    "AADSTS7000215": "The client secret is wrong: use the secret's value, not its id.",
    "AADSTS7000222": "The client secret has expired: create a new one in the app registration.",
    "AADSTS700016": "No such app in this tenant: check AZURE_CLIENT_ID and AZURE_TENANT_ID.",
    "AADSTS90002": "No such tenant: check AZURE_TENANT_ID.",
    "AADSTS700027": "The certificate is not registered on the app, or its signature is invalid.",
    "AADSTS700024": "The client assertion is not within its valid time range: check the clock.",
}


@runtime_checkable
class TokenProvider(Protocol):
    """Something that hands out bearer tokens and can renew one the service rejected."""

    def token(self) -> str:
        """A valid access token."""
        ...

    def renew(self, stale: str) -> str:
        """A token other than ``stale`` (fetch a new one unless another thread already did)."""
        ...


class StaticTokenProvider:
    """Wrap a plain callable returning a token (tests, or tokens obtained elsewhere)."""

    def __init__(self, fetch: Callable[[], str]) -> None:
        self._fetch = fetch

    def token(self) -> str:
        """Call the wrapped function."""
        return self._fetch()

    def renew(self, stale: str) -> str:
        """Call the wrapped function again; it is its own judge of freshness."""
        return self._fetch()


def as_token_provider(value: TokenProvider | Callable[[], str]) -> TokenProvider:
    """Accept either a :class:`TokenProvider` or a zero-argument callable."""
    if isinstance(value, TokenProvider):
        return value
    return StaticTokenProvider(value)


def graph_scope(graph_url: str) -> str:
    """The app-only scope for Graph at ``graph_url``: its resource id plus ``/.default``.

    The resource is Graph's application ID URI, not wherever requests go: the national
    clouds have their own Graph host and resource, any other host (a private endpoint, the
    simulated tenant) still serves tokens for ``https://graph.microsoft.com``.
    """
    host = (urlparse(graph_url).hostname or "").lower()
    if host in SOVEREIGN_GRAPH_HOSTS:
        return f"https://{host}{GRAPH_SCOPE_SUFFIX}"
    return f"{GRAPH_RESOURCE}{GRAPH_SCOPE_SUFFIX}"


def build_credential(settings: Settings) -> str | dict[str, Any]:
    """The ``client_credential`` msal expects for these settings (secret or certificate)."""
    if settings.certificate_path:
        path = Path(settings.certificate_path)
        data = _read_bytes(path)
        password = settings.certificate_password
        if _is_pfx(path, data):
            _check_pfx(path, data, password)
            credential: dict[str, Any] = {"private_key_pfx_path": str(path)}
        else:
            key_pem, cert_pem = _split_pem(path, data, password)
            # No "thumbprint" key on purpose: msal would then sign with the SHA-1 form.
            credential = {"private_key": key_pem, "public_certificate": cert_pem}
        if password:
            credential["passphrase"] = password
        return credential
    if settings.client_secret:
        return settings.client_secret
    raise ConfigError(
        "No client secret or certificate is configured.",
        hint="Set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH.",
    )


def certificate_thumbprint(settings: Settings) -> str | None:
    """The SHA-256 thumbprint (hex) of the configured certificate, for messages and checks."""
    if not settings.certificate_path:
        return None
    path = Path(settings.certificate_path)
    data = _read_bytes(path)
    if _is_pfx(path, data):
        cert = _check_pfx(path, data, settings.certificate_password)
    else:
        _, cert_pem = _split_pem(path, data, settings.certificate_password)
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def needs_instance_discovery(authority_host: str) -> bool:
    """Whether msal should validate the authority through Microsoft's instance discovery.

    Discovery calls ``login.microsoftonline.com`` to vouch for the host. It is right for the
    public and sovereign clouds, but a private authority (an ADFS-like or local HTTPS
    identity provider, the built-in simulated tenant) is unknown to it and would be refused,
    so discovery is turned off only for hosts msal does not already know.
    """
    host = (urlparse(authority_host).hostname or "").lower()
    return host in WELL_KNOWN_AUTHORITY_HOSTS


class MsalTokenProvider:
    """App-only tokens for one tenant through msal's client-credentials flow."""

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: requests.Session | None = None,
        timeout: float | tuple[float, float] = (10.0, 60.0),
    ) -> None:
        if not (settings.tenant_id and settings.client_id):
            raise ConfigError("AZURE_TENANT_ID and AZURE_CLIENT_ID must both be set.")
        register_secret(settings.client_secret)
        register_secret(settings.certificate_password)
        self._settings = settings
        self._scopes = [graph_scope(settings.graph_url)]
        self._credential = build_credential(settings)
        self._http_client = http_client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        self._current: str | None = None
        self._session: requests.Session | None = None  # msal's, made on first use
        self._closed = False
        self.tokens_acquired = 0  #: tokens fetched from the identity provider (not the cache)

    @property
    def scopes(self) -> list[str]:
        """The scopes asked for (the Graph resource with ``/.default``)."""
        return list(self._scopes)

    def token(self) -> str:
        """A valid access token, from msal's cache when it has one that is not about to expire."""
        with self._lock:
            try:
                return self._acquire()
            finally:
                if self._closed:  # closed while it signed in (ahead, on another thread)
                    self.close()

    def renew(self, stale: str) -> str:
        """Drop ``stale`` from the cache and fetch a new token (once, whatever the threads)."""
        with self._lock:
            if self._current is not None and self._current != stale:
                return self._current  # another thread already renewed it
            app = self._application()
            cache = app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if item.get("secret") == stale:
                    cache.remove_at(item)
            log.debug("access token rejected by the service; renewing it")
            return self._acquire()

    def _acquire(self) -> str:
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=self._scopes)
        except (requests.RequestException, ValueError) as exc:
            problem = credential_problem(self._settings, exc)
            raise (problem or _unreachable(self._settings, exc)) from exc
        if not result or "access_token" not in result:
            raise _auth_error(result or {}, self._settings)
        token = str(result["access_token"])
        if result.get("token_source") != "cache":
            self.tokens_acquired += 1
            log.debug("access token acquired (expires in %s s)", result.get("expires_in"))
        self._current = token
        return token

    def close(self) -> None:
        """Close the sign-in's connections (those of a sign-in under way, once it ends)."""
        self._closed = True
        if self._http_client is None and self._session is not None:
            self._session.close()

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            if self._session is None:
                self._session = self._http_client or new_session(
                    self._settings.ca_bundle, timeout=self._timeout
                )
            self._app = _msal_app(
                msal.ConfidentialClientApplication,
                self._settings,
                self._session,
                self._timeout,
                client_credential=self._credential,
            )
        return self._app


#: the delegated permissions a device-code sign-in asks for: what the commands use
DELEGATED_PERMISSIONS = (
    "LicenseAssignment.ReadWrite.All",
    "User.ReadWrite.All",
    "Group.Read.All",
    "GroupMember.ReadWrite.All",
    "Organization.Read.All",
    "AuditLog.Read.All",
)


class DeviceCodeTokenProvider:
    """Delegated tokens for an admin who signs in with a device code (no app secret).

    The admin opens the sign-in page on any device and types the code shown; the token
    carries the admin's delegated permissions (``scp``), limited by their directory role.
    Tokens live in memory only; a renewal uses a refresh token when msal holds one, and
    otherwise asks for a new sign-in.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: requests.Session | None = None,
        timeout: float | tuple[float, float] = (10.0, 60.0),
    ) -> None:
        if not settings.client_id:
            raise ConfigError("No client id for the device-code sign-in.")
        self._settings = settings
        resource = graph_scope(settings.graph_url).removesuffix(GRAPH_SCOPE_SUFFIX)
        self._scopes = [f"{resource}/{name}" for name in DELEGATED_PERMISSIONS]
        self._http_client = http_client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._app: msal.PublicClientApplication | None = None
        self._session: requests.Session | None = None  # msal's, made on first use
        self._current: str | None = None
        self._fresh_until = 0.0

    def close(self) -> None:
        """Close the sign-in's connections (a session passed in is the caller's to close)."""
        if self._http_client is None and self._session is not None:
            self._session.close()

    def token(self) -> str:
        """A valid access token: the current one, by refresh, or by a new device-code sign-in."""
        with self._lock:
            if self._current is not None and time.monotonic() < self._fresh_until:
                return self._current
            return (self._silent() if self._current is not None else None) or self._sign_in()

    def renew(self, stale: str) -> str:
        """A token other than ``stale``, by refresh token when msal has one."""
        with self._lock:
            if self._current is not None and self._current != stale:
                return self._current
            return self._silent(force=True) or self._sign_in()

    def _silent(self, *, force: bool = False) -> str | None:
        app = self._application()
        accounts = app.get_accounts()
        if not accounts:
            return None
        result = app.acquire_token_silent(self._scopes, account=accounts[0], force_refresh=force)
        if result and "access_token" in result:
            return self._keep(result)
        return None

    def _keep(self, result: dict[str, Any]) -> str:
        # kept until five minutes before it expires, as msal does for its own cache
        self._current = str(result["access_token"])
        self._fresh_until = time.monotonic() + max(0, int(result.get("expires_in") or 0) - 300)
        return self._current

    def _sign_in(self) -> str:
        app = self._application()
        try:
            flow = app.initiate_device_flow(scopes=self._scopes)
            if "user_code" not in flow:
                raise _auth_error(flow, self._settings)
            show = self._settings.prompt or (lambda text: log.warning("%s", text))
            show(str(flow["message"]))
            result = app.acquire_token_by_device_flow(flow)  # polls until signed in or expired
        except requests.RequestException as exc:
            raise _unreachable(self._settings, exc) from exc
        if not result or "access_token" not in result:
            raise _auth_error(result or {}, self._settings)
        return self._keep(result)

    def _application(self) -> msal.PublicClientApplication:
        if self._app is None:
            self._session = self._http_client or new_session(
                self._settings.ca_bundle, timeout=self._timeout
            )
            self._app = _msal_app(
                msal.PublicClientApplication, self._settings, self._session, self._timeout
            )
        return self._app


def _msal_app(
    kind: type[Any],
    settings: Settings,
    http_client: requests.Session | None,
    timeout: float | tuple[float, float],
    **extra: Any,
) -> Any:
    """An msal application for ``settings``, with an in-memory token cache (its discovery
    answers kept in ``settings.home``: :mod:`batch.graph.httpcache`); errors as AuthError."""
    http_cache = load_http_cache(settings.home)
    known = set(http_cache)
    kwargs: dict[str, Any] = {
        "authority": settings.authority,
        "http_client": http_client or new_session(settings.ca_bundle, timeout=timeout),
        "token_cache": msal.TokenCache(),  # memory only
        "http_cache": http_cache,
        **extra,
    }
    if not needs_instance_discovery(settings.authority_host):
        kwargs["instance_discovery"] = False
    try:
        # msal fetches the tenant's OpenID configuration here (network I/O), unless cached
        app = kind(settings.client_id, **kwargs)
        if set(http_cache) != known:
            save_http_cache(settings.home, http_cache)
        return app
    except ValueError as exc:
        problem = credential_problem(settings, exc)
        if problem is not None:
            raise problem from exc
        text = str(exc)
        code = _AADSTS.search(text)
        raise AuthError(
            f"The sign-in authority {settings.authority} was refused: {_first_line(text)}",
            error=code.group(0) if code else None,
            hint="Check AZURE_TENANT_ID and AZURE_AUTHORITY_HOST.",
        ) from exc
    except requests.RequestException as exc:
        raise _unreachable(settings, exc) from exc


#: msal's messages about a ``client_credential`` it cannot use (msal/application.py)
_CREDENTIAL_WORDS = (
    "client_credential",
    "thumbprint",
    "public_certificate",
    "private_key",
    "passphrase",
    "pfx",
    "deserialize",
    "certificate",
)
#: the first msal that takes a PEM key and its certificate without a thumbprint
MSAL_PEM_WITHOUT_THUMBPRINT = (1, 35)


def credential_problem(settings: Settings, exc: Exception) -> ConfigError | None:
    """The certificate problem behind an msal ``ValueError``, or None if it is not one.

    It is one when a certificate is configured and msal's message is about the credential
    or the error was raised while msal built its client from the credential
    (``_build_client``). The message names the file and ``AZURE_CLIENT_CERTIFICATE_PATH``.
    """
    if not settings.certificate_path or not isinstance(exc, ValueError):
        return None
    text = str(exc)
    about_credential = any(word in text.lower() for word in _CREDENTIAL_WORDS) or any(
        frame.name == "_build_client" for frame in _frames(exc)
    )
    if not about_credential:
        return None
    version = str(getattr(msal, "__version__", "") or "")
    hint = "A PEM file must hold the private key and its certificate; a PFX file works too."
    if _version_tuple(version) < MSAL_PEM_WITHOUT_THUMBPRINT:
        hint = (
            f"msal {version} is too old for a PEM key with its certificate: "
            "install msal 1.35 or later (pip install -U 'msal>=1.35'), or use a PFX file."
        )
    return ConfigError(
        f"The certificate {settings.certificate_path} (AZURE_CLIENT_CERTIFICATE_PATH) was "
        f"refused by msal {version}: {_first_line(text)}",
        hint=hint,
    )


def _frames(exc: BaseException) -> list[Any]:
    import traceback

    return list(traceback.extract_tb(exc.__traceback__)) if exc.__traceback__ else []


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group(0)))
    return tuple(parts) or (0,)


def _unreachable(settings: Settings, exc: Exception) -> AuthError:
    return AuthError(
        f"Could not reach the sign-in service at {settings.authority_host}: {type(exc).__name__}",
        hint="Check the network, AZURE_AUTHORITY_HOST and REQUESTS_CA_BUNDLE.",
    )


def _auth_error(result: dict[str, Any], settings: Settings) -> AuthError:
    error = str(result.get("error") or "unknown_error")
    description = _first_line(str(result.get("error_description") or ""))
    code_match = _AADSTS.search(description)
    code = code_match.group(0) if code_match else None
    hint = _HINTS.get(code or "")
    if hint is None and error == "invalid_client":
        hint = "Check the client secret or certificate of the app registration."
    message = f"Sign-in failed for app {settings.client_id} in tenant {settings.tenant_id}: "
    message += description or error
    return AuthError(
        message, error=code or error, correlation_id=result.get("correlation_id"), hint=hint
    )


def _first_line(text: str) -> str:
    # Entra appends "Trace ID: ... Correlation ID: ... Timestamp: ..." (usually on new lines).
    text = text.split("Trace ID:")[0].strip()
    return text.splitlines()[0].strip() if text else ""


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Certificate file cannot be read: {path}: {exc.strerror}") from exc


def _is_pfx(path: Path, data: bytes) -> bool:
    return path.suffix.lower() in (".pfx", ".p12") or b"-----BEGIN" not in data


def _check_pfx(path: Path, data: bytes, password: str | None) -> x509.Certificate:
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None
        )
    except ValueError as exc:
        raise ConfigError(
            f"Certificate file {path.name} cannot be opened: wrong password or not a PFX file.",
            hint="Check AZURE_CLIENT_CERTIFICATE_PASSWORD.",
        ) from exc
    if key is None or cert is None:
        raise ConfigError(
            f"Certificate file {path.name} must hold both a private key and a certificate."
        )
    _check_pair(path, key, cert)
    return cert


def _split_pem(path: Path, data: bytes, password: str | None) -> tuple[str, str]:
    text = data.decode("ascii", errors="replace")
    key_match = re.search(
        r"-----BEGIN (?:ENCRYPTED |RSA |EC )?PRIVATE KEY-----.+?"
        r"-----END (?:ENCRYPTED |RSA |EC )?PRIVATE KEY-----",
        text,
        re.S,
    )
    cert_match = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    if not key_match or not cert_match:
        raise ConfigError(
            f"Certificate file {path.name} must hold both a PEM private key and its certificate."
        )
    key_pem, cert_pem = key_match.group(0), cert_match.group(0)
    try:
        key = serialization.load_pem_private_key(
            key_pem.encode(), password.encode() if password else None
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"The private key in {path.name} cannot be read: wrong or missing password?",
            hint="Check AZURE_CLIENT_CERTIFICATE_PASSWORD.",
        ) from exc
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise ConfigError(f"The certificate in {path.name} cannot be read.") from exc
    _check_pair(path, key, cert)
    return key_pem, cert_pem


def _check_pair(path: Path, key: Any, cert: x509.Certificate) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ConfigError(f"The private key in {path.name} does not belong to its certificate.")
