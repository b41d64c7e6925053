"""Configuration: which tenant to talk to, with which credentials, and where state lives.

Resolution order, highest first: command-line options, the environment (Azure SDK names),
a named profile from ``m365batch.toml`` (``--tenant NAME``), then defaults. With no
credentials at all, commands run against the built-in simulated tenant (see
``batch.graph.connect``): the simulator is a server, so the settings it produces look exactly like
those of a real tenant.

``m365batch.toml`` (in the working directory, else in ``M365BATCH_HOME``) holds profiles for
CSPs that manage many customers. Secrets are not written in it: a profile names the
environment variable that holds its secret::

    [tenants.contoso]
    tenant_id = "00000000-0000-0000-0000-000000000000"
    client_id = "11111111-1111-1111-1111-111111111111"
    certificate_path = "~/certs/contoso.pem"
    client_secret_env = "CONTOSO_SECRET"   # alternative to a certificate
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from batch.errors import ConfigError

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
#: Microsoft Graph Command Line Tools, Microsoft's public client for delegated sign-in: the
#: app used for device-code sign-in when no AZURE_CLIENT_ID is given
GRAPH_CLI_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
CONFIG_FILE_NAME = "m365batch.toml"
#: seconds the read-back may spend re-reading written rows that do not match yet
DEFAULT_VERIFY_WAIT = 8.0


@dataclass(frozen=True)
class Settings:
    """Everything needed to reach one tenant. Secrets are kept out of ``repr``."""

    home: Path
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: Path | None = None
    certificate_password: str | None = field(default=None, repr=False)
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_url: str = DEFAULT_GRAPH_URL
    ca_bundle: str | None = None
    #: how commands describe the tenant at their start ("tenant 0000... (app 1111...)")
    label: str = ""
    #: sign in as a delegated admin with the device-code flow instead of as the app
    device_code: bool = False
    #: shows the device-code instructions to the admin (set by the command line)
    prompt: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @property
    def has_credentials(self) -> bool:
        """True when a tenant is configured: an app with a secret or certificate, or a
        device-code sign-in to a named tenant."""
        if self.device_code:
            return bool(self.tenant_id)
        return bool(
            self.tenant_id and self.client_id and (self.client_secret or self.certificate_path)
        )

    @property
    def authority(self) -> str:
        """The msal authority URL for this tenant."""
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}"

    def describe(self) -> str:
        """One line naming the tenant, for the start of every command's output."""
        return self.label or f"tenant {self.tenant_id} (app {self.client_id}) at {self.graph_url}"


def default_home(env: Mapping[str, str]) -> Path:
    """Where runs, journals, logs and the simulator's state live."""
    configured = env.get("M365BATCH_HOME")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("m365batch", appauthor=False))


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    profile: str | None = None,
    overrides: Mapping[str, object] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings from options, environment and an optional profile.

    :param env: the environment (``os.environ`` by default).
    :param profile: a ``[tenants.NAME]`` section of ``m365batch.toml``.
    :param overrides: values given on the command line; ``None`` values are ignored.
    """
    env = os.environ if env is None else env
    home = default_home(env)
    values: dict[str, object] = {}
    if profile:
        values.update(_read_profile(profile, env, cwd or Path.cwd(), home))
    from_env = {
        "tenant_id": env.get("AZURE_TENANT_ID"),
        "client_id": env.get("AZURE_CLIENT_ID"),
        "client_secret": env.get("AZURE_CLIENT_SECRET"),
        "certificate_path": env.get("AZURE_CLIENT_CERTIFICATE_PATH"),
        "certificate_password": env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        "authority_host": env.get("AZURE_AUTHORITY_HOST"),
        "graph_url": env.get("M365BATCH_GRAPH_URL"),
        "ca_bundle": env.get("REQUESTS_CA_BUNDLE"),
    }
    values.update({k: v for k, v in from_env.items() if v})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})

    cert = values.get("certificate_path")
    settings = Settings(
        home=home,
        tenant_id=_str(values.get("tenant_id")),
        client_id=_str(values.get("client_id")),
        client_secret=_str(values.get("client_secret")),
        certificate_path=Path(str(cert)).expanduser() if cert else None,
        certificate_password=_str(values.get("certificate_password")),
        authority_host=_str(values.get("authority_host")) or DEFAULT_AUTHORITY_HOST,
        graph_url=(_str(values.get("graph_url")) or DEFAULT_GRAPH_URL).rstrip("/"),
        ca_bundle=_str(values.get("ca_bundle")),
    )
    _check(settings)
    return settings


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _check(settings: Settings) -> None:
    partial = [
        name
        for name, value in (
            ("AZURE_TENANT_ID", settings.tenant_id),
            ("AZURE_CLIENT_ID", settings.client_id),
        )
        if not value
    ]
    has_credential = settings.client_secret or settings.certificate_path
    if has_credential and partial:
        raise ConfigError(
            f"A client secret or certificate is configured but {' and '.join(partial)} is not set.",
            hint="Set both, or unset the credential to use the built-in simulated tenant.",
        )
    if settings.certificate_path and not settings.certificate_path.is_file():
        raise ConfigError(
            f"Certificate file not found: {settings.certificate_path}",
            hint="Check AZURE_CLIENT_CERTIFICATE_PATH (a PEM or PFX file).",
        )
    for name, url in (
        ("AZURE_AUTHORITY_HOST", settings.authority_host),
        ("M365BATCH_GRAPH_URL", settings.graph_url),
    ):
        if not url.startswith("https://"):
            raise ConfigError(f"{name} must be an https:// URL, not {url!r}.")


def _read_profile(name: str, env: Mapping[str, str], cwd: Path, home: Path) -> dict[str, object]:
    for candidate in (cwd / CONFIG_FILE_NAME, home / CONFIG_FILE_NAME):
        if candidate.is_file():
            path = candidate
            break
    else:
        raise ConfigError(
            f"--tenant {name}: no {CONFIG_FILE_NAME} in the current directory or in {home}."
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
    profiles = document.get("tenants", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"{path}: no profile [tenants.{name}] (profiles: {known}).")
    profile = dict(profiles[name])
    secret_env = profile.pop("client_secret_env", None)
    if "client_secret" in profile:
        raise ConfigError(
            f"{path}: [tenants.{name}] holds a client_secret.",
            hint="Keep secrets out of files: name an environment variable with client_secret_env.",
        )
    if secret_env:
        if secret_env not in env:
            raise ConfigError(f"[tenants.{name}]: environment variable {secret_env} is not set.")
        profile["client_secret"] = env[secret_env]
    return profile
