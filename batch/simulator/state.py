"""Simulated tenant, the state directory: TLS material, the tenant database, the default app.

Everything the simulator keeps lives in one directory: the CA, server certificate and
token-signing key (:mod:`batch.simulator.certs`), ``tenant.db`` (the
:class:`~batch.simulator.store.TenantStore`, loaded with the sample tenant on first use)
and ``app.json``, the default app registration's client id and secret, which stay the same
for the life of the directory. Two processes may open the same directory at once: first
use is serialised by a file lock.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from batch.files import PRIVATE_FILE, private_dir, private_file
from batch.simulator import seed as seed_module
from batch.simulator.certs import TlsMaterial, ensure_tls_material
from batch.simulator.graph import ALL_ROLES
from batch.simulator.store import TenantStore

__all__ = [
    "AppCredentials",
    "OpenedState",
    "TenantStore",  # the store an opened state holds
    "default_app",
    "load_sample",
    "open_state",
    "open_store",
]

DB_FILE = "tenant.db"
APP_FILE = "app.json"
SAMPLE_PATH = Path(__file__).resolve().parents[2] / "samples" / "tenant.json"


@dataclass
class AppCredentials:
    """The default app registration's client id and secret."""

    client_id: str
    client_secret: str


@dataclass
class OpenedState:
    """A state directory ready to serve: TLS material, the store, the default app."""

    tls: TlsMaterial
    store: TenantStore
    app: AppCredentials


def open_state(state_dir: Path, seed_path: Path | None = None) -> OpenedState:
    """Open (creating what is missing) everything in ``state_dir`` a server needs."""
    tls = ensure_tls_material(state_dir)
    store = open_store(state_dir, seed_path)
    return OpenedState(tls, store, default_app(store, state_dir))


def open_store(state_dir: Path, seed_path: Path | None = None) -> TenantStore:
    """Open the state in ``state_dir``, loading the sample tenant on first use."""
    private_dir(state_dir)
    with FileLock(str(state_dir / "init.lock"), mode=PRIVATE_FILE):
        # owner-only from the start: it holds the apps' secrets (and perhaps a cloned
        # directory); SQLite gives its -wal and -shm files the same mode
        store = TenantStore(private_file(state_dir / DB_FILE))
        if not store.initialized:
            store.load_tenant(load_sample(seed_path))
    return store


def load_sample(seed_path: Path | None = None) -> dict[str, Any]:
    """The sample tenant: from ``seed_path``, else samples/tenant.json, else generated."""
    for path in (seed_path, SAMPLE_PATH):
        if path is not None and path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return seed_module.generate_tenant()


def default_app(store: TenantStore, state_dir: Path) -> AppCredentials:
    """The default app's credentials (made once), registered with every role."""
    path = state_dir / APP_FILE
    with FileLock(str(state_dir / "init.lock"), mode=PRIVATE_FILE):
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            creds = AppCredentials(saved["client_id"], saved["client_secret"])
        else:
            creds = AppCredentials(str(uuid.uuid4()), secrets.token_urlsafe(30))
            path.touch(mode=0o600)
            path.write_text(
                json.dumps({"client_id": creds.client_id, "client_secret": creds.client_secret}),
                encoding="utf-8",
            )
        app = store.app(creds.client_id)
        if app is None or app["secret"] != creds.client_secret:
            store.save_app(
                creds.client_id,
                "m365batch (simulated default app)",
                creds.client_secret,
                [],
                list(ALL_ROLES),
            )
    return creds
